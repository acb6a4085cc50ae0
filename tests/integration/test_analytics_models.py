"""The bundled fusion and mining models (include/analytics/enterprise_risk_*.yaml) in the
session's Spark over the sample district's enterprise records: the indicators, scores and
levels against pandas over the same frames, the held-out metrics against an independent
computation from the result rows, the planted anomalies found, a floor that refuses the
model, and the design document and test report generated from the spec and the evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from govops.analytics import documents, models
from govops.analytics.spec import AnalyticsSpec, load_spec
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


def test_fusion_model_scores_levels_and_held_out_metrics(spark, sample) -> None:
    lake, legal, planted = sample
    table, results, table_df = _run(spark, lake, FUSION)

    # The indicators, from the departments' frames with pandas.
    tax = planted.tax.assign(amount=planted.tax["tax_amount"].astype(float))
    by_year = tax.groupby(["uscc", tax["month"] >= LAST_FROM])["amount"].sum().unstack()
    staff = planted.insurance.groupby(["uscc", planted.insurance["month"] >= LAST_FROM])["insured_staff"].mean()
    staff = staff.unstack()
    failed = planted.inspections[(planted.inspections["result"] == "不合格")
                                 & (pd.to_datetime(planted.inspections["inspected_on"]) >= "2025-11-01")]  # fmt: skip
    want = pd.DataFrame({"uscc": legal["uscc"]}).set_index("uscc")
    want["failed_inspections"] = failed.groupby("uscc").size().reindex(want.index).fillna(0).astype(int)
    want["tax_drop"] = (1 - by_year[True] / by_year[False]).reindex(want.index)
    want["staff_drop"] = (1 - staff[True] / staff[False]).reindex(want.index)
    want["penalized"] = want.index.isin(planted.penalties["uscc"]).astype(int)
    got = table.set_index("uscc").sort_index()
    want = want.sort_index()
    assert list(got.index) == list(want.index) and len(got) == len(legal)
    assert (got["failed_inspections"] == want["failed_inspections"]).all()
    assert (got["penalized"] == want["penalized"]).all()
    for column in ("tax_drop", "staff_drop"):
        assert got[column].isna().equals(want[column].isna()), column
        assert (got[column] - want[column]).abs().max() <= 1e-4, column
    assert got["staff_drop"].isna().sum() == 5  # five enterprises without social insurance records

    # Score, level, reasons and alert: the spec's weights, thresholds, rule and levels.
    model = FUSION.model
    assert model is not None
    result = pd.DataFrame(results["result"]).set_index("uscc").sort_index()
    parts = sum(float(i.weight) * (got[c].fillna(0).clip(lower=0) / float(i.threshold)).clip(upper=1)
                for c, i in model.indicators.items())  # fmt: skip
    assert (result["score"] - 100 * parts).abs().max() <= 0.005 + 1e-9
    level = pd.Series("低风险", index=got.index)
    level[result["score"] >= 20] = "中风险"
    level[result["score"] >= 40] = "高风险"
    level[got["failed_inspections"] >= 2] = "高风险"
    assert (result["level"] == level).all()
    assert (result["alert"] == level.isin(["高风险", "中风险"]).astype(int)).all()
    assert (result.loc[got["tax_drop"] >= 0.5, "reasons"].str.contains("纳税额同比降幅")).all()

    # The held-out metrics equal an independent computation from the result rows.
    frame = result.join(got["penalized"].rename("y"))
    expected = _expected_metrics(frame)
    evaluation = _evaluation(results, FUSION)
    for name in ("auc", "precision", "recall", "f1", "accuracy"):
        assert evaluation[("metric", name)]["value"] == pytest.approx(expected[name], abs=1e-9), name
        assert evaluation[("metric", name)]["passed"] is not False
    for name in ("tp", "fp", "fn", "tn"):
        assert evaluation[("confusion", name)]["value"] == expected[name], name
    assert 0.2 < evaluation[("method", "test_rows")]["value"] / len(result) < 0.4
    assert expected["auc"] >= 0.8 and expected["precision"] >= 0.6 and expected["recall"] >= 0.6  # the floors
    assert all(evaluation[("scenario", s.title)]["passed"] for s in model.scenarios)
    # The planted enterprises in trouble: the score ranks them first (AUC against the plant).
    planted_y = frame.assign(y=frame.index.isin(planted.risky).astype(int), split="test")
    assert _expected_metrics(planted_y)["auc"] >= 0.9

    # The design document comes from the spec; the test report from the evaluation.
    design = documents.design_document(FUSION)
    for c, i in model.indicators.items():
        assert f"<td>{c}</td><td>{i.title}</td><td>{i.definition}</td><td>{i.department}</td>" in design
        assert f"<td>{i.weight}</td><td>{i.threshold}{i.unit}</td></tr>" in design
    manifest = {
        "app_id": "local-test",
        "started_at": "2026-12-01T00:00:00",
        "finished_at": "2026-12-01T00:01:00",
        "inputs": [{"dataset": i.dataset, "domain": i.domain, "rows": 1} for i in FUSION.inputs.values()],
    }
    report = documents.test_report(FUSION, manifest, results, "run-1")
    assert "测试环境" in report and "<td>auc</td>" in report and report.count("<svg") == 1
    assert f"<td>{evaluation[('environment', 'spark')]['text']}</td>" in report

    # A model below a floor is not delivered.
    strict = FUSION.model_copy(update={"model": model.model_copy(update={"floors": {"auc": 0.999}})})
    with pytest.raises(models.ModelRejected, match=r"not delivered: auc 0\.\d+ < floor 0\.999"):
        models.run(spark, strict, table_df)


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
