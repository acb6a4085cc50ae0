"""Metering of application deliverables against a real ledger (no Spark): one deliverable
(spec + work order) billed once whoever runs it, corrections and automatic refreshes free,
a report's manual refresh billed per run at difficulty x factor, the work order's
difficulty checked against the spec's, and a dashboard's two lines."""

from __future__ import annotations

from dataclasses import asdict
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


def _analysis(name: str, domain: str = "人口", library: str | None = None) -> AnalyticsSpec:
    return AnalyticsSpec.model_validate({
        "name": name, "kind": "analysis", "title": "统计", "department": "区大数据中心", "work_order": "WO-CAP",
        "inputs": {"p": {"dataset": "raw/x/persons", "domain": domain}}, "library": library,
        "outputs": {"out": {"title": "结果", "sql": "SELECT 1 AS n", "columns": {"n": "数量"}}},
    })  # fmt: skip


def test_at_most_20_analyses_per_library_are_billed_in_one_work_order_through_settlement(ledger: Engine) -> None:
    """Item 14: 每个库中的数据融合加工程序个数最多记录20个（包括20）；低于20个则按实结算. 21 analyses of
    one library in one work order bill 20 (the 21st is recorded as over_cap, also on a later run);
    an analysis of another library in the same order is billed; 19 in another order bill 19."""
    from govops.settlement import store
    from govops.settlement import workorders as wos

    for order in ("WO-CAP", "WO-CAP-19"):
        ensure_demo_work_order(ledger, order, "14", on=date(2026, 9, 1))
    billings = [_meter(ledger, _analysis(f"cap_people_{n:02d}"), f"run-{n}")["billing"] for n in range(1, 22)]
    assert billings == ["delivery"] * 20 + ["over_cap"]
    assert _meter(ledger, _analysis("cap_people_21"), "run-21b")["billing"] == "over_cap"  # stays unbilled
    spec = _analysis("cap_people_21")  # its run record says so
    manifest = {"run": {"dag_id": spec.dag_id, "run_id": "run-21c"}, "inputs": [], "outputs": [],
                "finished_at": WHEN.isoformat()}  # fmt: skip
    lines = runs.lines_for(spec, "WO-CAP", False, None)
    prepared = {"work_order_id": "WO-CAP", "manual_refresh": False, "parameters": {},
                "lines": [{**asdict(x), "difficulty": str(x.difficulty)} for x in lines]}  # fmt: skip
    assert runs.commit(ledger, spec, manifest, prepared, run_type="manual")["billing"] == "over_cap"
    assert _meter(ledger, _analysis("cap_people_20"), "run-20b")["billing"] == "correction"
    other = _analysis("cap_legal_01", domain="法人")
    assert other.library_name == "法人" and _meter(ledger, other, "run-1")["billing"] == "delivery"
    named = _analysis("cap_named_01", domain="法人", library="人口")  # the spec names its library: full
    assert _meter(ledger, named, "run-1")["billing"] == "over_cap"
    for n in range(1, 20):
        assert _meter(ledger, _analysis(f"cap_few_{n:02d}"), f"run-{n}", work_order="WO-CAP-19")["billing"] == (
            "delivery")  # fmt: skip
    with ledger.connect() as conn:
        billed = conn.execute(text("""SELECT work_order_id, attributes ->> 'library', count(*), sum(quantity)
                                        FROM govops.usage_event WHERE service_item_code = '14'
                                       GROUP BY 1, 2 ORDER BY 1, 2""")).all()  # fmt: skip
    assert [tuple(r) for r in billed] == [("WO-CAP", "人口", 20, 20), ("WO-CAP", "法人", 1, 1),
                                          ("WO-CAP-19", "人口", 19, 19)]  # fmt: skip

    # Through settlement: 21 analyses at 3,000.00 each at difficulty 1, one of 22 not billed.
    with ledger.begin() as conn:
        for order in ("WO-CAP", "WO-CAP-19"):
            for state in ("in_progress", "delivered"):
                wos.set_work_order_state(conn, order, state)
            for state in ("in_progress", "delivered"):
                wos.set_service_order_state(conn, f"SO-{order}", state)
            wos.accept_service_order(conn, f"SO-{order}", quality_score=Decimal(95), accepted_on=date(2026, 9, 20),
                                     operator_opinion="交付", purchaser_opinion="同意验收")  # fmt: skip
        store.add_period(conn, "2026-P5", "bimonthly", date(2026, 9, 1), date(2026, 10, 31))
        store.record_assessment(conn, "2026-P5", Decimal(95), Decimal(95))
    statement = store.settle(ledger, "2026-P5")
    lines = {w["work_order_id"]: w for x in statement["lines"] if x["kind"] == "service_order"
             for w in x["work_orders"]}  # fmt: skip
    assert (lines["WO-CAP"]["raw_quantity"], lines["WO-CAP"]["amount"]) == (21, "63000.00")
    assert (lines["WO-CAP-19"]["raw_quantity"], lines["WO-CAP-19"]["amount"]) == (19, "57000.00")
