"""Settlement on the real PostgreSQL server: a statement to the cent, closing, late usage,
rework, penalties carried over, prepayment, refusals, exports and verification."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from govops.ledger.usage import TaskRef, UsageEvent, record_usage
from govops.settlement import store, workorders
from govops.settlement.catalog import load_catalog
from govops.settlement.evidence import evidence_pack
from govops.settlement.export import WRITERS

pytestmark = pytest.mark.integration
CATALOG = load_catalog()


def usage(engine: Engine, run: str, wo: str | None, item: str, unit: str, quantity: int, when: datetime) -> None:
    record_usage(
        engine,
        [UsageEvent(task=TaskRef("settle_test", run, "t"), service_item_code=item, quantity=quantity, unit=unit,
                    work_order_id=wo, data_source=f"{item}-{run}", event_time=when)],
    )  # fmt: skip


def order(conn, so: str, wos: list[tuple[str, str, str, str]]) -> None:
    if not conn.execute(text("SELECT 1 FROM govops.service_task WHERE id = 'T-1'")).first():
        workorders.create_plan(conn, "PLAN-2025", "2025年度运营服务任务计划", 2025)
        workorders.create_task(conn, "T-1", "PLAN-2025", "数据治理", "治理类")
    workorders.create_service_order(conn, workorders.ServiceOrder(id=so, name=f"服务单 {so}", task_id="T-1"))
    for wo_id, item, unit, difficulty in wos:
        workorders.create_work_order(
            conn,
            workorders.WorkOrder(id=wo_id, service_order_id=so, service_item_code=item, unit=unit,
                                 order_date=date(2025, 3, 1), difficulty=D(difficulty)),
            CATALOG,
        )  # fmt: skip
        for state in ("approved", "in_progress", "delivered"):
            workorders.set_work_order_state(conn, wo_id, state)
    for state in ("approved", "in_progress", "delivered"):
        workorders.set_service_order_state(conn, so, state)


@pytest.fixture
def contract_setup(fresh_ledger: Engine) -> Engine:
    e = fresh_ledger
    march = datetime(2025, 3, 20, tzinfo=UTC)
    with e.begin() as conn:
        order(conn, "SO-1", [("WO-1", "01", "record", "0.5"), ("WO-2", "04", "table", "1")])
        order(conn, "SO-2", [("WO-3", "04", "table", "1")])
        store.add_period(conn, "2025-P2", "bimonthly", date(2025, 3, 1), date(2025, 4, 30))
        store.add_period(conn, "2025-P3", "bimonthly", date(2025, 5, 1), date(2025, 6, 30))
        store.record_assessment(conn, "2025-P2", D("90"), D("80"))  # overall 85.5 -> 5 %
        store.record_assessment(conn, "2025-P3", D("95"), D("95"))
    usage(e, "r1", "WO-1", "01", "record", 3_500_000, march)  # 350 万条
    for run in ("r2", "r3", "r4"):
        usage(e, run, "WO-2", "04", "table", 1, march)
    usage(e, "r5", "WO-3", "04", "table", 2, march)
    usage(e, "r6", None, "04", "table", 1, march)  # the unassigned queue
    with e.begin() as conn:
        workorders.accept_service_order(conn, "SO-1", quality_score=D("85"), accepted_on=date(2025, 4, 10),
                                        operator_opinion="按期交付", purchaser_opinion="同意验收")
        workorders.accept_service_order(conn, "SO-2", quality_score=D("55"), accepted_on=date(2025, 4, 12),
                                        operator_opinion="已整改", purchaser_opinion="需返工")  # fmt: skip
    return e


def test_statement_to_the_cent(contract_setup: Engine) -> None:
    s = store.settle(contract_setup, "2025-P2")
    assert s["state"] == "draft"
    [line] = [x for x in s["lines"] if x["kind"] == "service_order"]
    wo1, wo2 = line["work_orders"]
    # 350 万条 graduated: 50x120 + 100x100 + 200x80 = 32,000 x difficulty 0.5
    assert (wo1["billing_quantity"], wo1["tiered"], wo1["amount"]) == ("350", "32000.00", "16000.00")
    assert (wo2["raw_quantity"], wo2["amount"], wo2["catalog_version"]) == (3, "1500.00", "2024.1")
    assert (line["coefficient"], line["amount"]) == ("0.95", "16625.00")  # 17,500 x 0.95
    assert s["excluded"] == [{"service_order_id": "SO-2", "quality_score": "55.00",
                              "reason": "rework pending: scored below 60 and not yet re-evaluated"}]
    assert s["unassigned"] == [{"service_item_code": "04", "unit": "table", "events": 1, "quantity": 1}]
    t = s["totals"]
    assert (t["gross"], t["retained"]) == ("16625.00", "14962.50")
    assert (t["deduction_rate"], t["deduction"]) == ("0.05", "831.25")
    assert (t["net"], t["prepayment_offset"], t["payable"]) == ("14131.25", "14131.25", "0.00")
    assert t["prepayment_remaining"] == "4185868.75"  # 4,200,000.00 - 14,131.25


def test_resettling_closing_and_the_database_guard(contract_setup: Engine) -> None:
    e = contract_setup
    first = store.settle(e, "2025-P2")
    again = store.settle(e, "2025-P2")
    assert again["content_hash"] == first["content_hash"]
    with e.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM govops.settlement_statement")).scalar_one() == 1
    closed = store.close(e, "2025-P2")
    assert closed["state"] == "closed" and closed["content_hash"] == first["content_hash"]
    assert store.settle(e, "2025-P2") == closed
    with pytest.raises(store.PeriodClosed, match="PERIOD_CLOSED"):
        store.settle(e, "2025-P2", force=True)
    for statement in (
        "UPDATE govops.settlement_statement SET statement = '{}' WHERE period_id = '2025-P2'",
        "DELETE FROM govops.settlement_statement WHERE period_id = '2025-P2'",
        "UPDATE govops.settlement_period SET state = 'open' WHERE id = '2025-P2'",
        "INSERT INTO govops.period_penalty (period_id, incident_type, amount) VALUES ('2025-P2', 'data_loss', 1)",
    ):
        with pytest.raises(DBAPIError, match="PERIOD_CLOSED"), e.begin() as conn:
            conn.execute(text(statement))
    result = store.verify(e, "2025-P2")
    assert result.ok and result.recomputed_hash == closed["content_hash"]


def test_late_usage_rework_penalty_and_carry_over(contract_setup: Engine) -> None:
    e = contract_setup
    store.close(e, "2025-P2")
    # Late usage for WO-1 (arrives after P2 closed), SO-2 re-evaluated at 65, a data-loss incident.
    usage(e, "r7", "WO-1", "01", "record", 500_000, datetime(2025, 5, 3, tzinfo=UTC))
    with e.begin() as conn:
        workorders.rescore_rework(conn, "SO-2", D("65"))
        workorders.open_event_order(conn, "EV-1", "抽取结果丢失", date(2025, 5, 9), incident_type="data_loss")
        assert store.add_penalty(conn, "2025-P3", "data_loss", event_order_id="EV-1") == D("200000.00")
    s = store.settle(e, "2025-P3")
    lines = {x["kind"]: x for x in s["lines"]}
    adj = lines["adjustment"]
    # 400 万条: 6,000 + 10,000 + 250x80 = 36,000 x 0.5 = 18,000; + 1,500; x 0.95 = 18,525 - 16,625 billed
    assert (adj["service_order_id"], adj["billed_before"], adj["fee_now"], adj["amount"]) == (
        "SO-1", "16625.00", "18525.00", "1900.00")
    so2 = lines["service_order"]
    assert (so2["service_order_id"], so2["coefficient"], so2["amount"]) == ("SO-2", "0.80", "800.00")  # 2 x 500
    t = s["totals"]
    assert (t["gross"], t["retained"], t["deduction"], t["penalties"]) == ("2700.00", "2430.00", "0.00", "200000.00")
    assert (t["net"], t["payable"], t["shortfall_out"]) == ("-197570.00", "0.00", "197570.00")
    assert (t["prepayment_offset"], t["prepayment_remaining"]) == ("0.00", "4185868.75")
    # P2's verification still holds: the late event is beyond the ids P2 counted.
    assert store.verify(e, "2025-P2").ok


def test_periods_settle_in_order_and_need_scores(contract_setup: Engine) -> None:
    with pytest.raises(store.SettlementError, match="settle and close earlier period"):
        store.settle(contract_setup, "2025-P3")
    with contract_setup.begin() as conn:
        store.add_period(conn, "2025-P4", "quarterly", date(2025, 7, 1), date(2025, 9, 30))
    overlap = "conflicting key value violates exclusion constraint"
    with pytest.raises(DBAPIError, match=overlap), contract_setup.begin() as conn:
        store.add_period(conn, "2025-X", "monthly", date(2025, 9, 1), date(2025, 9, 30))
    store.close(contract_setup, "2025-P2")
    store.close(contract_setup, "2025-P3")
    with pytest.raises(store.SettlementError, match="record the assessment"):
        store.settle(contract_setup, "2025-P4")


def test_runs_are_refused_against_the_wrong_work_order(contract_setup: Engine) -> None:
    e = contract_setup
    with e.begin() as conn:
        order(conn, "SO-9", [])
        workorders.create_work_order(
            conn, workorders.WorkOrder(id="WO-9", service_order_id="SO-9", service_item_code="04",
                                       order_date=date(2025, 3, 1)), CATALOG)  # fmt: skip
    with pytest.raises(workorders.WorkOrderError, match="'WO-404' is unknown"):
        workorders.check_runnable(e, "WO-404", "04")
    with pytest.raises(workorders.WorkOrderError, match="WO-9 is draft; runs are allowed only when"):
        workorders.check_runnable(e, "WO-9", "04")
    with e.begin() as conn:
        workorders.set_work_order_state(conn, "WO-9", "approved")
    workorders.check_runnable(e, "WO-9", "04")
    with pytest.raises(workorders.WorkOrderError, match="is for service item 04, not 02"):
        workorders.check_runnable(e, "WO-9", "02")
    with pytest.raises(workorders.WorkOrderError, match="cannot go from approved to accepted"), e.begin() as conn:
        workorders.set_work_order_state(conn, "WO-9", "accepted")
    out_of_range = r"difficulty 2 is outside item 04's range \[0.5, 1\]"
    with pytest.raises(workorders.WorkOrderError, match=out_of_range), e.begin() as conn:
        workorders.create_work_order(
            conn, workorders.WorkOrder(id="WO-10", service_order_id="SO-9", service_item_code="04",
                                       order_date=date(2025, 3, 1), difficulty=D(2)), CATALOG)  # fmt: skip


def test_unassigned_usage_is_billed_only_once_assigned(contract_setup: Engine) -> None:
    e = contract_setup
    with e.connect() as conn:
        [event_id] = conn.execute(text("SELECT id FROM govops.unassigned_usage_v1")).scalars().all()
    wrong_item = "is item 04 in table; work order WO-1 is item 01"
    with pytest.raises(workorders.WorkOrderError, match=wrong_item), e.begin() as conn:
        workorders.assign_usage(conn, [event_id], "WO-1", "ops@qingpu")
    with e.begin() as conn:
        assert workorders.assign_usage(conn, [event_id], "WO-2", "ops@qingpu") == 1
    s = store.settle(e, "2025-P2")
    assert s["unassigned"] == []
    wo2 = s["lines"][0]["work_orders"][1]
    assert (wo2["raw_quantity"], wo2["amount"]) == (4, "2000.00")
    with pytest.raises(DBAPIError, match="append-only"), e.begin() as conn:
        conn.execute(text("DELETE FROM govops.usage_assignment"))


def test_exports_and_evidence(contract_setup: Engine, tmp_path: Path) -> None:
    e = contract_setup
    statement = store.close(e, "2025-P2")
    paths = {fmt: WRITERS[fmt](statement, tmp_path / f"p2.{fmt}") for fmt in WRITERS}
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["content_hash"] == statement["content_hash"]
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8-sig")))
    assert [r["amount"] for r in rows if r["kind"] == "service_order" and not r["work_order_id"]] == ["16625.00"]
    assert {r["note"]: r["amount"] for r in rows if r["kind"] == "total"}["payable"] == "0.00"
    from openpyxl import load_workbook

    book = load_workbook(paths["xlsx"])
    assert book.sheetnames == ["Summary", "Lines", "Excluded", "Unassigned"]
    assert book["Excluded"]["A2"].value == "SO-2"

    pack = json.loads(evidence_pack(e, "WO-1", tmp_path / "evidence").read_text(encoding="utf-8"))
    assert [r["quantity"] for r in pack["usage_events"]] == [3_500_000]
    assert pack["runs"] == ["settle_test/r1"]
    assert pack["recomputed"]["amount"] == "16000.00"


def test_the_command_line(contract_setup: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from govops.settlement.__main__ import main

    monkeypatch.setenv("GOVOPS_DATABASE_URL", contract_setup.url.render_as_string(hide_password=False))
    assert main(["penalty", "2025-P2", "--type", "no_such_incident"]) == 2
    assert "unknown incident type 'no_such_incident'" in capsys.readouterr().err
    assert main(["close", "2025-P2"]) == 0
    assert '"payable": "0.00"' in capsys.readouterr().out
    assert main(["settle", "2025-P2", "--force"]) == 2
    assert "PERIOD_CLOSED" in capsys.readouterr().err
    assert main(["export", "2025-P2", "--format", "xlsx", "--out", str(tmp_path / "p2.xlsx")]) == 0
    assert (tmp_path / "p2.xlsx").stat().st_size > 0
    assert main(["verify", "2025-P2"]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
