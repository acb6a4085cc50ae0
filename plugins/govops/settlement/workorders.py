"""Service orders (服务单) and work orders (工单) of seed 004: creation, state changes,
acceptance, and the check a pipeline run makes before it meters against a work order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.service_items import SERVICE_ITEMS
from govops.settlement.catalog import Catalog

STATES = ("draft", "approved", "in_progress", "delivered", "accepted", "rejected", "rework")
# Which state may follow which: a small explicit machine, so a typo cannot skip acceptance.
TRANSITIONS = {
    "draft": {"approved", "rejected"},
    "approved": {"in_progress", "rejected"},
    "in_progress": {"delivered"},
    "delivered": {"accepted", "rework", "rejected"},
    "rework": {"in_progress", "delivered"},
    "accepted": set(),
    "rejected": set(),
}
RUNNABLE = ("approved", "in_progress", "rework")
CLOSED_SERVICE_ORDER = ("accepted", "rejected")


class WorkOrderError(CodedError, ValueError):
    code = "WORK_ORDER_REFUSED"


@dataclass(frozen=True)
class ServiceOrder:
    id: str
    name: str
    category: str = ""
    requesting_department: str = ""
    operator_owner: str = ""
    purchaser_owner: str = ""
    start_date: date | None = None
    end_date: date | None = None
    objectives: str = ""
    plan: str = ""
    task_id: str | None = None


@dataclass(frozen=True)
class WorkOrder:
    id: str
    service_order_id: str
    service_item_code: str
    order_date: date
    unit: str | None = None  # default: the item's first unit
    difficulty: Decimal = Decimal(1)
    cap: Decimal | None = None
    urgency: str = "normal"
    estimated_workload: Decimal | None = None
    deliverables: list[dict[str, Any]] = field(default_factory=list)


def create_plan(conn: Connection, plan_id: str, name: str, year: int, description: str = "") -> None:
    """A service task plan (服务任务计划): the year's tasks."""
    conn.execute(
        text("INSERT INTO govops.service_task_plan (id, name, year, description) VALUES (:id, :n, :y, :d)"),
        {"id": plan_id, "n": name, "y": year, "d": description},
    )


def create_task(conn: Connection, task_id: str, plan_id: str, name: str, category: str = "") -> None:
    """A service task (服务任务) of a plan; service orders are issued under it."""
    conn.execute(
        text("INSERT INTO govops.service_task (id, plan_id, name, category) VALUES (:id, :p, :n, :c)"),
        {"id": task_id, "p": plan_id, "n": name, "c": category},
    )


def create_service_order(conn: Connection, order: ServiceOrder) -> None:
    conn.execute(
        text(
            """INSERT INTO govops.service_order (id, task_id, name, category, requesting_department, operator_owner,
                   purchaser_owner, start_date, end_date, objectives, plan)
               VALUES (:id, :task_id, :name, :category, :requesting_department, :operator_owner,
                   :purchaser_owner, :start_date, :end_date, :objectives, :plan)"""
        ),
        order.__dict__,
    )


def create_work_order(conn: Connection, order: WorkOrder, catalog: Catalog) -> None:
    """Insert a work order after checking it against the catalog version in force on its date."""
    where = f"work order {order.id}"
    if order.service_item_code not in SERVICE_ITEMS:
        raise WorkOrderError(f"{where}: unknown service item {order.service_item_code!r}")
    item = catalog.in_force(order.order_date).items[order.service_item_code]
    unit = order.unit or SERVICE_ITEMS[order.service_item_code].units[0]
    if unit not in item.meters:
        known = ", ".join(item.meters)
        raise WorkOrderError(f"{where}: item {item.code} is not metered in {unit!r} (catalog: {known})")
    if not item.difficulty_min <= order.difficulty <= item.difficulty_max:
        raise WorkOrderError(
            f"{where}: difficulty {order.difficulty} is outside item {item.code}'s range "
            f"[{item.difficulty_min}, {item.difficulty_max}]"
        )
    so = conn.execute(
        text("SELECT state FROM govops.service_order WHERE id = :id FOR SHARE"), {"id": order.service_order_id}
    ).first()
    if so is None:
        raise WorkOrderError(f"{where}: unknown service order {order.service_order_id!r}")
    if so.state in CLOSED_SERVICE_ORDER:
        # Seed 004: a service order is accepted once all its work orders are; work added
        # afterwards was never accepted and goes into a new service order (the database refuses it too).
        raise WorkOrderError(
            f"{where}: service order {order.service_order_id} is {so.state}; it takes no new work order"
        )
    conn.execute(
        text(
            """INSERT INTO govops.work_order (id, service_order_id, service_item_code, unit, urgency,
                   estimated_workload, difficulty, cap, order_date, deliverables)
               VALUES (:id, :so, :item, :unit, :urgency, :workload, :difficulty, :cap, :order_date,
                   CAST(:deliverables AS jsonb))"""
        ),
        {
            "id": order.id, "so": order.service_order_id, "item": order.service_item_code, "unit": unit,
            "urgency": order.urgency, "workload": order.estimated_workload, "difficulty": order.difficulty,
            "cap": order.cap, "order_date": order.order_date, "deliverables": json.dumps(order.deliverables),
        },
    )  # fmt: skip


def _transition(conn: Connection, table: str, order_id: str, new_state: str, extra: dict[str, Any]) -> None:
    row = conn.execute(text(f"SELECT state FROM govops.{table} WHERE id = :id FOR UPDATE"), {"id": order_id}).first()
    if row is None:
        raise WorkOrderError(f"{table.replace('_', ' ')} {order_id}: unknown")
    if new_state not in TRANSITIONS[row.state]:
        raise WorkOrderError(f"{table.replace('_', ' ')} {order_id}: cannot go from {row.state} to {new_state}")
    sets = ", ".join(["state = :state", *(f"{k} = :{k}" for k in extra)])
    params = {"id": order_id, "state": new_state, **extra}
    conn.execute(text(f"UPDATE govops.{table} SET {sets} WHERE id = :id"), params)


def set_work_order_state(conn: Connection, work_order_id: str, state: str, **opinions: str) -> None:
    _transition(conn, "work_order", work_order_id, state, opinions)


def set_service_order_state(conn: Connection, service_order_id: str, state: str) -> None:
    _transition(conn, "service_order", service_order_id, state, {})


def accept_service_order(
    conn: Connection,
    service_order_id: str,
    *,
    quality_score: Decimal,
    accepted_on: date,
    operator_opinion: str,
    purchaser_opinion: str,
    rework_score: Decimal | None = None,
) -> None:
    """Acceptance (验收): both parties' opinions and the delivery-quality score (R4)."""
    _transition(
        conn, "service_order", service_order_id, "accepted",
        {"quality_score": quality_score, "rework_score": rework_score, "accepted_on": accepted_on,
         "operator_opinion": operator_opinion, "purchaser_opinion": purchaser_opinion},
    )  # fmt: skip


def rescore_rework(conn: Connection, service_order_id: str, rework_score: Decimal) -> None:
    """Record the re-evaluation of an accepted order that scored below 60."""
    updated = conn.execute(
        text("UPDATE govops.service_order SET rework_score = :s WHERE id = :id AND state = 'accepted'"),
        {"id": service_order_id, "s": rework_score},
    ).rowcount
    if not updated:
        raise WorkOrderError(f"service order {service_order_id}: not accepted, no rework score to record")


def check_runnable(engine: Engine, work_order_id: str, service_item_code: str, unit: str | None = None) -> None:
    """Refuse a pipeline run against a work order that is unknown, not approved, or for another item."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT state, service_item_code, unit FROM govops.work_order WHERE id = :id"), {"id": work_order_id}
        ).first()
    if row is None:
        raise WorkOrderError(f"work order {work_order_id!r} is unknown: create and approve it first")
    if row.state not in RUNNABLE:
        raise WorkOrderError(
            f"work order {work_order_id} is {row.state}; runs are allowed only when it is {', '.join(RUNNABLE)}"
        )
    if row.service_item_code != service_item_code:
        raise WorkOrderError(
            f"work order {work_order_id} is for service item {row.service_item_code}, "
            f"not {service_item_code} ({SERVICE_ITEMS[service_item_code].name_zh})"
        )
    if unit is not None and row.unit != unit:
        raise WorkOrderError(f"work order {work_order_id} is metered in {row.unit}, not {unit}")


def assign_usage(conn: Connection, usage_event_ids: list[int], work_order_id: str, assigned_by: str) -> int:
    """Move usage from the unassigned queue to a work order (the ledger rows stay as they were)."""
    rows = conn.execute(
        text(
            """SELECT u.id, u.service_item_code, u.unit, u.work_order_id FROM govops.usage_event u
               WHERE u.id = ANY(:ids)"""
        ),
        {"ids": usage_event_ids},
    ).all()
    wo = conn.execute(
        text("SELECT service_item_code, unit FROM govops.work_order WHERE id = :id"), {"id": work_order_id}
    ).first()
    if wo is None:
        raise WorkOrderError(f"work order {work_order_id!r} is unknown")
    missing = set(usage_event_ids) - {r.id for r in rows}
    if missing:
        raise WorkOrderError(f"usage events {sorted(missing)} do not exist")
    for r in rows:
        if r.work_order_id is not None:
            raise WorkOrderError(f"usage event {r.id} already belongs to work order {r.work_order_id}")
        if (r.service_item_code, r.unit) != (wo.service_item_code, wo.unit):
            raise WorkOrderError(
                f"usage event {r.id} is item {r.service_item_code} in {r.unit}; work order {work_order_id} "
                f"is item {wo.service_item_code} in {wo.unit}"
            )
    conn.execute(
        text(
            """INSERT INTO govops.usage_assignment (usage_event_id, work_order_id, assigned_by)
               SELECT unnest(CAST(:ids AS bigint[])), :wo, :by"""
        ),
        {"ids": usage_event_ids, "wo": work_order_id, "by": assigned_by},
    )
    return len(rows)


def require_runnable(work_order_id: str, service_item_code: str, unit: str | None = None) -> None:
    """check_runnable against the configured ledger database (for a DAG's first task)."""
    from sqlalchemy import create_engine

    from govops import settings

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        check_runnable(engine, work_order_id, service_item_code, unit)
    finally:
        engine.dispose()


def ensure_demo_work_order(
    engine: Engine | Connection, work_order_id: str, service_item_code: str = "04", *, on: date,
    difficulty: Decimal = Decimal(1), unit: str | None = None,
) -> None:
    """An approved work order (and its service order) for the demo and the tests; idempotent.
    ``unit``: for items metered in several units, which one (default: the item's first).
    Given a Connection, it is created in the caller's transaction."""
    if isinstance(engine, Connection):
        with engine.begin_nested():
            _demo_work_order(engine, work_order_id, service_item_code, on, difficulty, unit)
    else:
        with engine.begin() as conn:
            _demo_work_order(conn, work_order_id, service_item_code, on, difficulty, unit)


def _demo_work_order(
    conn: Connection, work_order_id: str, service_item_code: str, on: date, difficulty: Decimal, unit: str | None
) -> None:
    from govops.settlement.catalog import load_catalog

    if conn.execute(text("SELECT 1 FROM govops.work_order WHERE id = :id"), {"id": work_order_id}).first():
        return
    so_id = f"SO-{work_order_id}"
    create_service_order(
        conn, ServiceOrder(id=so_id, name=f"演示：{SERVICE_ITEMS[service_item_code].name_zh}", category="数据治理",
                           requesting_department="区大数据中心", objectives="将样例数据抽取入湖"),
    )  # fmt: skip
    create_work_order(
        conn,
        WorkOrder(id=work_order_id, service_order_id=so_id, service_item_code=service_item_code, order_date=on,
                  difficulty=difficulty, unit=unit,
                  deliverables=[{"name": "入湖数据", "unit": unit or SERVICE_ITEMS[service_item_code].units[0]}]),
        load_catalog(),
    )  # fmt: skip
    set_service_order_state(conn, so_id, "approved")
    set_work_order_state(conn, work_order_id, "approved")
