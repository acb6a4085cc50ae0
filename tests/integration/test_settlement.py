"""Settlement on the real PostgreSQL server: a statement to the cent, closing, late usage,
rework, penalties carried over, prepayment, refusals, exports and verification."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from govops.ledger.usage import TaskRef, UsageEvent, record_usage
from govops.ops.event_orders import raise_order
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


def execute(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


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
        ev = raise_order(conn, "抽取结果丢失", description="", reporter="监理", reporting_unit="区大数据中心",
                         at=datetime(2025, 5, 9, tzinfo=UTC))
        assert store.add_penalty(conn, "2025-P3", "data_loss", event_order_id=ev) == D("200000.00")
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
    overlap = r"period 2025-X \(2025-09-01 to 2025-09-30\) overlaps period 2025-P4 \(2025-07-01 to 2025-09-30\)"
    with pytest.raises(store.SettlementError, match=overlap), contract_setup.begin() as conn:
        store.add_period(conn, "2025-X", "monthly", date(2025, 9, 1), date(2025, 9, 30))
    with pytest.raises(DBAPIError, match="conflicting key value violates exclusion constraint"):
        execute(contract_setup, "INSERT INTO govops.settlement_period (id, kind, start_date, end_date) "
                                "VALUES ('2025-X', 'monthly', '2025-09-01', '2025-09-30')")  # the database's own guard
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


def _wait_until_blocked(engine: Engine, sql_fragment: str) -> None:
    """Until another backend of this database waits on a lock while running ``sql_fragment``."""
    deadline = time.monotonic() + 20
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text("""SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                        AND wait_event_type = 'Lock' AND query LIKE :q"""),
                {"q": f"%{sql_fragment}%"},
            ).scalar_one()  # fmt: skip
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError(f"no backend blocked on {sql_fragment!r}")


def test_close_is_one_transaction_under_the_period_lock(contract_setup: Engine, monkeypatch) -> None:
    """Item 1: a settle that arrives while close is computing waits for the close and then
    returns the closed statement; the late usage it would have counted goes to the next
    period as an adjustment, never a second full billing."""
    e = contract_setup
    gather = store.gather_inputs
    concurrent: dict[str, object] = {}

    def gather_then_interleave(conn, period):  # type: ignore[no-untyped-def]
        inputs = gather(conn, period)
        if not concurrent:  # the close's own gathering: new usage lands, and a settle starts
            usage(e, "late", "WO-1", "01", "record", 500_000, datetime(2025, 4, 30, tzinfo=UTC))

            def settle() -> None:
                try:
                    concurrent["result"] = store.settle(e, "2025-P2")
                except Exception as exc:  # reported by the assertion below
                    concurrent["result"] = exc

            concurrent["thread"] = threading.Thread(target=settle)
            concurrent["thread"].start()  # type: ignore[attr-defined]
            _wait_until_blocked(e, "FROM govops.settlement_period WHERE id")
        return inputs

    monkeypatch.setattr(store, "gather_inputs", gather_then_interleave)
    closed = store.close(e, "2025-P2")
    concurrent["thread"].join(30)  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert closed["state"] == "closed"
    assert concurrent["result"] == closed  # the waiting settle saw the closed period
    stored = store.get_statement(e, "2025-P2")
    assert stored is not None and (stored["state"], stored["content_hash"]) == ("closed", closed["content_hash"])
    assert store.verify(e, "2025-P2").ok
    with pytest.raises(store.PeriodClosed, match="period 2025-P2 is closed; it is already closed"):
        store.close(e, "2025-P2")
    # The late 50 万条 is billed once, in P3, as an adjustment (18,525.00 - 16,625.00).
    p3 = store.settle(e, "2025-P3")
    assert [(x["kind"], x["amount"]) for x in p3["lines"] if x["kind"] == "adjustment"] == [("adjustment", "1900.00")]


def test_a_closed_period_needs_its_closed_statement(contract_setup: Engine) -> None:
    """Item 1: the database refuses a closed period without a closed statement; a pair broken
    before migration 0008 (simulated with triggers off) fails verify and blocks later periods."""
    e = contract_setup
    with pytest.raises(DBAPIError, match="period 2025-P2 cannot be closed without its closed statement"):
        execute(e, "UPDATE govops.settlement_period SET state = 'closed' WHERE id = '2025-P2'")
    store.settle(e, "2025-P2")
    with pytest.raises(DBAPIError, match="period 2025-P2 cannot be closed without its closed statement"):
        execute(e, "UPDATE govops.settlement_period SET state = 'closed' WHERE id = '2025-P2'")
    with pytest.raises(DBAPIError, match="the statement of period 2025-P2 is closed but the period is not"):
        execute(e, "UPDATE govops.settlement_statement SET state = 'closed' WHERE period_id = '2025-P2'")
    closed = store.close(e, "2025-P2")
    assert store.verify(e, "2025-P2").ok
    with e.begin() as conn:  # what the two-transaction close could leave behind
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE govops.settlement_statement SET state = 'draft' WHERE period_id = '2025-P2'"))
    result = store.verify(e, "2025-P2")
    assert not result.ok and result.stored_hash == closed["content_hash"]
    assert result.ledger_mismatches == ["period 2025-P2 is closed but its statement is draft"]
    with pytest.raises(store.SettlementError, match=r"closed period\(s\) 2025-P2 have no closed statement"):
        store.settle(e, "2025-P3")


def test_no_work_order_joins_a_billed_service_order(contract_setup: Engine) -> None:
    """Item 2: an accepted service order takes no new work order (the API and the database
    refuse it), so the periods after its billing still settle."""
    e = contract_setup
    store.close(e, "2025-P2")  # SO-1 billed
    late = workorders.WorkOrder(id="WO-4", service_order_id="SO-1", service_item_code="04", unit="table",
                                order_date=date(2025, 5, 2))  # fmt: skip
    refused = "WORK_ORDER_REFUSED: work order WO-4: service order SO-1 is accepted; it takes no new work order"
    with pytest.raises(workorders.WorkOrderError, match=refused), e.begin() as conn:
        workorders.create_work_order(conn, late, CATALOG)
    with pytest.raises(DBAPIError, match="WORK_ORDER_REFUSED: service order SO-1 is accepted; work order WO-4"):
        execute(e, "INSERT INTO govops.work_order (id, service_order_id, service_item_code, unit, order_date) "
                   "VALUES ('WO-4', 'SO-1', '04', 'table', '2025-05-02')")  # fmt: skip
    with pytest.raises(DBAPIError, match="WORK_ORDER_REFUSED: service order SO-1 is accepted; work order WO-3"):
        execute(e, "UPDATE govops.work_order SET service_order_id = 'SO-1' WHERE id = 'WO-3'")
    with e.connect() as conn:
        so1 = conn.execute(text("SELECT count(*) FROM govops.work_order WHERE service_order_id = 'SO-1'")).scalar()
    assert so1 == 2
    # The work goes to a new service order, billed on its own once accepted.
    with e.begin() as conn:
        order(conn, "SO-5", [("WO-4", "04", "table", "1")])
    usage(e, "r8", "WO-4", "04", "table", 2, datetime(2025, 5, 3, tzinfo=UTC))
    with e.begin() as conn:
        workorders.rescore_rework(conn, "SO-2", D("65"))
        workorders.accept_service_order(conn, "SO-5", quality_score=D("92"), accepted_on=date(2025, 6, 1),
                                        operator_opinion="按期交付", purchaser_opinion="同意验收")  # fmt: skip
    p3 = store.close(e, "2025-P3")
    assert [(x["service_order_id"], x["amount"]) for x in p3["lines"]] == [("SO-2", "800.00"), ("SO-5", "1000.00")]


def test_settlement_line_view_per_work_order(contract_setup: Engine) -> None:
    """Item 6: service-order lines list their work orders with quantities; sum(amount) is
    still the sum of the lines."""
    e = contract_setup
    s = store.settle(e, "2025-P2")
    with e.connect() as conn:
        rows = conn.execute(
            text("""SELECT line_no, kind, service_order_id, work_order_id, service_item_code, unit, raw_quantity,
                           billing_quantity, difficulty, coefficient, amount, work_order_amount, catalog_version,
                           event_count
                      FROM govops.settlement_line_v1 WHERE period_id = '2025-P2'
                     ORDER BY line_no, work_order_id NULLS FIRST""")
        ).all()  # fmt: skip
        total = conn.execute(
            text("SELECT sum(amount) FROM govops.settlement_line_v1 WHERE period_id = '2025-P2'")
        ).scalar_one()
    assert [tuple(r) for r in rows] == [
        (1, "service_order", "SO-1", None, None, None, None, None, None, D("0.95"), D("16625.00"), None, None, None),
        (1, "service_order", "SO-1", "WO-1", "01", "record", 3_500_000, D("350"), D("0.500"), D("0.95"), None,
         D("16000.00"), "2024.1", 1),
        (1, "service_order", "SO-1", "WO-2", "04", "table", 3, D("3"), D("1.000"), D("0.95"), None, D("1500.00"),
         "2024.1", 3),
    ]  # fmt: skip
    assert total == D(s["totals"]["gross"])


def test_truncate_is_refused_and_revoked(contract_setup: Engine) -> None:
    """Item 4: TRUNCATE skips row triggers; a statement trigger refuses it on every append-only
    and closed-period table, and no application role holds the privilege."""
    e = contract_setup
    store.close(e, "2025-P2")
    tables = ("usage_event", "usage_assignment", "settlement_period", "settlement_statement", "period_penalty")
    for table in tables:
        with pytest.raises(DBAPIError, match=rf"TRUNCATE_REFUSED: govops\.{table} is append-only"), e.begin() as conn:
            conn.execute(text(f"TRUNCATE govops.{table} CASCADE"))
    with pytest.raises(DBAPIError, match=r"TRUNCATE_REFUSED: govops\.usage_event"), e.begin() as conn:
        conn.execute(text("TRUNCATE govops.work_order CASCADE"))  # cascading reaches the ledger
    with e.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM govops.usage_event")).scalar_one() == 6
        # Nobody holds it: not the owner (the role that migrates and runs the services), PUBLIC
        # or the settlement reader. A superuser bypasses privileges; the trigger stops it.
        grants = conn.execute(
            # A table whose ACL was never changed (relacl NULL) gives its owner every privilege.
            text("""SELECT c.relname, a.grantee::regrole::text FROM pg_class c
                     LEFT JOIN LATERAL aclexplode(c.relacl) a ON true
                     WHERE c.relnamespace = 'govops'::regnamespace AND c.relname = ANY(:t)
                       AND (c.relacl IS NULL OR a.privilege_type = 'TRUNCATE')"""),
            {"t": [*tables, "security_audit_log", "scheduled_job_change"]},  # the other append-only tables
        ).all()  # fmt: skip
        readable = conn.execute(
            text("SELECT has_table_privilege('govops_settlement_reader', 'govops.usage_event', 'SELECT')")
        ).scalar()
    assert grants == [] and readable is True


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "govops.settlement", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr, result.stderr


def test_command_line_refusals(contract_setup: Engine, tmp_path: Path) -> None:
    """Item 5: every refusal is one line naming the period, file or field, exit code 2, and
    nothing is written."""
    e = contract_setup
    env = {**os.environ, "GOVOPS_DATABASE_URL": e.url.render_as_string(hide_password=False)}

    def snapshot() -> list[tuple]:
        with e.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                """SELECT p.id, p.state, p.service_quality, p.satisfaction, count(x.id), s.content_hash
                     FROM govops.settlement_period p LEFT JOIN govops.period_penalty x ON x.period_id = p.id
                     LEFT JOIN govops.settlement_statement s ON s.period_id = p.id
                    GROUP BY p.id, s.content_hash ORDER BY p.id"""))]  # fmt: skip

    store.close(e, "2025-P2")
    before = snapshot()
    _refused(_cli(env, "assess", "2099-NOPE", "--service-quality", "90", "--satisfaction", "90"),
             "SETTLEMENT_REFUSED: unknown settlement period '2099-NOPE'")
    _refused(_cli(env, "assess", "2025-P2", "--service-quality", "91", "--satisfaction", "90"),
             "PERIOD_CLOSED: period 2025-P2 is closed; its assessment cannot change")
    _refused(_cli(env, "penalty", "2025-P2", "--type", "data_loss"),
             "PERIOD_CLOSED: period 2025-P2 is closed; no penalty can be added to it")
    _refused(_cli(env, "add-period", "2025-X", "--kind", "monthly", "--start", "2025-04-01", "--end", "2025-04-30"),
             "period 2025-X (2025-04-01 to 2025-04-30) overlaps period 2025-P2 (2025-03-01 to 2025-04-30)")
    _refused(_cli(env, "assess", "2025-P3", "--service-quality", "101", "--satisfaction", "90"),
             'assess 2025-P3: refused by the database: new row for relation "settlement_period" violates check')
    _refused(_cli(env, "show", "2025-P3"), "SETTLEMENT_REFUSED: period 2025-P3 has no statement: settle it first")

    # Broken terms: a copy of the repository's catalog folder with one fault each.
    repo = tmp_path / "repo"
    shutil.copytree(Path(__file__).resolve().parents[2] / "include" / "catalog", repo / "include" / "catalog")
    catalog, contract = repo / "include/catalog/service_catalog.yaml", repo / "include/catalog/contract.yaml"
    good_catalog, good_contract = catalog.read_text(encoding="utf-8"), contract.read_text(encoding="utf-8")
    env["GOVOPS_REPO"] = str(repo)
    catalog.write_text(good_catalog.replace("versions:", "versions: [", 1), encoding="utf-8")
    _refused(_cli(env, "penalty", "2025-P3", "--type", "data_loss"), f"{catalog}: YAML syntax error at line")
    catalog.write_text(good_catalog, encoding="utf-8")
    contract.write_text(good_contract.replace("  service_quality_weight: \"0.55\"\n", ""), encoding="utf-8")
    _refused(_cli(env, "penalty", "2025-P3", "--type", "data_loss"),
             f"{contract}: assessment: missing 'service_quality_weight'")
    contract.write_text(good_contract.replace("rework:", "rework: {", 1), encoding="utf-8")
    _refused(_cli(env, "settle", "2025-P3"), f"{contract}: YAML syntax error at line")
    assert snapshot() == before
