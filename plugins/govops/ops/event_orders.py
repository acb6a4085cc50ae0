"""Event orders (事件单, seed 004): opened by themselves from failures and detected problems,
or raised by hand.

One open order per *dedup key*. A failure's key is the DAG id, the task id (empty for a
run-level failure) and the run's data interval (its logical date, or its run id when it has
neither). Retries, re-runs of the same interval and repeated callbacks update that order
(``occurrences``, ``last_error``); a partial unique index allows one open or acknowledged
order per key. The next successful run of the same key resolves it by itself.

``kind`` says what opened the order; the values are stable (reports group by them):

- ``failed``: a task's final failure after its retries, or a failed DAG run (the listener);
- ``quality_gate``: a quality gate that failed (``quality check failed``);
- ``reconciliation``: counts that do not reconcile (``counts do not reconcile``);
- ``refusal``: a task refused with a coded error (``WORK_ORDER_REFUSED: ...``);
- ``stuck``: a task instance or DAG run queued or running far past its usual duration;
- ``slow``: a DAG's latest successful run took longer than its baseline of recent successes;
- ``late``: a scheduled run not started, or not finished, by its deadline (a Deadline Alert
  or the monitoring pass, ``govops.ops.health``);
- ``import_error``: a DAG file that does not import;
- ``manual``: raised by hand (``raise_order``).

The first four come from the listener; ``stuck``, ``slow``, ``late`` and ``import_error``
from ``govops.ops.health`` (their keys end in the kind: ``dag|task|interval|stuck``,
``dag||slow``, ``dag||interval|late``, ``import_error|bundle:file``), which resolves them
when the problem is gone.

States: open -> acknowledged -> resolved -> evaluated (事后评估). An evaluation may name an
incident type of the contract's penalty list; settlement takes that penalty in the period
that contains the evaluation date (``govops.settlement.store.gather_inputs``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, text

from govops.errors import CodedError

STATES = ("open", "acknowledged", "resolved", "evaluated")
OPEN = ("open", "acknowledged")
TRANSITIONS = {"open": {"acknowledged", "resolved"}, "acknowledged": {"resolved"}, "resolved": {"evaluated"},
               "evaluated": set()}  # fmt: skip
URGENCIES = ("low", "normal", "urgent")
KINDS = ("failed", "quality_gate", "reconciliation", "refusal", "stuck", "slow", "late", "import_error", "manual")
REPORTING_UNIT = "数据运营商"  # an order the operations platform opened itself
REPORTER = "govops（自动）"

# How a failure is classified, by the error's text (the gate and the reconciliation checks
# raise these messages; a refusal leads with its code). The first match wins.
CLASSES: tuple[tuple[str, re.Pattern[str], str, str], ...] = (
    ("reconciliation", re.compile(r"counts do not reconcile"), "urgent", "对账不平"),
    ("quality_gate", re.compile(r"quality check failed"), "normal", "质量检查未通过"),
    ("refusal", re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+: "), "normal", "作业被拒绝"),
)


class EventOrderError(CodedError, ValueError):
    code = "EVENT_ORDER_REFUSED"


@dataclass(frozen=True)
class Failure:
    """A final failure of a task (``task_id``) or of a whole run (``task_id`` empty)."""

    dag_id: str
    run_id: str
    task_id: str
    occurred_at: datetime
    error: str = ""
    map_index: int = -1
    try_number: int | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    logical_date: datetime | None = None
    work_order_id: str | None = None
    operator: str = ""
    links: dict[str, str] = field(default_factory=dict)


def dedup_key(dag_id: str, task_id: str, run_id: str, data_interval_start: datetime | None,
              data_interval_end: datetime | None, logical_date: datetime | None) -> str:
    """DAG id | task id | the data interval (else the logical date, else the run id)."""
    if data_interval_start is not None and data_interval_end is not None:
        when = f"{data_interval_start.isoformat()}/{data_interval_end.isoformat()}"
    elif logical_date is not None:
        when = logical_date.isoformat()
    else:
        when = f"run:{run_id}"
    return f"{dag_id}|{task_id}|{when}"


def classify(error: str) -> tuple[str, str, str]:
    """(kind, urgency, title prefix) of a failure from its error text."""
    for kind, pattern, urgency, title in CLASSES:
        if pattern.search(error):
            return kind, urgency, title
    return "failed", "urgent", "作业失败"


def _number(conn: Connection, at: datetime) -> str:
    serial = conn.execute(text("SELECT nextval('govops.event_order_number')")).scalar_one()
    return f"EV-{at:%Y%m%d}-{serial:05d}"


def _work_order(conn: Connection, work_order_id: str | None) -> Any:
    if not work_order_id:
        return None
    return conn.execute(
        text(
            """SELECT w.id, w.service_order_id, w.service_item_code, s.operator_owner, s.requesting_department
               FROM govops.work_order w JOIN govops.service_order s ON s.id = w.service_order_id WHERE w.id = :id"""
        ),
        {"id": work_order_id},
    ).first()


def record_failure(conn: Connection, failure: Failure, *, run_level: bool = False) -> tuple[str, bool]:
    """Open the key's event order, or update the open one. Returns (number, opened).

    ``run_level``: a failed DAG run adds nothing when one of its tasks already has an open
    order for the same interval (the task's order is the incident)."""
    key = dedup_key(failure.dag_id, failure.task_id, failure.run_id, failure.data_interval_start,
                    failure.data_interval_end, failure.logical_date)
    if run_level:
        prefix = key.split("|", 2)
        task_open = conn.execute(
            text("""SELECT id FROM govops.event_order WHERE state IN ('open', 'acknowledged')
                     AND dedup_key LIKE :p ESCAPE '\\' AND dedup_key LIKE :s ESCAPE '\\'
                     ORDER BY started_at, id LIMIT 1"""),
            {"p": _like(f"{prefix[0]}|") + "%", "s": "%" + _like(f"|{prefix[2]}")},
        ).scalar()  # fmt: skip
        if task_open is not None:
            return task_open, False
    # The common case, a repeat: update the open order (no order number is drawn for it).
    repeat = conn.execute(
        text(
            """UPDATE govops.event_order SET occurrences = occurrences + 1, last_error = :error, last_seen_at = :at,
                   run_id = :run, links = links || CAST(:links AS jsonb)
               WHERE dedup_key = :key AND state IN ('open', 'acknowledged') RETURNING id"""
        ),
        {"error": failure.error[:4000], "at": failure.occurred_at, "run": failure.run_id, "key": key,
         "links": json.dumps(failure.links, ensure_ascii=False)},
    ).scalar()  # fmt: skip
    if repeat is not None:
        return repeat, False
    kind, urgency, title = classify(failure.error)
    wo = _work_order(conn, failure.work_order_id)
    subject = f"{failure.dag_id}.{failure.task_id}" if failure.task_id else failure.dag_id
    row = conn.execute(
        text(
            """INSERT INTO govops.event_order (id, title, incident_type, occurred_on, description, work_order_id,
                   dag_id, run_id, task_id, state, order_type, kind, dedup_key, service_order_id, service_item_code,
                   urgency, started_at, reporting_unit, reporter, operator, operator_owner, map_index,
                   data_interval_start, data_interval_end, links, occurrences, last_error, last_seen_at)
               VALUES (:id, :title, NULL, :on, :error, :wo, :dag, :run, :task, 'open', '事件单', :kind, :key, :so,
                   :item, :urgency, :at, :unit, :reporter, :operator, :owner, :mi, :dis, :die, CAST(:links AS jsonb),
                   1, :error, :at)
               -- a concurrent first failure of the key (another process) opened it meanwhile
               ON CONFLICT (dedup_key) WHERE state IN ('open', 'acknowledged') DO UPDATE SET
                   occurrences = govops.event_order.occurrences + 1, last_error = EXCLUDED.last_error,
                   last_seen_at = EXCLUDED.last_seen_at, run_id = EXCLUDED.run_id,
                   links = govops.event_order.links || EXCLUDED.links
               RETURNING id, (xmax = 0) AS inserted"""
        ),
        {
            "id": _number(conn, failure.occurred_at), "title": f"{title}：{subject}",
            "on": failure.occurred_at.date(), "error": failure.error[:4000], "wo": wo.id if wo else None,
            "dag": failure.dag_id, "run": failure.run_id, "task": failure.task_id or None, "kind": kind,
            "key": key, "so": wo.service_order_id if wo else None, "item": wo.service_item_code if wo else None,
            "urgency": urgency, "at": failure.occurred_at, "unit": REPORTING_UNIT, "reporter": REPORTER,
            "operator": failure.operator or None, "owner": wo.operator_owner if wo else None,
            "mi": failure.map_index, "dis": failure.data_interval_start, "die": failure.data_interval_end,
            "links": json.dumps(failure.links, ensure_ascii=False),
        },
    ).one()  # fmt: skip
    return row.id, bool(row.inserted)


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def resolve_by_success(conn: Connection, dag_id: str, task_id: str, run_id: str, data_interval_start: datetime | None,
                       data_interval_end: datetime | None, logical_date: datetime | None, at: datetime) -> list[str]:
    """The next successful run of a key resolves its open order by itself."""
    key = dedup_key(dag_id, task_id, run_id, data_interval_start, data_interval_end, logical_date)
    return list(
        conn.execute(
            text(
                """UPDATE govops.event_order SET state = 'resolved', resolved_at = :at, ended_at = :at,
                       resolved_by = 'govops（自动）', resolution = :why
                   WHERE dedup_key = :key AND state IN ('open', 'acknowledged') RETURNING id"""
            ),
            {"key": key, "at": at, "why": f"resolved by itself: {dag_id} run {run_id} succeeded"},
        ).scalars()
    )


@dataclass(frozen=True)
class Problem:
    """A problem the monitoring pass or a Deadline Alert detected; ``key`` is its dedup key."""

    kind: str  # stuck, slow, late, import_error
    key: str
    title: str
    description: str
    occurred_at: datetime
    urgency: str = "urgent"
    dag_id: str | None = None
    task_id: str = ""
    run_id: str | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    work_order_id: str | None = None
    service_item_code: str | None = None
    links: dict[str, str] = field(default_factory=dict)


def record_problem(conn: Connection, problem: Problem) -> tuple[str, bool]:
    """Open the key's order, or update the open one. Returns (number, opened). A repeated
    pass only refreshes it (``last_seen_at``); ``occurrences`` counts the distinct runs seen."""
    params = {"error": problem.description[:4000], "at": problem.occurred_at, "run": problem.run_id,
              "key": problem.key, "links": json.dumps(problem.links, ensure_ascii=False)}  # fmt: skip
    update = """UPDATE govops.event_order SET last_error = :error, last_seen_at = :at,
                    links = links || CAST(:links AS jsonb), run_id = :run,
                    occurrences = occurrences + CASE WHEN run_id IS DISTINCT FROM :run THEN 1 ELSE 0 END
                WHERE dedup_key = :key AND state IN ('open', 'acknowledged') RETURNING id"""
    repeat = conn.execute(text(update), params).scalar()
    if repeat is not None:
        return repeat, False
    wo = _work_order(conn, problem.work_order_id)
    row = conn.execute(
        text(
            """INSERT INTO govops.event_order (id, title, occurred_on, description, work_order_id, dag_id, run_id,
                   task_id, state, order_type, kind, dedup_key, service_order_id, service_item_code, urgency,
                   started_at, reporting_unit, reporter, operator_owner, data_interval_start, data_interval_end,
                   links, occurrences, last_error, last_seen_at)
               VALUES (:id, :title, :on, :error, :wo, :dag, :run, :task, 'open', '事件单', :kind, :key, :so, :item,
                   :urgency, :at, :unit, :reporter, :owner, :dis, :die, CAST(:links AS jsonb), 1, :error, :at)
               ON CONFLICT (dedup_key) WHERE state IN ('open', 'acknowledged') DO UPDATE SET
                   last_seen_at = EXCLUDED.last_seen_at, last_error = EXCLUDED.last_error
               RETURNING id, (xmax = 0) AS inserted"""
        ),
        {**params, "id": _number(conn, problem.occurred_at), "title": problem.title, "on": problem.occurred_at.date(),
         "wo": wo.id if wo else None, "dag": problem.dag_id, "task": problem.task_id or None, "kind": problem.kind,
         "so": wo.service_order_id if wo else None,
         "item": wo.service_item_code if wo else problem.service_item_code, "urgency": problem.urgency,
         "unit": REPORTING_UNIT, "reporter": REPORTER, "owner": wo.operator_owner if wo else None,
         "dis": problem.data_interval_start, "die": problem.data_interval_end},
    ).one()  # fmt: skip
    return row.id, bool(row.inserted)


def resolve_keys(conn: Connection, keys: list[str], at: datetime, why: str) -> list[str]:
    """Resolve the open orders of these keys by themselves (the problem is gone)."""
    if not keys:
        return []
    return list(
        conn.execute(
            text(
                """UPDATE govops.event_order SET state = 'resolved', resolved_at = :at, ended_at = :at,
                       resolved_by = 'govops（自动）', resolution = :why
                   WHERE dedup_key = ANY(:keys) AND state IN ('open', 'acknowledged') RETURNING id"""
            ),
            {"keys": keys, "at": at, "why": why},
        ).scalars()
    )


def resolve_absent(conn: Connection, kind: str, present: set[str], at: datetime, why: str) -> list[str]:
    """Resolve the open orders of ``kind`` whose key is not in ``present`` (a complete
    observation of that kind: what is not seen any more is gone)."""
    return list(
        conn.execute(
            text(
                """UPDATE govops.event_order SET state = 'resolved', resolved_at = :at, ended_at = :at,
                       resolved_by = 'govops（自动）', resolution = :why
                   WHERE kind = :kind AND state IN ('open', 'acknowledged') AND dedup_key <> ALL(:keys)
                   RETURNING id"""
            ),
            {"kind": kind, "keys": sorted(present), "at": at, "why": why},
        ).scalars()
    )


def raise_order(
    conn: Connection, title: str, *, description: str, reporter: str, reporting_unit: str, urgency: str = "normal",
    work_order_id: str | None = None, estimated_workload: float | None = None, at: datetime | None = None,
) -> str:
    """An event order raised by hand (the purchaser, 区大数据中心, or the operator)."""
    if urgency not in URGENCIES:
        raise EventOrderError(f"urgency {urgency!r}: one of {', '.join(URGENCIES)}")
    at = at or datetime.now(UTC)
    wo = _work_order(conn, work_order_id)
    if work_order_id and wo is None:
        raise EventOrderError(f"unknown work order {work_order_id!r}")
    number = _number(conn, at)
    conn.execute(
        text(
            """INSERT INTO govops.event_order (id, title, occurred_on, description, work_order_id, state, kind,
                   service_order_id, service_item_code, urgency, started_at, estimated_workload, reporting_unit,
                   reporter, operator_owner, last_seen_at)
               VALUES (:id, :t, :on, :d, :wo, 'open', 'manual', :so, :item, :u, :at, :ew, :unit, :rep, :owner, :at)"""
        ),
        {"id": number, "t": title, "on": at.date(), "d": description, "wo": work_order_id,
         "so": wo.service_order_id if wo else None, "item": wo.service_item_code if wo else None, "u": urgency,
         "at": at, "ew": estimated_workload, "unit": reporting_unit, "rep": reporter,
         "owner": wo.operator_owner if wo else None},
    )  # fmt: skip
    return number


def _move(conn: Connection, number: str, state: str, sets: dict[str, Any]) -> Any:
    row = conn.execute(text("SELECT * FROM govops.event_order WHERE id = :id FOR UPDATE"), {"id": number}).first()
    if row is None:
        raise EventOrderError(f"event order {number}: unknown")
    if state not in TRANSITIONS[row.state]:
        raise EventOrderError(f"event order {number}: cannot go from {row.state} to {state}")
    assignments = ", ".join(["state = :state", *(f"{k} = :{k}" for k in sets)])
    conn.execute(text(f"UPDATE govops.event_order SET {assignments} WHERE id = :id"),
                 {"id": number, "state": state, **sets})  # fmt: skip
    return row


def acknowledge(conn: Connection, number: str, by: str, *, at: datetime | None = None,
                estimated_workload: float | None = None) -> None:
    sets: dict[str, Any] = {"acknowledged_at": at or datetime.now(UTC), "acknowledged_by": by}
    if estimated_workload is not None:
        sets["estimated_workload"] = estimated_workload
    _move(conn, number, "acknowledged", sets)


def resolve(conn: Connection, number: str, by: str, resolution: str, *, at: datetime | None = None) -> None:
    at = at or datetime.now(UTC)
    _move(conn, number, "resolved", {"resolved_at": at, "ended_at": at, "resolved_by": by, "resolution": resolution})


def evaluate(
    conn: Connection, number: str, by: str, *, operator_opinion: str, purchaser_opinion: str,
    incident_type: str | None = None, on: date | None = None,
) -> None:
    """事后评估: both parties' opinions, and the incident type when the event is a
    contractual incident; its penalty is then taken by the settlement of the period that
    contains ``on`` (refused when that period is closed: it could no longer be taken)."""
    from govops.settlement.catalog import parse_contract
    from govops.settlement.store import _terms

    on = on or datetime.now(UTC).date()
    # An order that already carries an incident type (revision 0002's orders) keeps it unless evaluated otherwise.
    incident_type = incident_type or conn.execute(
        text("SELECT incident_type FROM govops.event_order WHERE id = :id"), {"id": number}
    ).scalar()
    if incident_type is not None:
        penalties = parse_contract(_terms()[1]).penalties
        if incident_type not in penalties:
            raise EventOrderError(f"unknown incident type {incident_type!r}; known: {', '.join(penalties)}")
        closed = conn.execute(
            text("""SELECT id FROM govops.settlement_period WHERE state = 'closed'
                     AND :on BETWEEN start_date AND end_date"""), {"on": on},
        ).scalar()  # fmt: skip
        if closed is not None:
            raise EventOrderError(f"event order {number}: period {closed} containing {on} is closed; "
                                  "its penalty could not be taken")  # fmt: skip
        manual = conn.execute(
            text("SELECT period_id FROM govops.period_penalty WHERE event_order_id = :id LIMIT 1"), {"id": number}
        ).scalar()
        if manual is not None:
            raise EventOrderError(f"event order {number}: a penalty was already recorded for it in period {manual}")
    _move(conn, number, "evaluated", {
        "evaluated_on": on, "evaluated_by": by, "operator_opinion": operator_opinion,
        "purchaser_opinion": purchaser_opinion, "incident_type": incident_type,
        "evaluation": f"{operator_opinion} / {purchaser_opinion}",
    })  # fmt: skip


def list_orders(conn: Connection, state: str | None = None) -> list[dict[str, Any]]:
    rows = conn.execute(
        text("""SELECT id, state, kind, urgency, title, dag_id, task_id, occurrences, work_order_id, incident_type,
                       started_at, resolved_at FROM govops.event_order
                 WHERE CAST(:s AS text) IS NULL OR state = :s ORDER BY started_at NULLS LAST, id"""),
        {"s": state},
    ).mappings().all()  # fmt: skip
    return [dict(r) for r in rows]
