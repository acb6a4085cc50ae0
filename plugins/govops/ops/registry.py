"""The job registry of the scheduling service (作业调度, item 05) and its change record
(作业规模数据量及变化记录).

A *scheduled job* is a DAG id that has a schedule (a cron or preset, a timetable, or assets:
anything but ``schedule=None``). The DAG id is the job: re-parsing, re-deploying, moving the
DAG to another file or re-running it is the same job. A job is *new* the first time its DAG
id is seen with a schedule; it is metered once, 1 个, when its first scheduled run
(``run_type`` scheduled) succeeds; the platform's own DAGs (tag ``ops``: settlement, reports,
this registry) are listed but never metered. A job removed from the deployment and deployed again is
the same job (a ``re_added`` change), never metered again.

``sync_registry`` is a pure function of the DAG descriptions a source gives and the
database; ``meter_first_success`` meters one job's first successful scheduled run, exactly
once (a row lock on the job, and a fixed ledger key per DAG id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from govops.ledger.usage import TaskRef, UsageEvent, record_usage, recorded_event
from govops.ops import SERVICE_ITEM, UNIT
from govops.settlement.workorders import RUNNABLE, WorkOrderError

# The ledger key of a job's metering: one per DAG id (run_id and task_id are fixed), so the
# ledger's idempotency index itself refuses a second row whatever observes the first run.
METER_RUN_ID = "scheduled_job"
METER_TASK_ID = "job_registry"
METER_SOURCE = "scheduled_job"


@dataclass(frozen=True)
class DagDescription:
    """What a source knows of one deployed DAG."""

    dag_id: str
    schedule: str | None  # None: no schedule (schedule=None)
    owner: str = ""
    department: str | None = None
    service_item_code: str | None = None
    work_order_id: str | None = None  # the work order the job names (its params' default)
    description: str = ""
    fileloc: str = ""
    paused: bool | None = None  # None: this source does not know (the DAG folder)
    billable: bool = True  # False: the platform's own DAGs (tag ``ops``): in the registry, never metered


@dataclass(frozen=True)
class Change:
    dag_id: str
    change: str  # new, schedule_changed, paused, unpaused, removed, re_added, attributes_changed
    old_value: str | None = None
    new_value: str | None = None


@dataclass(frozen=True)
class ScheduledRun:
    """A successful run of type ``scheduled``."""

    dag_id: str
    run_id: str
    finished_at: datetime
    logical_date: datetime | None = None


_ATTRIBUTES = ("owner", "department", "service_item_code", "work_order_id")


def sync_registry(
    conn: Connection, dags: Iterable[DagDescription], *, observed_at: datetime, source: str,
    broken_files: frozenset[str] = frozenset(),
) -> list[Change]:
    """Bring ``govops.scheduled_job`` in step with ``dags`` (the complete deployment) and
    append every change to ``govops.scheduled_job_change``. A job whose file does not import
    (``broken_files``) is broken, not removed: it keeps its row as it was."""
    seen = {d.dag_id: d for d in dags}
    rows = {r.dag_id: r for r in conn.execute(text("SELECT * FROM govops.scheduled_job FOR UPDATE")).all()}
    changes: list[Change] = []
    for dag_id in sorted(seen):
        dag, row = seen[dag_id], rows.get(dag_id)
        if row is None:
            if dag.schedule is None:
                continue  # never scheduled: not a job
            conn.execute(
                text(
                    """INSERT INTO govops.scheduled_job (dag_id, owner, department, service_item_code, work_order_id,
                           schedule, description, fileloc, paused, billable, first_seen_at, last_seen_at)
                       VALUES (:dag_id, :owner, :department, :service_item_code, :work_order_id, :schedule,
                           :description, :fileloc, :paused, :billable, :at, :at)"""
                ),
                {**dag.__dict__, "at": observed_at},
            )
            changes.append(Change(dag_id, "new", None, dag.schedule))
            continue
        if row.removed_at is not None:
            changes.append(Change(dag_id, "re_added", None, dag.schedule))
        if row.schedule != dag.schedule:
            changes.append(Change(dag_id, "schedule_changed", row.schedule, dag.schedule))
        if dag.paused is not None and row.paused is not None and dag.paused != row.paused:
            changes.append(Change(dag_id, "paused" if dag.paused else "unpaused"))
        for name in _ATTRIBUTES:
            old, new = getattr(row, name), getattr(dag, name)
            if old != new:
                changes.append(Change(dag_id, "attributes_changed", f"{name}={old}", f"{name}={new}"))
        conn.execute(
            text(
                """UPDATE govops.scheduled_job SET owner = :owner, department = :department,
                       service_item_code = :service_item_code, work_order_id = :work_order_id, schedule = :schedule,
                       description = :description, fileloc = :fileloc, paused = coalesce(:paused, paused),
                       billable = :billable,
                       last_seen_at = :at, removed_at = NULL
                   WHERE dag_id = :dag_id"""
            ),
            {**dag.__dict__, "at": observed_at},
        )
    for dag_id, row in sorted(rows.items()):
        if dag_id in seen or row.removed_at is not None or row.fileloc in broken_files:
            continue
        conn.execute(
            text("UPDATE govops.scheduled_job SET removed_at = :at WHERE dag_id = :d"), {"at": observed_at, "d": dag_id}
        )
        changes.append(Change(dag_id, "removed", row.schedule, None))
    if changes:
        conn.execute(
            text(
                """INSERT INTO govops.scheduled_job_change (dag_id, change, old_value, new_value, source, observed_at)
                   VALUES (:dag_id, :change, :old_value, :new_value, :source, :at)"""
            ),
            [{**c.__dict__, "source": source, "at": observed_at} for c in changes],
        )
    return changes


def unmetered_jobs(conn: Connection) -> list[str]:
    """Jobs whose first successful scheduled run is not metered yet (a source looks them up)."""
    return list(
        conn.execute(
            text("SELECT dag_id FROM govops.scheduled_job WHERE metered_usage_event_id IS NULL AND billable "
                 "ORDER BY dag_id")
        ).scalars()
    )


def _item05_work_order(conn: Connection, candidate: str | None) -> bool:
    if not candidate:
        return False
    row = conn.execute(
        text("SELECT state, service_item_code, unit FROM govops.work_order WHERE id = :id"), {"id": candidate}
    ).first()
    return row is not None and row.service_item_code == SERVICE_ITEM and row.unit == UNIT and row.state in RUNNABLE


def meter_first_success(conn: Connection, run: ScheduledRun, *, default_work_order: str) -> int | None:
    """Meter job ``run.dag_id`` once, 1 个 of item 05, for its first successful scheduled run.

    The work order: the one the job names if it is an item-05 work order open for runs;
    otherwise ``default_work_order`` (the registry DAG's own, which must be). Returns the
    usage event id when this call metered it, None when the job is unknown or was metered
    before (by this or any other observer of the same run or of a later one)."""
    row = conn.execute(
        text("SELECT * FROM govops.scheduled_job WHERE dag_id = :d FOR UPDATE"), {"d": run.dag_id}
    ).first()
    if row is None or row.metered_usage_event_id is not None or not row.billable:
        return None
    work_order = row.work_order_id if _item05_work_order(conn, row.work_order_id) else default_work_order
    if not _item05_work_order(conn, work_order):
        raise WorkOrderError(
            f"job {run.dag_id}: work order {work_order!r} is not an item-05 work order open for runs "
            f"({', '.join(RUNNABLE)}); cannot meter its first scheduled run {run.run_id}"
        )
    task = TaskRef(dag_id=run.dag_id, run_id=METER_RUN_ID, task_id=METER_TASK_ID)
    found: Any = recorded_event(conn, task, SERVICE_ITEM, METER_SOURCE, work_order, "scheduled job")
    if found is None:
        record_usage(conn, [UsageEvent(
            task=task, service_item_code=SERVICE_ITEM, quantity=1, unit=UNIT, records=None,
            event_time=run.finished_at, work_order_id=work_order, data_source=METER_SOURCE,
            department=row.department,
            attributes={"first_run_id": run.run_id, "schedule": row.schedule,
                        "logical_date": run.logical_date.isoformat() if run.logical_date else None},
        )])  # fmt: skip
    usage_id = conn.execute(
        text(
            """SELECT id FROM govops.usage_event WHERE dag_id = :d AND run_id = :r AND task_id = :t
                   AND service_item_code = :i AND data_source = :s AND work_order_id = :w"""
        ),
        {"d": run.dag_id, "r": METER_RUN_ID, "t": METER_TASK_ID, "i": SERVICE_ITEM, "s": METER_SOURCE,
         "w": work_order},
    ).scalar_one()  # fmt: skip
    conn.execute(
        text(
            """UPDATE govops.scheduled_job SET first_success_run_id = :r, first_success_at = :at,
                   metered_usage_event_id = :u, metered_work_order_id = :w WHERE dag_id = :d"""
        ),
        {"r": run.run_id, "at": run.finished_at, "u": usage_id, "w": work_order, "d": run.dag_id},
    )
    return usage_id if found is None else None
