"""The usage ledger against a real PostgreSQL server: exactly-once, conflicts, refusals."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from govops.ledger.usage import (
    IdempotencyConflict,
    InvalidUsage,
    TaskRef,
    UsageEvent,
    WorkOrderMismatch,
    record_usage,
)
from govops.settlement.workorders import ensure_demo_work_order

pytestmark = pytest.mark.integration
NOW = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def work_orders(ledger: Engine) -> None:
    """Usage is metered against work orders that exist (item 04, in tables)."""
    for wo in ("WO-1", "WO-9", "WO-VIEW", "WO-8"):
        ensure_demo_work_order(ledger, wo, "04", on=date(2026, 5, 1))
    ensure_demo_work_order(ledger, "WO-RECORDS", "01", on=date(2026, 5, 1))


def ev(run: str, source: str = "s.t", *, quantity: int = 1, records: int | None = 100, wo: str | None = "WO-1",
       try_number: int = 1) -> UsageEvent:
    return UsageEvent(
        task=TaskRef("ledger_test", run, "extract", 0, try_number=try_number),
        service_item_code="04",
        quantity=quantity,
        unit="table",
        records=records,
        work_order_id=wo,
        data_source=source,
        event_time=NOW,
    )


def count(engine: Engine, run: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM govops.usage_event WHERE run_id = :r"), {"r": run}).scalar_one()


def test_a_retry_with_the_same_quantity_is_a_no_op(ledger: Engine) -> None:
    assert record_usage(ledger, [ev("r1")]).inserted == 1
    result = record_usage(ledger, [ev("r1", try_number=2)])
    assert (result.inserted, result.unchanged) == (0, 1)
    assert count(ledger, "r1") == 1


def test_same_key_different_quantity_is_a_conflict_and_changes_nothing(ledger: Engine) -> None:
    record_usage(ledger, [ev("r2")])
    with pytest.raises(IdempotencyConflict, match="IDEMPOTENCY_CONFLICT") as err:
        # A new event in the same batch must not survive the conflict either.
        record_usage(ledger, [ev("r2", "s.other"), ev("r2", records=101)])
    assert "recorded (quantity, unit, records) = (1, 'table', 100), now (1, 'table', 101)" in str(err.value)
    assert count(ledger, "r2") == 1
    with ledger.connect() as conn:
        assert conn.execute(text("SELECT records FROM govops.usage_event WHERE run_id = 'r2'")).scalar_one() == 100


def test_conflict_inside_one_batch(ledger: Engine) -> None:
    with pytest.raises(IdempotencyConflict, match="same key twice"):
        record_usage(ledger, [ev("r3"), ev("r3", records=5)])
    assert count(ledger, "r3") == 0


def test_negative_quantity_is_refused_by_the_api_and_by_the_database(ledger: Engine) -> None:
    with pytest.raises(InvalidUsage, match="quantity must not be negative, got -1"):
        record_usage(ledger, [ev("r4", quantity=-1)])
    assert count(ledger, "r4") == 0
    with pytest.raises(DBAPIError, match="ck_usage_event_quantity_nonnegative"), ledger.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO govops.usage_event (service_item_code, quantity, unit, period, dag_id, run_id, "
                "task_id, event_time) VALUES ('04', -1, 'table', '2026-05-01', 'd', 'r4', 't', now())"
            )
        )


def test_unassigned_usage_has_its_own_key(ledger: Engine) -> None:
    assert record_usage(ledger, [ev("r5", wo=None), ev("r5", wo="WO-9")]).inserted == 2
    assert record_usage(ledger, [ev("r5", wo=None)]).unchanged == 1  # NULL work orders collide too
    assert count(ledger, "r5") == 2


def test_the_ledger_is_append_only(ledger: Engine) -> None:
    record_usage(ledger, [ev("r6")])
    for statement in ("UPDATE govops.usage_event SET quantity = 2", "DELETE FROM govops.usage_event"):
        with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as conn:
            conn.execute(text(statement + " WHERE run_id = 'r6'"))
    assert count(ledger, "r6") == 1


def test_summary_view_sums_per_work_order_item_and_period(ledger: Engine) -> None:
    events = [ev("r7", f"s.t{i}", records=10 * i, wo="WO-VIEW") for i in range(1, 5)]
    record_usage(ledger, events)
    record_usage(ledger, [replace(events[0], task=TaskRef("ledger_test", "r7", "extract", 0, try_number=2))])
    with ledger.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM govops.usage_summary_v1 WHERE work_order_id = 'WO-VIEW'")
        ).mappings().one()
    assert (row["quantity"], row["records"], row["event_count"], row["run_count"]) == (4, 100, 4, 1)
    assert row["period"].isoformat() == "2026-05-01"
    assert len(row["usage_event_ids"]) == 4


def test_large_batches_are_written_in_chunks(ledger: Engine) -> None:
    # More chunks than the driver's prepare threshold (5): prepared statements must still
    # match the idempotency index.
    events = [ev("r8", f"s.t{i}", wo=None if i % 2 else "WO-8") for i in range(14_500)]
    assert record_usage(ledger, events).inserted == 14_500
    result = record_usage(ledger, events)
    assert (result.inserted, result.unchanged) == (0, 14_500)


def test_usage_for_an_unknown_or_mismatched_work_order_is_refused(ledger: Engine) -> None:
    """Item 3: such usage would be neither billed nor in the unassigned queue. The API refuses
    the whole batch (the good event too), and the database refuses it from any writer."""
    batch = [ev("r9", "s.good"), ev("r9", "s.ghost", wo="WO-404"), ev("r9", "s.other", wo="WO-RECORDS")]
    with pytest.raises(WorkOrderMismatch, match="WORK_ORDER_MISMATCH: usage refused, nothing was recorded") as err:
        record_usage(ledger, batch)
    assert str(err.value).splitlines()[1:] == [
        "  item 04 in table for work order WO-404: no such work order",
        "  item 04 in table for work order WO-RECORDS: the work order is item 01 in record",
    ]
    assert isinstance(err.value, InvalidUsage)
    with ledger.connect() as conn, conn.begin():  # in a caller's transaction: its own work stays
        conn.execute(text("CREATE TEMPORARY TABLE caller_work (x int) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO caller_work VALUES (1)"))
        with pytest.raises(WorkOrderMismatch):
            record_usage(conn, batch)
        assert conn.execute(text("SELECT count(*) FROM caller_work")).scalar_one() == 1
    assert count(ledger, "r9") == 0
    insert = (
        "INSERT INTO govops.usage_event (service_item_code, quantity, unit, work_order_id, period, dag_id, run_id, "
        "task_id, event_time) VALUES ('04', 1, 'table', :wo, '2026-05-01', 'd', 'r9', :t, now())"
    )
    for wo in ("WO-404", "WO-RECORDS"):
        with pytest.raises(DBAPIError, match="fk_usage_event_work_order"), ledger.begin() as conn:
            conn.execute(text(insert), {"wo": wo, "t": wo})
    with ledger.begin() as conn:  # the unassigned queue and a matching work order stay open
        conn.execute(text(insert), {"wo": None, "t": "queue"})
        conn.execute(text(insert), {"wo": "WO-1", "t": "own"})
    assert count(ledger, "r9") == 2
