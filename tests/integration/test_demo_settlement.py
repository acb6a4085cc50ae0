"""The demo's last step on the real PostgreSQL server: a date's own work orders accepted, the
month settled, exported and verified; a re-run changes nothing; a later month closes the
earlier demo month; a date in a closed period is refused before anything runs."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from govops.cli import DemoDay, _settlement_step, refuse_closed, settle_demo_day
from govops.ledger.usage import TaskRef, UsageEvent, record_usage
from govops.settlement import store
from govops.settlement.catalog import load_catalog
from govops.settlement.workorders import WorkOrderError, check_runnable

pytestmark = pytest.mark.integration
FIXTURES = {"WO-DEMO-0001": ("04", D(1), None), "WO-DEMO-FILES": ("09", D(1), None)}


def run(engine: Engine, today: DemoDay, fixture: str, run_id: str, item: str, unit: str, quantity: int) -> str:
    order = today.order(fixture)
    when = datetime.combine(today.day, datetime.min.time(), UTC)
    record_usage(engine, [UsageEvent(task=TaskRef("demo_test", run_id, "t"), service_item_code=item, unit=unit,
                                     quantity=quantity, work_order_id=order, event_time=when)])  # fmt: skip
    return order


def test_the_demo_month_is_accepted_settled_exported_and_verified(
    fresh_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    e = fresh_ledger
    day = date(2026, 3, 10)
    today = DemoDay(e, day, FIXTURES)
    tables = run(e, today, "WO-DEMO-0001", "r1", "04", "table", 3)
    run(e, today, "WO-DEMO-FILES", "r2", "09", "file", 18)
    assert tables == "WO-DEMO-0001-20260310" and today.order("WO-DEMO-0001") == tables  # idempotent

    done = settle_demo_day(e, day, tmp_path)
    assert (done.period.id, done.period.kind, done.accepted, done.closed_before) == ("DEMO-2026-03", "monthly", 2, [])
    s = done.statement
    # The figures settle() computes from the ledger: the statement is exactly the stored one.
    assert s == store.settle(e, "DEMO-2026-03") and s["state"] == "draft"
    [line] = s["lines"]
    assert (line["service_order_id"], line["coefficient"]) == ("SO-DEMO-20260310", "1.00")
    amounts = {w["work_order_id"]: (w["raw_quantity"], D(w["amount"])) for w in line["work_orders"]}
    # R1-R3 by hand from the catalog version in force: a flat price per table, files per 万个.
    version = load_catalog().in_force(day)
    table, file = version.items["04"].meters["table"], version.items["09"].meters["file"]
    files = (D(18) / file.unit_size * file.bands[0].price).quantize(D("0.01"))
    assert amounts == {"WO-DEMO-0001-20260310": (3, 3 * table.bands[0].price),
                       "WO-DEMO-FILES-20260310": (18, files)}  # fmt: skip
    gross = 3 * table.bands[0].price + files
    t = {k: D(v) for k, v in s["totals"].items()}
    assert D(s["assessment"]["overall"]) == D("87.75")
    retained = (gross * D("0.90")).quantize(D("0.01"))
    deduction = (gross * D("0.05")).quantize(D("0.01"))  # overall 87.75: the 5 % band
    assert (t["gross"], t["retained"], t["deduction_rate"], t["deduction"]) == (gross, retained, D("0.05"), deduction)
    assert t["net"] == retained - deduction and t["prepayment_offset"] == t["net"] and t["payable"] == 0
    assert t["prepayment_remaining"] == D("4200000.00") - t["net"]
    # The orders went through in_progress and delivered, with both opinions; they take no more runs.
    with e.connect() as conn:
        so = conn.execute(text("SELECT state, quality_score, accepted_on, operator_opinion, purchaser_opinion "
                               "FROM govops.service_order WHERE id = 'SO-DEMO-20260310'")).one()  # fmt: skip
        states = conn.execute(text("SELECT DISTINCT state FROM govops.work_order "
                                   "WHERE service_order_id = 'SO-DEMO-20260310'")).scalars().all()  # fmt: skip
    assert so[:3] == ("accepted", D("95.00"), day) and all(so[3:]) and states == ["accepted"]
    with pytest.raises(WorkOrderError, match="is accepted; runs are allowed only when"):
        check_runnable(e, tables, "04")
    # The exports hold the same totals; verify recomputes the hash and re-sums the ledger.
    assert [p.name for p in done.exports] == ["statement.csv", "statement.json", "statement.xlsx"]
    assert json.loads((tmp_path / "DEMO-2026-03" / "statement.json").read_text())["totals"] == s["totals"]
    with (tmp_path / "DEMO-2026-03" / "statement.csv").open(encoding="utf-8-sig") as f:
        csv_totals = {r["note"]: r["amount"] for r in csv.DictReader(f) if r["kind"] == "total"}
    assert csv_totals == s["totals"]
    assert done.verified.ok and done.verified.recomputed_hash == s["content_hash"]

    # A re-run of the same date accepts nothing and gives the same statement; the demo prints its figures.
    again = settle_demo_day(e, day, tmp_path)
    assert again.accepted == 0 and again.statement["content_hash"] == s["content_hash"]
    monkeypatch.setenv("GOVOPS_HOME", str(tmp_path / "home"))
    assert _settlement_step(e, day, "") == 0
    printed = capsys.readouterr().out
    assert f"totals: gross {gross:,}  retained {retained:,}  deduction {deduction:,}  penalties 0.00  net " \
           f"{t['net']:,}" in printed  # fmt: skip
    assert "payable 0.00" in printed and "verify DEMO-2026-03: OK" in printed
    assert f"SO-DEMO-20260310: x coefficient 1.00 = {gross:,}" in printed
    assert (tmp_path / "home" / "statements" / "DEMO-2026-03" / "statement.xlsx").exists()

    # The next month: the earlier demo month is closed first, and stays as it was.
    april = date(2026, 4, 2)
    run(e, DemoDay(e, april, FIXTURES), "WO-DEMO-0001", "r3", "04", "table", 1)
    later = settle_demo_day(e, april, tmp_path)
    assert later.closed_before == ["DEMO-2026-03"] and later.period.id == "DEMO-2026-04"
    assert store.settle(e, "DEMO-2026-03")["content_hash"] == s["content_hash"]
    assert D(later.statement["totals"]["gross"]) == table.bands[0].price and later.verified.ok
    assert D(later.statement["totals"]["prepayment_before"]) == t["prepayment_remaining"]

    # A date inside the closed month cannot be billed there: refused before anything runs.
    with pytest.raises(store.SettlementError, match=r"DEMO-2026-03 \(to 2026-03-31\) is closed"):
        refuse_closed(e, date(2026, 3, 20))
    refuse_closed(e, date(2026, 4, 20))


def test_each_service_dag_meters_against_its_listed_demo_order() -> None:
    """The demo runs a service DAG against the date's copy of the order listed for it, so the
    list must name each DAG's own default ``work_order_id`` (the parsed DAGs' params)."""
    from airflow.dag_processing.dagbag import DagBag

    from govops import settings
    from govops.runtime.bootstrap import SERVICE_DEMO_WORK_ORDERS

    bag = DagBag(dag_folder=str(settings.repo_root() / "dags"))
    assert not bag.import_errors
    for o in SERVICE_DEMO_WORK_ORDERS:
        assert bag.dags[o.dag_id].params["work_order_id"] == o.work_order_id, o
