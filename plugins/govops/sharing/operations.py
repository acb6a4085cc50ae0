"""Item 13, 数据共享/开放运营服务: the yearly lump sum for running the sharing service.

The catalog prices it as 1 年 at 4,000,000.00 (its cap too), so the settlement engine needs
nothing of its own: 1 年 metered against an item-13 work order is that work order's line,
priced like any other, in the period its service order is accepted.

**What counts as delivered**: the service ran through the year, as its call records show:
every calendar month of the year (in the contract's time zone) has answered calls
(``govops.api_call``, status below 400). The year is metered once it is over, and once:
the ledger row of run ``deliverable:<year>``, task ``deliver``; a second work order for a
year already metered is refused. A year with a month without answered calls is refused,
naming the months: an operator decides (e.g. an accepted outage) and meters by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, text

from govops.errors import CodedError

DAG_ID = "sharing_operations"
ITEM, UNIT = "13", "year"


class OperationsNotDelivered(CodedError, ValueError):
    code = "OPERATIONS_NOT_DELIVERED"


def data_source(year: int) -> str:
    return f"sharing_operations/{year}"


def evidence(engine: Engine, year: int) -> dict[str, Any]:
    """Answered calls per month of ``year``, the days with calls, the sets and callers served."""
    from govops.ledger.usage import contract_timezone

    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT extract(month FROM called_at AT TIME ZONE :tz)::int AS month, count(*) AS calls,
                   count(DISTINCT (called_at AT TIME ZONE :tz)::date) AS days,
                   count(DISTINCT set_name) AS sets, count(DISTINCT caller_id) AS callers
            FROM govops.api_call
            WHERE status < 400 AND extract(year FROM called_at AT TIME ZONE :tz) = :y
            GROUP BY 1 ORDER BY 1"""), {"tz": contract_timezone().key, "y": year}).all()  # fmt: skip
    months = {r.month: {"calls": int(r.calls), "days": int(r.days), "sets": int(r.sets), "callers": int(r.callers)}
              for r in rows}  # fmt: skip
    return {"year": year, "months": {f"{year}-{m:02d}": months.get(m, {"calls": 0, "days": 0}) for m in range(1, 13)},
            "missing": [f"{year}-{m:02d}" for m in range(1, 13) if m not in months]}  # fmt: skip


def meter_year(engine: Engine, work_order_id: str, year: int, *, run_id: str, now: datetime | None = None,
               try_number: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Meter 1 年 of item 13 for ``year`` against the work order, if the year was delivered."""
    from govops.ledger.usage import TaskRef, UsageEvent, contract_timezone, record_usage
    from govops.settlement.workorders import check_runnable

    now = now or datetime.now(UTC)
    if now.astimezone(contract_timezone()).date() <= date(year, 12, 31):
        raise OperationsNotDelivered(f"{year} is not over: item {ITEM} is metered after the year it covers")
    found = evidence(engine, year)
    task = TaskRef(DAG_ID, f"deliverable:{year}", "deliver", -1, try_number)
    with engine.begin() as conn:  # the check and the metering under one lock: a year is metered once
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": data_source(year)})
        before = conn.execute(text("""SELECT id, work_order_id FROM govops.usage_event
                                      WHERE dag_id = :d AND data_source = :s"""),
                              {"d": DAG_ID, "s": data_source(year)}).first()  # fmt: skip
        if before is not None:
            if before.work_order_id != work_order_id:
                raise OperationsNotDelivered(f"{year} was metered already, against work order {before.work_order_id}")
            return {"year": year, "billing": "already metered", "usage_event_id": before.id}
        check_runnable(engine, work_order_id, ITEM, UNIT)
        if found["missing"]:
            raise OperationsNotDelivered(f"{year}: no answered call in {', '.join(found['missing'])}; the service "
                                         "did not run through the year (an operator decides; not metered)")  # fmt: skip
        record_usage(conn, [UsageEvent(task=task, service_item_code=ITEM, quantity=1, unit=UNIT, event_time=now,
                                       work_order_id=work_order_id, data_source=data_source(year),
                                       attributes={"run_id": run_id, **found})])  # fmt: skip
        usage_id = conn.execute(text("SELECT id FROM govops.usage_event WHERE dag_id = :d AND data_source = :s"),
                                {"d": DAG_ID, "s": data_source(year)}).scalar_one()  # fmt: skip
    return {"year": year, "billing": "delivery", "usage_event_id": usage_id, "evidence": found}
