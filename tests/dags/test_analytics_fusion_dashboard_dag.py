"""The fusion model and the dashboard specs under real Airflow (dag.test()), a spark-submit of
spark_jobs/analyze.py and PostgreSQL, each end to end once:

- include/analytics/enterprise_risk_fusion.yaml on the demo's register: the 197 legal persons
  ``./dev demo`` loads (seed 42, 500 persons, less the three without a name) topped up to 800
  by govops.sample_data.enterprises. The indicators, scores and levels recorded in
  govops.analytics_result against pandas over the same frames, the held-out metrics against
  an independent computation from the recorded rows and above the spec's floors, the
  documents, and the ledger row: 1 model (item 16) at difficulty 3 (four data domains).
- include/analytics/district_services_dashboard.yaml: the recorded figures against pandas,
  the pages and the chart library in the lake, and the ledger rows: 2 theme domains at 1 and
  2 modules at 0.15 against the module work order.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from govops.analytics import difficulty as dif
from govops.analytics.spec import load_spec
from govops.charts import plotly_js_name
from govops.dag_runs import DagRunResult, run_dag
from govops.sample_data import SampleConfig, build_frames
from govops.sample_data.enterprises import REGISTER, build, register, write_enterprise_sample
from govops.security.archive_sample import write_sample_events
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark.manifest import _safe
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
REPO = Path(__file__).resolve().parents[2]
FUSION = load_spec(REPO / "include/analytics/enterprise_risk_fusion.yaml")
DASHBOARD = load_spec(REPO / "include/analytics/district_services_dashboard.yaml")
RESULT = """SELECT x.row FROM govops.analytics_result x JOIN govops.analytics_run r ON r.id = x.run_pk
             WHERE r.dag_id = :dag AND r.run_id = :run AND x.output = :out ORDER BY x.row_no"""
USAGE = """SELECT service_item_code, unit, quantity, work_order_id, run_id, task_id, attributes ->> 'difficulty'
             FROM govops.usage_event WHERE dag_id = :d ORDER BY id"""


def _recorded(ledger_url: str, run: DagRunResult, output: str) -> pd.DataFrame:
    return pd.DataFrame([r for (r,) in rows(ledger_url, RESULT, dag=run.dag_id, run=run.run_id, out=output)])


def test_fusion_model_meets_its_floors_on_the_demo_register_and_meters_one_model(
    isolated_env: Path, ledger_url: str
) -> None:
    legal = build_frames(SampleConfig(seed=42, persons=500)).legal_persons
    legal = legal[legal["name"].notna()]  # what pipeline_frontdb_legal_persons loads in the demo
    assert len(legal) == 197
    written = write_enterprise_sample(isolated_env.as_uri(), legal, with_legal_persons=True)
    enterprises = register(legal)
    assert written[REGISTER] == len(enterprises) == 800 and (enterprises["source"] == "lake").sum() == 197
    planted = build(enterprises)
    [line] = dif.delivery_lines(FUSION)
    assert (line.service_item, line.unit, line.quantity, line.difficulty) == ("16", "model", 1, Decimal(3))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-FUSION", "16", on=date(2026, 6, 1), difficulty=line.difficulty)
    engine.dispose()

    run = run_dag(FUSION.dag_id, conf={"work_order_id": "WO-T-FUSION"}, logical_date=datetime(2026, 11, 2, tzinfo=UTC))
    assert run.state == "success", run.task_states
    assert rows(ledger_url, USAGE, d=FUSION.dag_id) == [
        ("16", "model", 1, "WO-T-FUSION", "deliverable:WO-T-FUSION", "deliver", "3")]  # fmt: skip

    # The indicators, from the departments' frames with pandas.
    got = _recorded(ledger_url, run, "indicators").set_index("uscc").sort_index()
    tax = planted.tax.assign(amount=planted.tax["tax_amount"].astype(float))
    by_year = tax.groupby(["uscc", tax["month"] >= "2025-11"])["amount"].sum().unstack()
    failed = planted.inspections[(planted.inspections["result"] == "不合格")
                                 & (pd.to_datetime(planted.inspections["inspected_on"]) >= "2025-11-01")]  # fmt: skip
    want = pd.DataFrame(index=pd.Index(sorted(enterprises["uscc"]), name="uscc"))
    want["failed_inspections"] = failed.groupby("uscc").size().reindex(want.index).fillna(0).astype(int)
    want["tax_drop"] = (1 - by_year[True] / by_year[False]).reindex(want.index)
    want["penalized"] = want.index.isin(planted.penalties["uscc"]).astype(int)
    assert list(got.index) == list(want.index)
    assert (got["failed_inspections"] == want["failed_inspections"]).all()
    assert (got["penalized"] == want["penalized"]).all()
    assert (got["tax_drop"] - want["tax_drop"]).abs().max() <= 1e-4

    # Scores and alerts: the spec's weights and thresholds; the metrics on the held-out rows.
    model = FUSION.model
    assert model is not None
    result = _recorded(ledger_url, run, "result").set_index("uscc").sort_index()
    parts = sum(float(i.weight) * (got[c].astype(float).fillna(0).clip(lower=0) / float(i.threshold)).clip(upper=1)
                for c, i in model.indicators.items())  # fmt: skip
    assert (result["score"] - 100 * parts).abs().max() <= 0.005 + 1e-9
    level = pd.Series("低风险", index=got.index)
    level[result["score"] >= 20] = "中风险"
    level[result["score"] >= 40] = "高风险"
    level[got["failed_inspections"] >= 2] = "高风险"  # the rule wins over the score
    assert (result["level"] == level).all()
    assert (result["alert"] == level.isin(model.alert_levels).astype(int)).all()
    assert result.loc[got["tax_drop"] >= 0.5, "reasons"].str.contains("纳税额同比降幅").all()
    test = result[result["split"] == "test"].join(got["penalized"].rename("y"))
    y, alert = test["y"], test["alert"]
    ranks = test["score"].rank(method="average")
    p, n = int(y.sum()), int((1 - y).sum())
    tp, fp, fn = int((alert & y).sum()), int((alert & (1 - y)).sum()), int(((1 - alert) & y).sum())
    expected = {"auc": (ranks[y == 1].sum() - p * (p + 1) / 2) / (p * n), "precision": tp / (tp + fp),
                "recall": tp / (tp + fn)}  # fmt: skip
    evaluation = {(r["section"], r["item"]): r for r in _recorded(ledger_url, run, "evaluation").to_dict("records")}
    for name, value in expected.items():
        assert evaluation[("metric", name)]["value"] == pytest.approx(value, abs=1e-9), name
        assert value >= float(model.floors[name]) and evaluation[("metric", name)]["passed"] is True, name
    assert len(test) > 200 and p >= 20  # enough held-out rows and penalized enterprises to mean something
    assert evaluation[("method", "test_positives")]["value"] == p
    assert all(evaluation[("scenario", x.title)]["passed"] for x in model.scenarios)
    # The enterprises planted in trouble rank first (AUC of the score against the plant, all rows).
    risky = result.index.isin(planted.risky)
    ranks = result["score"].rank(method="average")
    p, n = int(risky.sum()), int((~risky).sum())
    assert (ranks[risky].sum() - p * (p + 1) / 2) / (p * n) >= 0.9

    folder = isolated_env / "reports/analytics" / FUSION.name / _safe(run.run_id)
    design = (folder / "design.html").read_text(encoding="utf-8")
    assert "企业经营风险预警融合模型：模型设计文档" in design
    for c, i in model.indicators.items():  # the indicator definitions, from the spec
        assert f"<td>{c}</td><td>{i.title}</td><td>{i.definition}</td><td>{i.department}</td>" in design
        assert f"<td>{i.weight}</td><td>{i.threshold}{i.unit}</td></tr>" in design
    assert "测试指标（留出数据）" in (folder / "test_report.html").read_text(encoding="utf-8")
    assert (isolated_env / "analytics" / FUSION.name / "result" / f"version={_safe(run.run_id)}").is_dir()


def test_dashboard_pages_and_its_theme_domains_metered(isolated_env: Path, ledger_url: str) -> None:
    events_dataset, persons_dataset = (DASHBOARD.inputs[v].dataset for v in ("events", "persons"))
    write_sample_events(isolated_env.as_uri(), events_dataset, start=date(2025, 1, 1), end=date(2025, 12, 31),
                        every_days=7, rows_per_day=30)  # fmt: skip
    persons = build_frames(SampleConfig(seed=7, persons=200)).persons
    (isolated_env / persons_dataset).mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(persons, preserve_index=False),
                   isolated_env / persons_dataset / "part-0.parquet")  # fmt: skip
    themes, modules = dif.delivery_lines(DASHBOARD)
    assert (themes.quantity, themes.difficulty, modules.quantity, modules.difficulty) == (2, 1, 2, Decimal("0.15"))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-DASH", "18", on=date(2026, 6, 1), difficulty=themes.difficulty)
    ensure_demo_work_order(engine, modules.work_order, "18", on=date(2026, 6, 1), difficulty=modules.difficulty)
    engine.dispose()

    run = run_dag(DASHBOARD.dag_id, conf={"work_order_id": "WO-T-DASH"}, logical_date=datetime(2026, 11, 2, tzinfo=UTC))
    assert run.state == "success", run.task_states
    assert rows(ledger_url, USAGE, d=DASHBOARD.dag_id) == [
        ("18", "theme_domain", 2, "WO-T-DASH", "deliverable:WO-T-DASH", "deliver", "1"),
        ("18", "theme_domain", 2, modules.work_order, "deliverable:WO-T-DASH", "deliver", "0.15")]  # fmt: skip

    events = pq.read_table(isolated_env / events_dataset).to_pandas()
    months = events["event_date"].astype(str).str[:7].value_counts().sort_index()
    trend = _recorded(ledger_url, run, "monthly_trend")
    assert list(zip(trend["month"], trend["events"], strict=True)) == [(m, int(c)) for m, c in months.items()]
    genders = _recorded(ledger_url, run, "persons_by_gender").set_index("gender")["persons"]
    assert genders.to_dict() == persons.groupby("gender").size().to_dict()

    folder = isolated_env / "reports/analytics" / DASHBOARD.name / _safe(run.run_id)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["index.html", "big_1_1.html", "big_1_2.html", "module_2_1.html", "module_3_1.html", plotly_js_name()]
    )
    page = (folder / "big_1_1.html").read_text(encoding="utf-8")
    assert "主题域：政务服务" in page and f"<script src='{plotly_js_name()}'></script>" in page
    assert f'"x":{json.dumps(list(months.index), separators=(",", ":"))}' in page  # the months the chart draws
    [(billing, outputs)] = rows(
        ledger_url,
        """SELECT billing, outputs FROM govops.analytics_run
                                                WHERE dag_id = :d AND run_id = :r""",
        d=DASHBOARD.dag_id,
        r=run.run_id,
    )
    assert billing == "delivery" and {o["name"] for o in outputs if o["kind"] == "file"} == {
        "index.html",
        "big_1_1.html",
        "big_1_2.html",
        "module_2_1.html",
        "module_3_1.html",
        plotly_js_name(),
    }
