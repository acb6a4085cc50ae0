from datetime import UTC, datetime, timedelta, timezone

import pytest

from govops.ledger.usage import (
    IdempotencyConflict,
    InvalidUsage,
    TaskRef,
    UsageEvent,
    events_from_manifest,
    period_of,
    validate,
)

TASK = TaskRef("dag", "run", "task", 2, try_number=3)
NOW = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)


def event(**overrides) -> UsageEvent:
    fields = dict(task=TASK, service_item_code="04", quantity=1, unit="table", event_time=NOW, records=10)
    fields.update(overrides)
    return UsageEvent(**fields)


def test_period_is_the_month_in_shanghai_time() -> None:
    # 17:00 UTC on 31 March is 01:00 on 1 April in Shanghai.
    assert period_of(NOW).isoformat() == "2026-04-01"
    assert period_of(NOW - timedelta(hours=2)).isoformat() == "2026-03-01"
    assert period_of(datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=8)))).isoformat() == "2026-01-01"


def test_key_leaves_out_the_try_number() -> None:
    retry = event(task=TaskRef("dag", "run", "task", 2, try_number=4))
    assert retry.key == event().key == ("dag", "run", "task", 2, "", "04", "")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quantity": -1}, "quantity must not be negative, got -1"),
        ({"records": -5}, "records must not be negative, got -5"),
        ({"quantity": 1.5}, "quantity must be an integer"),
        ({"service_item_code": "99"}, "unknown service item '99'"),
        ({"unit": "parsec"}, "unknown unit 'parsec'"),
        ({"unit": "record"}, "item 04 (批数据抽取) is metered in table, not 'record'"),
        ({"event_time": datetime(2026, 1, 1)}, "has no time zone"),
    ],
)
def test_invalid_usage_is_refused_with_the_reason(overrides: dict, message: str) -> None:
    with pytest.raises(InvalidUsage, match="INVALID_USAGE") as err:
        validate(event(**overrides))
    assert message in str(err.value)
    assert "dag/run/task[2] item" in str(err.value)


def test_items_metered_in_two_units_accept_both() -> None:
    validate(event(service_item_code="07", unit="record", quantity=12_345))
    validate(event(service_item_code="07", unit="table", quantity=3))


def test_events_from_manifest_carry_work_order_and_source() -> None:
    manifest = {
        "job": "extract",
        "finished_at": NOW.isoformat(),
        "metering": [
            {"service_item": "04", "unit": "table", "quantity": 1, "records": 7, "data_source": "a.b"},
            {"service_item": "04", "unit": "table", "quantity": 1, "records": 9, "data_source": "a.c"},
        ],
    }
    events = events_from_manifest(manifest, TASK, work_order_id="WO-1", manifest_uri="file:///m.json")
    assert [(e.data_source, e.records, e.work_order_id) for e in events] == [("a.b", 7, "WO-1"), ("a.c", 9, "WO-1")]
    assert events[0].event_time == NOW
    assert events[0].manifest_uri == "file:///m.json"


def test_manifest_entry_without_quantity_names_the_entry() -> None:
    manifest = {"finished_at": NOW.isoformat(), "metering": [{"service_item": "04", "unit": "table"}]}
    with pytest.raises(InvalidUsage, match=r"metering\[0\]: missing quantity"):
        events_from_manifest(manifest, TASK, work_order_id=None, manifest_uri="m")


def test_conflict_error_carries_its_code() -> None:
    assert str(IdempotencyConflict("x")).startswith("IDEMPOTENCY_CONFLICT: ")
