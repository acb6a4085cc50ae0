"""The bundled fusion and mining models (include/analytics/enterprise_risk_*.yaml) in the
session's Spark: the fusion model's scores, levels and reasons on a few enterprises, refused
below a floor or with a failed scenario; the mining model over the sample district's
enterprise records, its held-out metrics against an independent computation from the result
rows. (The fusion model over the sample district, its metrics and documents:
tests/dags/test_analytics_fusion_dashboard_dag.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from govops.analytics import models
from govops.analytics.spec import AnalyticsSpec, Scenario, load_spec
from govops.sample_data import SampleConfig, build_frames
from govops.sample_data.enterprises import build, write_enterprise_sample

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
FUSION = load_spec(REPO / "include/analytics/enterprise_risk_fusion.yaml")
MINING = load_spec(REPO / "include/analytics/enterprise_risk_mining.yaml")
LAST_FROM = "2025-11"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):
    lake = tmp_path_factory.mktemp("lake")
    legal = build_frames(SampleConfig(seed=7, persons=2000)).legal_persons
    write_enterprise_sample(lake.as_uri(), legal, with_legal_persons=True)
    return lake, legal, build(legal)


def _run(spark, lake: Path, spec: AnalyticsSpec) -> tuple[pd.DataFrame, dict[str, list[dict]], Any]:
    for view, source in spec.inputs.items():
        spark.read.parquet(str(lake / source.dataset)).createOrReplaceTempView(view)
    assert spec.model is not None
    table = spark.sql(spec.outputs[spec.model.table].sql, args=spec.parameters)
    made, _ = models.run(spark, spec, table)
    results = {name: [r.asDict() for r in df.collect()] for name, df in made.items()}
    results[spec.model.table] = [r.asDict() for r in table.collect()]
    return pd.DataFrame(results[spec.model.table]), results, table


def _expected_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """AUC as the Mann-Whitney statistic (ties count half) and the confusion ratios, on the
    held-out rows only."""
    test = frame[frame["split"] == "test"]
    y, score, alert = test["y"], test["score"], test["alert"]
    ranks = score.rank(method="average")
    p, n = int(y.sum()), int((1 - y).sum())
    auc = (ranks[y == 1].sum() - p * (p + 1) / 2) / (p * n)
    tp, fp = int(((alert == 1) & (y == 1)).sum()), int(((alert == 1) & (y == 0)).sum())
    fn, tn = int(((alert == 0) & (y == 1)).sum()), int(((alert == 0) & (y == 0)).sum())
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {"auc": auc, "precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall),
            "accuracy": (tp + tn) / len(test), "tp": tp, "fp": fp, "fn": fn, "tn": tn}  # fmt: skip


def _evaluation(results: dict[str, list[dict]], spec: AnalyticsSpec) -> dict[tuple[str, str], dict]:
    assert spec.model is not None
    return {(r["section"], r["item"]): r for r in results[spec.model.evaluation]}


def test_a_fusion_model_below_a_floor_or_failing_a_scenario_is_not_delivered(spark) -> None:
    """Ten enterprises: the weighted score and levels as the spec gives them, then refused."""
    model = FUSION.model
    assert model is not None
    rows = [(f"9{n:017d}", f"企业{n}", failed, tax, None, int(failed >= 2 or tax >= 0.5))
            for n, (failed, tax) in enumerate([(0, 0.0), (0, 0.05), (1, 0.0), (2, 0.0), (3, 0.6), (0, 0.6),
                                               (0, 0.3), (1, 0.7), (0, 0.0), (0, 0.0)] * 3)]  # fmt: skip
    columns = ["uscc", "name", "failed_inspections", "tax_drop", "staff_drop", "penalized"]
    table = spark.createDataFrame(rows, "uscc string, name string, failed_inspections int, tax_drop double, "
                                        "staff_drop double, penalized int").select(*columns)  # fmt: skip
    made, _ = models.run(spark, FUSION.model_copy(update={"model": model.model_copy(update={"floors": {}})}), table)
    result = {r["uscc"]: r.asDict() for r in made["result"].collect()}
    assert [(result[r[0]]["score"], result[r[0]]["level"], result[r[0]]["alert"]) for r in rows[:8]] == [
        (0.0, "低风险", 0), (3.5, "低风险", 0), (20.0, "中风险", 1), (40.0, "高风险", 1), (75.0, "高风险", 1),
        (35.0, "中风险", 1), (21.0, "中风险", 1), (55.0, "高风险", 1)]  # fmt: skip
    assert result[rows[4][0]]["reasons"] == "检查不合格次数；纳税额同比降幅；近12个月检查不合格2次及以上"
    strict = FUSION.model_copy(update={"model": model.model_copy(update={"floors": {"precision": 0.999}})})
    with pytest.raises(models.ModelRejected, match=r"not delivered: precision 0\.\d+ < floor 0\.999"):
        models.run(spark, strict, table)
    wrong = model.model_copy(update={"floors": {}, "scenarios": [Scenario(title="无", where="tax_drop >= 0.5",
                                                                          expect="alert = 0")]})  # fmt: skip
    with pytest.raises(models.ModelRejected, match=r"scenario '无': \d+ row\(s\) where tax_drop >= 0\.5"):
        models.run(spark, FUSION.model_copy(update={"model": wrong}), table)


def test_mining_model_trains_on_the_training_rows_and_meets_its_floors(spark, sample) -> None:
    lake, legal, planted = sample
    table, results, _ = _run(spark, lake, MINING)
    result = pd.DataFrame(results["predictions"]).set_index("uscc")
    frame = result.join(table.set_index("uscc")["penalized"].rename("y"))
    assert len(frame) == len(table) and set(frame["split"]) == {"train", "test"}
    assert ((frame["score"] >= 0.5).astype(int) == frame["alert"]).all()
    expected = _expected_metrics(frame)
    evaluation = _evaluation(results, MINING)
    for name in ("auc", "precision", "recall", "f1", "accuracy"):
        assert evaluation[("metric", name)]["value"] == pytest.approx(expected[name], abs=1e-9), name
    model = MINING.model
    assert model is not None
    for name, floor in model.floors.items():
        assert expected[name] >= float(floor), name
    assert evaluation[("weight", "tax_drop")]["value"] > 0  # a falling tax declaration raises the risk
    assert evaluation[("method", "train_rows")]["value"] + evaluation[("method", "test_rows")]["value"] == len(frame)
    again = build(legal)  # the sample is deterministic
    assert again.risky == planted.risky and again.tax.equals(planted.tax)
