"""Metering of application deliverables against a real ledger (no Spark): one deliverable
(spec + work order) billed once whoever runs it, corrections and automatic refreshes free,
a report's manual refresh billed per run at difficulty x factor, the work order's
difficulty checked against the spec's, and a dashboard's two lines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

from govops.analytics import difficulty as dif
from govops.analytics import runs
from govops.analytics.spec import AnalyticsSpec
from govops.settlement.workorders import WorkOrderError, ensure_demo_work_order

pytestmark = pytest.mark.integration
WHEN = datetime(2026, 9, 1, 8, tzinfo=UTC)


def _report(name: str, domains: int = 2) -> AnalyticsSpec:
    return AnalyticsSpec.model_validate({
        "name": name, "kind": "report", "title": "报表", "department": "区大数据中心", "work_order": f"WO-{name}",
        "inputs": {f"in{i}": {"dataset": f"raw/x/d{i}", "domain": f"领域{i}"} for i in range(domains)},
        "outputs": {"out": {"title": "结果", "sql": "SELECT 1 AS n", "columns": {"n": "数量"}}},
        "refresh": {"mode": "manual", "factor": "0.2", "work_order": f"WO-{name}-R"},
    })  # fmt: skip


def _meter(engine: Engine, spec: AnalyticsSpec, run_id: str, *, run_type: str = "manual",
           work_order: str | None = None, manual_refresh: bool = False) -> dict:  # fmt: skip
    work_order = work_order or spec.work_order
    lines = runs.lines_for(spec, work_order, manual_refresh, None)
    runs.check_work_orders(engine, lines)
    with engine.begin() as conn:
        return runs.meter(conn, spec, run_id=run_id, run_type=run_type, work_order=work_order, lines=lines,
                          manual_refresh=manual_refresh, event_time=WHEN, manifest_uri=None)  # fmt: skip


def _usage(engine: Engine, spec: AnalyticsSpec) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            """SELECT work_order_id, quantity, run_id, attributes ->> 'difficulty' FROM govops.usage_event
                WHERE dag_id = :d ORDER BY id"""), {"d": spec.dag_id})]  # fmt: skip


def test_a_deliverable_is_billed_once_and_a_manual_refresh_per_run(ledger: Engine) -> None:
    spec = _report("metering_report")
    ensure_demo_work_order(ledger, spec.work_order, "15", on=date(2026, 9, 1), difficulty=Decimal(2))
    ensure_demo_work_order(ledger, "WO-metering_report-R", "15", on=date(2026, 9, 1), difficulty=Decimal("0.4"))
    ensure_demo_work_order(ledger, "WO-metering_report-2", "15", on=date(2026, 9, 1), difficulty=Decimal(2))

    with pytest.raises(runs.AnalyticsError, match="no delivery yet"):  # a refresh follows a delivery
        _meter(ledger, spec, "refresh-0", manual_refresh=True)
    cases = [  # (run, run type, manual refresh, work order) -> billing, usage rows after
        ("run-1", "manual", False, None, "delivery", 1),
        ("run-1", "manual", False, None, "delivery", 1),  # the same run again (a retry, a clear)
        ("run-2", "manual", False, None, "correction", 1),  # 数据修正及补充: not billed again
        ("run-3", "scheduled", False, None, "automatic_refresh", 1),
        ("run-4", "asset_triggered", False, None, "automatic_refresh", 1),
        ("refresh-1", "manual", True, None, "manual_refresh", 2),
        ("refresh-1", "manual", True, None, "manual_refresh", 2),  # its retry
        ("refresh-2", "manual", True, None, "manual_refresh", 3),
        ("run-5", "manual", False, "WO-metering_report-2", "delivery", 4),  # another work order: a new need
    ]
    for run_id, run_type, manual, work_order, billing, count in cases:
        got = _meter(ledger, spec, run_id, run_type=run_type, manual_refresh=manual, work_order=work_order)
        assert got["billing"] == billing, run_id
        assert len(_usage(ledger, spec)) == count, run_id
    assert _usage(ledger, spec) == [
        ("WO-metering_report", 1, "deliverable:WO-metering_report", "2"),
        ("WO-metering_report-R", 1, "refresh-1", "0.4"),
        ("WO-metering_report-R", 1, "refresh-2", "0.4"),
        ("WO-metering_report-2", 1, "deliverable:WO-metering_report-2", "2"),
    ]


def test_the_work_order_must_carry_the_specs_difficulty(ledger: Engine) -> None:
    spec = _report("difficulty_report", domains=3)
    ensure_demo_work_order(ledger, spec.work_order, "15", on=date(2026, 9, 1), difficulty=Decimal(2))
    with pytest.raises(runs.DifficultyMismatch, match=r"has difficulty 2, the spec gives 3 \(3 data domain"):
        _meter(ledger, spec, "run-1")
    ensure_demo_work_order(ledger, "WO-analysis-14", "14", on=date(2026, 9, 1))
    with pytest.raises(WorkOrderError, match="is for service item 14"):
        _meter(ledger, spec, "run-1", work_order="WO-analysis-14")
    assert _usage(ledger, spec) == []


def test_dashboard_lines_go_to_their_work_orders(ledger: Engine) -> None:
    spec = AnalyticsSpec.model_validate({
        "name": "metering_dashboard", "kind": "dashboard", "title": "大屏", "department": "区大数据中心",
        "work_order": "WO-DASH", "inputs": {"e": {"dataset": "raw/x/e", "domain": "政务服务"}},
        "outputs": {"out": {"title": "结果", "sql": "SELECT 1 AS n", "columns": {"n": "数量"}}},
        "screens": [{"name": "大屏", "size": "big", "theme_domains": {"政务服务": ["out"], "市场主体": ["out"]}},
                    {"name": "小屏", "size": "small", "modules": {"趋势": "out", "排名": "out", "地图": "out"}}],
        "module_factor": "0.1", "module_work_order": "WO-DASH-M",
    })  # fmt: skip
    ensure_demo_work_order(ledger, "WO-DASH", "18", on=date(2026, 9, 1))
    ensure_demo_work_order(ledger, "WO-DASH-M", "18", on=date(2026, 9, 1), difficulty=Decimal("0.1"))
    assert _meter(ledger, spec, "run-1")["billing"] == "delivery"
    assert _meter(ledger, spec, "run-2")["billing"] == "correction"
    assert _usage(ledger, spec) == [("WO-DASH", 2, "deliverable:WO-DASH", "1"),
                                    ("WO-DASH-M", 3, "deliverable:WO-DASH", "0.1")]  # fmt: skip
    assert dif.billed_equivalent(dif.delivery_lines(spec)) == Decimal("2.3")
