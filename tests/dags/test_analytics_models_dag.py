"""The mining model spec include/analytics/enterprise_risk_mining.yaml under real Airflow, a
spark-submit of spark_jobs/analyze.py and PostgreSQL: the features against pandas over the
sample frames, the held-out metrics recorded in govops.analytics_result against an
independent computation from the recorded predictions, the fitted MLlib pipeline and the
versioned outputs in the lake, the design document and model test report (also in
Chromium), and the ledger row: 1 model (item 17) at the difficulty of three data domains."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from govops.analytics import difficulty as dif
from govops.analytics.spec import load_spec
from govops.dag_runs import run_dag
from govops.sample_data import SampleConfig, build_frames
from govops.sample_data.enterprises import build, write_enterprise_sample
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark.manifest import _safe
from tests.browser import assert_screenshot_not_blank, render
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "include/analytics/enterprise_risk_mining.yaml")
RESULT = """SELECT x.row FROM govops.analytics_result x JOIN govops.analytics_run r ON r.id = x.run_pk
             WHERE r.run_id = :run AND x.output = :out ORDER BY x.row_no"""
EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|<script""")


def test_mining_model_delivers_its_result_documents_and_one_metered_model(isolated_env: Path, ledger_url: str) -> None:
    legal = build_frames(SampleConfig(seed=7, persons=2000)).legal_persons
    write_enterprise_sample(isolated_env.as_uri(), legal)
    planted = build(legal)
    [line] = dif.delivery_lines(SPEC)
    assert (line.service_item, line.unit, line.quantity, line.difficulty) == ("17", "model", 1, Decimal(3))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-MINING", "17", on=date(2026, 6, 1), difficulty=line.difficulty)
    engine.dispose()

    run = run_dag(SPEC.dag_id, conf={"work_order_id": "WO-T-MINING"}, logical_date=datetime(2026, 11, 2, tzinfo=UTC))
    assert run.state == "success", run.task_states
    usage = rows(ledger_url, """SELECT service_item_code, unit, quantity, work_order_id, run_id, task_id,
                                       attributes ->> 'difficulty' FROM govops.usage_event WHERE dag_id = :d""",
                 d=SPEC.dag_id)  # fmt: skip
    assert usage == [("17", "model", 1, "WO-T-MINING", "deliverable:WO-T-MINING", "deliver", "3")]

    # The features, against pandas over the tax bureau's frame.
    features = pd.DataFrame([r for (r,) in rows(ledger_url, RESULT, run=run.run_id, out="features")]).set_index("uscc")
    tax = planted.tax.assign(amount=planted.tax["tax_amount"].astype(float))
    means = tax.groupby(["uscc", tax["month"] >= "2025-11"])["amount"].mean().unstack()
    want = (1 - means[True] / means[False]).sort_index()
    assert list(features.index) == list(want.index)
    assert (features["tax_drop"] - want).abs().max() <= 1e-4
    assert features["penalized"].sum() == len(planted.penalties)

    # The recorded held-out metrics, recomputed from the recorded predictions.
    predictions = pd.DataFrame([r for (r,) in rows(ledger_url, RESULT, run=run.run_id, out="predictions")])
    test = predictions.set_index("uscc").join(features["penalized"].rename("y"))
    test = test[test["split"] == "test"]
    y, alert = test["y"], test["alert"]
    ranks = test["score"].rank(method="average")
    p, n = int(y.sum()), int((1 - y).sum())
    tp, fp, fn = int((alert & y).sum()), int((alert & (1 - y)).sum()), int(((1 - alert) & y).sum())
    expected = {"auc": (ranks[y == 1].sum() - p * (p + 1) / 2) / (p * n), "precision": tp / (tp + fp),
                "recall": tp / (tp + fn)}  # fmt: skip
    evaluation = {(r["section"], r["item"]): r for (r,) in rows(ledger_url, RESULT, run=run.run_id, out="evaluation")}
    for name, value in expected.items():
        assert evaluation[("metric", name)]["value"] == pytest.approx(value, abs=1e-9), name
        assert value >= float(SPEC.model.floors[name]), name  # type: ignore[union-attr]
    assert evaluation[("environment", "master")]["text"]

    # The lake: versioned outputs and the fitted pipeline; the run record lists the files.
    version = f"version={_safe(run.run_id)}"
    lake = isolated_env / "analytics" / SPEC.name
    assert (lake / "predictions" / version / "_GOVOPS_COMMIT.json").is_file()
    assert (lake / "_model" / version / "stages").is_dir()
    [(billing, outputs)] = rows(ledger_url, "SELECT billing, outputs FROM govops.analytics_run WHERE run_id = :r",
                                r=run.run_id)  # fmt: skip
    assert billing == "delivery"
    assert {o["name"]: o["kind"] for o in outputs} == {
        "features": "parquet", "predictions": "parquet", "evaluation": "parquet", "_model": "mllib_model",
        "design.html": "file", "test_report.html": "file", "predictions.csv": "file"}  # fmt: skip

    folder = isolated_env / "reports/analytics" / SPEC.name / _safe(run.run_id)
    design = (folder / "design.html").read_text(encoding="utf-8")
    assert "企业违法风险挖掘模型：模型设计文档" in design and "<td>tax_cv</td><td>纳税额变异系数</td>" in design
    report = (folder / "test_report.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(report) and not EXTERNAL.search(design)
    assert (folder / "predictions.csv").read_bytes().startswith(b"\xef\xbb\xbf\xe7\xbb\x9f")  # BOM, 统一社会信用代码
    shown = render(folder / "test_report.html")
    assert "模型测试报告" in shown.text and "测试指标（留出数据）" in shown.text and "测试环境" in shown.text
    assert len(shown.svg_widths) == 1 and shown.svg_widths[0] > 500
    assert_screenshot_not_blank(shown.screenshot)
