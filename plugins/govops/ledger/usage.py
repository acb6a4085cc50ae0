"""Write metered usage to the ledger exactly once.

The idempotency key is (dag_id, run_id, task_id, map_index, work order, service item,
data source): a retried task (same key, any try number) writing the same measures is a
no-op; the same key with different measures is an IDEMPOTENCY_CONFLICT and the whole batch
is rolled back, so nothing changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.service_items import SERVICE_ITEMS, UNITS


class LedgerError(CodedError):
    code = "LEDGER_ERROR"


class InvalidUsage(LedgerError, ValueError):
    code = "INVALID_USAGE"


class IdempotencyConflict(LedgerError):
    code = "IDEMPOTENCY_CONFLICT"


class WorkOrderMismatch(InvalidUsage):
    """Usage for a work order that does not exist, or that is for another item or unit: it
    would be neither billed nor in the unassigned queue (the database refuses it too)."""

    code = "WORK_ORDER_MISMATCH"


@dataclass(frozen=True)
class TaskRef:
    """The task instance that did the work. Retries share it; try_number is kept for the
    record but is not part of the key."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None


@dataclass(frozen=True)
class UsageEvent:
    task: TaskRef
    service_item_code: str
    quantity: int
    unit: str
    event_time: datetime
    work_order_id: str | None = None  # None: the unassigned queue, never billed until assigned
    data_source: str = ""
    records: int | None = None
    department: str | None = None
    manifest_uri: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int, str, str, str]:
        return (
            self.task.dag_id,
            self.task.run_id,
            self.task.task_id,
            self.task.map_index,
            self.work_order_id or "",
            self.service_item_code,
            self.data_source,
        )

    @property
    def measures(self) -> tuple[int, str, int | None]:
        return (self.quantity, self.unit, self.records)


@dataclass(frozen=True)
class RecordResult:
    inserted: int
    unchanged: int


def contract_timezone() -> ZoneInfo:
    """Periods are calendar months in the contract's time zone (Asia/Shanghai)."""
    return ZoneInfo(os.environ.get("GOVOPS_TIMEZONE", "Asia/Shanghai"))


def period_of(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise InvalidUsage(f"event_time {moment.isoformat()} has no time zone")
    local = moment.astimezone(contract_timezone())
    return date(local.year, local.month, 1)


def _describe(event: UsageEvent) -> str:
    t = event.task
    return (
        f"{t.dag_id}/{t.run_id}/{t.task_id}[{t.map_index}] item {event.service_item_code} "
        f"work order {event.work_order_id or '(unassigned)'} source {event.data_source!r}"
    )


def validate(event: UsageEvent) -> None:
    where = _describe(event)
    item = SERVICE_ITEMS.get(event.service_item_code)
    if item is None:
        raise InvalidUsage(f"{where}: unknown service item {event.service_item_code!r}")
    if event.unit not in UNITS:
        raise InvalidUsage(f"{where}: unknown unit {event.unit!r}")
    if event.unit not in item.units:
        raise InvalidUsage(
            f"{where}: item {item.code} ({item.name_zh}) is metered in {'/'.join(item.units)}, "
            f"not {event.unit!r}"
        )
    for name in ("quantity", "records"):
        value = getattr(event, name)
        if value is None and name == "records":
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidUsage(f"{where}: {name} must be an integer, got {value!r}")
        if value < 0:
            raise InvalidUsage(f"{where}: {name} must not be negative, got {value}")
    for name in ("dag_id", "run_id", "task_id"):
        if not getattr(event.task, name):
            raise InvalidUsage(f"{where}: {name} is empty")
    if event.event_time.tzinfo is None:
        raise InvalidUsage(f"{where}: event_time {event.event_time.isoformat()} has no time zone")


def _row(event: UsageEvent) -> dict[str, Any]:
    t = event.task
    return {
        "service_item_code": event.service_item_code,
        "quantity": event.quantity,
        "unit": event.unit,
        "records": event.records,
        "work_order_id": event.work_order_id,
        "data_source": event.data_source,
        "department": event.department,
        "period": period_of(event.event_time),
        "dag_id": t.dag_id,
        "run_id": t.run_id,
        "task_id": t.task_id,
        "map_index": t.map_index,
        "try_number": t.try_number,
        "manifest_uri": event.manifest_uri,
        "event_time": event.event_time,
        "attributes": dict(event.attributes),
    }


_COLUMNS = (
    "service_item_code", "quantity", "unit", "records", "work_order_id", "data_source", "department", "period",
    "dag_id", "run_id", "task_id", "map_index", "try_number", "manifest_uri", "event_time", "attributes",
)  # fmt: skip
# The expression of the unique index uq_usage_event_idempotency, written out so that
# ON CONFLICT infers that index.
_KEY = "dag_id, run_id, task_id, map_index, coalesce(work_order_id, ''), service_item_code, data_source"
_STAGE = """
    CREATE TEMPORARY TABLE incoming_usage (
        service_item_code text, quantity bigint, unit text, records bigint, work_order_id text,
        data_source text, department text, period date, dag_id text, run_id text, task_id text,
        map_index integer, try_number integer, manifest_uri text, event_time timestamptz, attributes jsonb
    ) ON COMMIT DROP"""
_FILL = (
    f"INSERT INTO incoming_usage ({', '.join(_COLUMNS)}) VALUES "
    f"({', '.join('CAST(:attributes AS jsonb)' if c == 'attributes' else ':' + c for c in _COLUMNS)})"
)
_APPLY = f"""
    INSERT INTO govops.usage_event ({", ".join(_COLUMNS)})
    SELECT {", ".join(_COLUMNS)} FROM incoming_usage
    ON CONFLICT ({_KEY}) DO NOTHING"""
_WORK_ORDERS = """
    SELECT DISTINCT i.work_order_id, i.service_item_code, i.unit, w.service_item_code, w.unit
      FROM incoming_usage i
      LEFT JOIN govops.work_order w ON w.id = i.work_order_id
     WHERE i.work_order_id IS NOT NULL
       AND (w.id IS NULL OR (w.service_item_code, w.unit) <> (i.service_item_code, i.unit))
     ORDER BY 1, 2, 3
     LIMIT 20"""
_CONFLICTS = """
    SELECT i.dag_id, i.run_id, i.task_id, i.map_index, i.work_order_id, i.service_item_code, i.data_source,
           u.quantity, u.unit, u.records, i.quantity, i.unit, i.records
      FROM incoming_usage i
      JOIN govops.usage_event u
        ON u.dag_id = i.dag_id AND u.run_id = i.run_id AND u.task_id = i.task_id AND u.map_index = i.map_index
       AND coalesce(u.work_order_id, '') = coalesce(i.work_order_id, '')
       AND u.service_item_code = i.service_item_code AND u.data_source = i.data_source
     WHERE (u.quantity, u.unit, u.records) IS DISTINCT FROM (i.quantity, i.unit, i.records)
     LIMIT 20"""


def record_usage(target: Engine | Connection, events: Iterable[UsageEvent]) -> RecordResult:
    """Insert events; keys already present with the same measures are left alone.

    The batch is staged in a temporary table and applied with two set-based statements in
    one transaction: its own given an Engine, or the caller's given a Connection (so that
    metering commits together with what the caller records, e.g. a load and its watermark).
    Raises InvalidUsage (nothing written; WORK_ORDER_MISMATCH when an event names a work order
    that does not exist or is for another item or unit) or IdempotencyConflict (the batch
    rolled back). ``work_order_id=None`` is the unassigned queue.
    """
    unique: dict[tuple[Any, ...], UsageEvent] = {}
    for event in events:
        validate(event)
        seen = unique.get(event.key)
        if seen is not None and seen.measures != event.measures:
            raise IdempotencyConflict(
                f"{_describe(event)}: the batch holds the same key twice with different "
                f"measures {seen.measures} and {event.measures}"
            )
        unique[event.key] = event
    if not unique:
        return RecordResult(inserted=0, unchanged=0)

    rows = [_row(e) for e in unique.values()]
    for row in rows:
        row["attributes"] = json.dumps(row["attributes"], ensure_ascii=False, default=str)
    if isinstance(target, Connection):
        with target.begin_nested():  # a savepoint: a conflict undoes only this batch
            return _apply(target, rows)
    with target.begin() as conn:
        return _apply(conn, rows)


def _apply(conn: Connection, rows: list[dict[str, Any]]) -> RecordResult:
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.incoming_usage"))
    conn.execute(text(_STAGE))
    conn.execute(text(_FILL), rows)
    mismatched = conn.execute(text(_WORK_ORDERS)).all()
    if mismatched:
        lines = [
            f"item {r[1]} in {r[2]} for work order {r[0]}: "
            + ("no such work order" if r[3] is None else f"the work order is item {r[3]} in {r[4]}")
            for r in mismatched
        ]
        raise WorkOrderMismatch("usage refused, nothing was recorded:\n  " + "\n  ".join(lines))
    inserted = conn.execute(text(_APPLY)).rowcount
    conflicts = conn.execute(text(_CONFLICTS)).all()
    conn.execute(text("DROP TABLE pg_temp.incoming_usage"))
    if conflicts:
        # Raising inside the transaction (or savepoint) rolls back the events inserted above.
        lines = [
            f"{r[0]}/{r[1]}/{r[2]}[{r[3]}] item {r[5]} work order {r[4] or '(unassigned)'} "
            f"source {r[6]!r}: recorded (quantity, unit, records) = {tuple(r[7:10])}, now {tuple(r[10:13])}"
            for r in conflicts
        ]
        raise IdempotencyConflict("event(s) contradict the ledger; nothing was recorded:\n  " + "\n  ".join(lines))
    return RecordResult(inserted=inserted, unchanged=len(rows) - inserted)


def recorded_event(
    conn: Connection, task: TaskRef, service_item_code: str, data_source: str, work_order_id: str | None, what: str
) -> Any:
    """The event this task instance already recorded for an item and data source, or None.

    Metering that depends on what earlier runs did (only what is new is billed) must, on a
    re-run, record exactly these measures again rather than recompute them. A re-run against
    another work order would bill the same ``what`` twice and is refused."""
    found = conn.execute(
        text("""SELECT work_order_id, quantity, records, attributes FROM govops.usage_event
                 WHERE dag_id = :dag AND run_id = :run AND task_id = :task AND map_index = :mi
                   AND service_item_code = :item AND data_source = :source ORDER BY id"""),
        {"dag": task.dag_id, "run": task.run_id, "task": task.task_id, "mi": task.map_index,
         "item": service_item_code, "source": data_source},
    ).all()  # fmt: skip
    for row in found:
        if (row.work_order_id or "") != (work_order_id or ""):
            raise IdempotencyConflict(
                f"{task.dag_id}/{task.run_id} already metered {row.quantity} {what} to work order "
                f"{row.work_order_id}; metering it against {work_order_id} would bill them twice"
            )
    return found[0] if found else None


def events_from_manifest(
    manifest: Mapping[str, Any],
    task: TaskRef,
    *,
    work_order_id: str | None,
    department: str | None = None,
    manifest_uri: str | None = None,
) -> list[UsageEvent]:
    """The usage a job declared in its manifest's ``metering`` section."""
    finished = manifest.get("finished_at")
    if not finished:
        raise InvalidUsage(f"manifest {manifest_uri}: no finished_at")
    event_time = datetime.fromisoformat(finished)
    events = []
    for i, entry in enumerate(manifest.get("metering", [])):
        where = f"manifest {manifest_uri}: metering[{i}]"
        missing = [k for k in ("service_item", "unit", "quantity") if k not in entry]
        if missing:
            raise InvalidUsage(f"{where}: missing {', '.join(missing)}")
        events.append(
            UsageEvent(
                task=task,
                service_item_code=str(entry["service_item"]),
                quantity=entry["quantity"],
                unit=entry["unit"],
                records=entry.get("records"),
                data_source=entry.get("data_source", ""),
                work_order_id=work_order_id,
                department=entry.get("department", department),
                event_time=event_time,
                manifest_uri=manifest_uri,
                # The job's own attributes (e.g. onboarding kind, stream batch range) travel
                # with the event; the job and Spark application always do.
                attributes={
                    **entry.get("attributes", {}),
                    "job": manifest.get("job"),
                    "spark_app_id": manifest.get("app_id"),
                },
            )
        )
    return events


def meter_manifest(
    engine: Engine | Connection,
    manifest: Mapping[str, Any],
    task: TaskRef,
    *,
    work_order_id: str | None,
    department: str | None = None,
    manifest_uri: str | None = None,
) -> RecordResult:
    """The one way services meter: record what the job's manifest says it did."""
    return record_usage(
        engine,
        events_from_manifest(
            manifest,
            task,
            work_order_id=work_order_id,
            department=department,
            manifest_uri=manifest_uri,
        ),
    )
