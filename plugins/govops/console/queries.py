"""What the console shows, read from the ledger database: usage and its drill-down, the
unassigned queue, periods and statements, work orders, event orders and job health.

Usage belongs to its *effective* work order: the event's own, or the one an assignment
(``govops.usage_assignment``) gave it later; the ledger row itself never changes. Pages of
rows are keyset pages over the event id (``after``), so a page is as fast at the end as at
the start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from govops.ops.event_orders import CLASSES, URGENCIES
from govops.service_items import SERVICE_ITEMS
from govops.settlement.catalog import Catalog, parse_catalog
from govops.settlement.workorders import RUNNABLE

PAGE = 100
UNASSIGNED = "-"  # the work-order filter value of the unassigned queue
DIMENSIONS = ("period", "item", "work_order", "department")
DEFAULT_BY = ("period", "item")  # the page's first view; work orders and departments on request
_WO = "coalesce(e.work_order_id, a.work_order_id)"
_FROM = "govops.usage_event e LEFT JOIN govops.usage_assignment a ON a.usage_event_id = e.id"
# The same sums over govops.usage_rollup (records: NULL where no event had any, as sum() is).
ROLLUP_SUMS = ("sum(e.quantity)::bigint AS quantity, sum(e.records) FILTER (WHERE e.records_events > 0)::bigint "
               "AS records, sum(e.events)::bigint AS events")  # fmt: skip


@dataclass(frozen=True)
class UsageFilter:
    """Filters of the usage pages; ``work_order`` ``-`` is the unassigned queue."""

    period: date | None = None
    item: str | None = None
    unit: str | None = None
    work_order: str | None = None
    department: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None

    def where(self, *, work_order: bool = True) -> tuple[str, dict[str, Any]]:
        """SQL conditions on ``e`` (the ledger) and ``a`` (its assignments); ``work_order``
        False leaves the work-order filter to the caller."""
        clauses, params = ["true"], {}
        for name, column in (("period", "e.period"), ("item", "e.service_item_code"), ("unit", "e.unit"),
                             ("department", "e.department"), ("dag_id", "e.dag_id"), ("run_id", "e.run_id"),
                             ("task_id", "e.task_id")):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{column} = :{name}")
                params[name] = value
        if work_order and self.work_order == UNASSIGNED:  # spelled out: the partial index on unassigned ids
            clauses.append("e.work_order_id IS NULL AND a.work_order_id IS NULL")
        elif work_order and self.work_order is not None:
            clauses.append(f"{_WO} = :work_order")
            params["work_order"] = self.work_order
        return " AND ".join(clauses), params

    def query(self) -> dict[str, str]:
        """The filter as query parameters (for links)."""
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items() if v is not None}


def item_name(code: str | None) -> str:
    return SERVICE_ITEMS[code].name_zh if code in SERVICE_ITEMS else ""


def usage_summary(conn: Connection, f: UsageFilter, by: tuple[str, ...] = DIMENSIONS) -> list[dict[str, Any]]:
    """Quantities, records and events per the chosen dimensions (and always per unit: units
    do not add up), on the effective work order.

    Two passes, so the million-row ledger is grouped without a join: the ledger on its own
    work order, then the (few) assigned events moved from the unassigned group to their
    work order's. The first pass reads ``govops.usage_rollup`` (the ledger summed by the
    database in each insert's transaction, migration 0019) unless a run or task is asked
    for."""
    dims = [d for d in DIMENSIONS if d in by]
    columns = {"period": "e.period", "item": "e.service_item_code", "work_order": "e.work_order_id",
               "department": "e.department"}  # fmt: skip
    keys = [columns[d] for d in dims] + ["e.unit"]
    where, params = f.where(work_order=False)
    own = {UNASSIGNED: " AND e.work_order_id IS NULL", None: ""}.get(f.work_order, " AND e.work_order_id = :wo")
    sums = "sum(e.quantity)::bigint AS quantity, sum(e.records)::bigint AS records, count(*) AS events"
    by_run = f.dag_id is not None or f.run_id is not None or f.task_id is not None
    source, first = ("govops.usage_event", sums) if by_run else ("govops.usage_rollup", ROLLUP_SUMS)
    group = ", ".join(keys)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for r in conn.execute(text(f"SELECT {group}, {first} FROM {source} e WHERE {where}{own} GROUP BY {group}"),
                          {**params, "wo": f.work_order}):  # fmt: skip
        groups[tuple(r[: len(keys)])] = [int(r.quantity), r.records, int(r.events)]
    moved = [*keys, "a.work_order_id AS assigned_to"]
    for r in conn.execute(
        text(f"""SELECT {", ".join(moved)}, {sums} FROM govops.usage_assignment a
                   JOIN govops.usage_event e ON e.id = a.usage_event_id WHERE {where}
                  GROUP BY {", ".join([*keys, "a.work_order_id"])}"""),
        params,
    ):  # fmt: skip
        source, values = tuple(r[: len(keys)]), (int(r.quantity), r.records, int(r.events))
        target = tuple(r.assigned_to if d == "work_order" else v for d, v in zip([*dims, "unit"], source,
                                                                                   strict=True))  # fmt: skip
        if f.work_order in (None, UNASSIGNED):  # it left the unassigned queue
            _add(groups, source, values, -1)
        if f.work_order in (None, r.assigned_to):  # and belongs to its work order
            _add(groups, target, values, +1)
    out = []
    for key in sorted((k for k, v in groups.items() if v[2]), key=lambda k: tuple((v is not None, v) for v in k)):
        row: dict[str, Any] = dict(zip([*dims, "unit"], key, strict=True))
        quantity, records, events = groups[key]
        row.update(quantity=quantity, records=None if records is None else int(records), events=events)
        if "item" in row:
            row["item_name"] = item_name(row["item"])
        out.append(row)
    return out


def _add(groups: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], values: tuple[int, Any, int],
         sign: int) -> None:  # fmt: skip
    current = groups.setdefault(key, [0, None, 0])
    current[0] += sign * values[0]
    if values[1] is not None:
        current[1] = (current[1] or 0) + sign * values[1]
    current[2] += sign * values[2]


def totals_per_unit(rows: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["unit"]] = totals.get(r["unit"], 0) + r["quantity"]
    return totals


def usage_events(conn: Connection, f: UsageFilter, after: int = 0, limit: int = PAGE) -> tuple[list[dict], int | None]:
    """One keyset page of ledger rows, oldest first; and the ``after`` of the next page."""
    where, params = f.where()
    rows = conn.execute(
        text(f"""SELECT e.id, e.event_time, e.period, e.service_item_code, e.quantity, e.unit, e.records,
                        e.work_order_id, a.work_order_id AS assigned_to, a.assigned_by, a.assigned_at,
                        e.department, e.data_source, e.dag_id, e.run_id, e.task_id, e.map_index, e.try_number,
                        e.manifest_uri
                   FROM {_FROM} WHERE {where} AND e.id > :after ORDER BY e.id LIMIT :n"""),
        {**params, "after": after, "n": limit + 1},
    ).mappings().all()  # fmt: skip
    page = [dict(r) for r in rows[:limit]]
    return page, page[-1]["id"] if len(rows) > limit else None


def usage_event(conn: Connection, event_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        text(f"""SELECT e.*, a.work_order_id AS assigned_to, a.assigned_by, a.assigned_at
                   FROM {_FROM} WHERE e.id = :id"""), {"id": event_id},
    ).mappings().first()  # fmt: skip
    return None if row is None else dict(row)


def assigned(conn: Connection, usage_event_ids: list[int]) -> dict[int, str]:
    """Of these usage events, those an assignment already moved, with their work order."""
    rows = conn.execute(
        text("SELECT usage_event_id, work_order_id FROM govops.usage_assignment WHERE usage_event_id = ANY(:ids)"),
        {"ids": usage_event_ids},
    ).all()
    return {int(r[0]): r[1] for r in rows}


def assignable_work_orders(conn: Connection) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (item, unit), the work orders usage may be assigned to: approved ones (or in
    progress, or in rework), the states in which runs may meter against them."""
    rows = conn.execute(
        text("""SELECT w.id, w.service_item_code, w.unit, w.state, s.name AS service_order
                  FROM govops.work_order w JOIN govops.service_order s ON s.id = w.service_order_id
                 WHERE w.state = ANY(:states) ORDER BY w.id"""),
        {"states": list(RUNNABLE)},
    ).mappings()  # fmt: skip
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["service_item_code"], r["unit"]), []).append(dict(r))
    return out


def periods(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        text("""SELECT p.id, p.kind, p.start_date, p.end_date, p.state, p.closed_at, p.service_quality,
                       p.satisfaction, s.state AS statement_state, s.content_hash, s.computed_at,
                       s.statement -> 'totals' AS totals
                  FROM govops.settlement_period p LEFT JOIN govops.settlement_statement s ON s.period_id = p.id
                 ORDER BY p.start_date""")
    ).mappings()  # fmt: skip
    return [dict(r) for r in rows]


def statement_catalog(conn: Connection, period_id: str) -> Catalog | None:
    """The catalog a statement stored with its inputs (only that part of the inputs is read)."""
    stored = conn.execute(
        text("SELECT inputs -> 'catalog' FROM govops.settlement_statement WHERE period_id = :p"), {"p": period_id}
    ).scalar()
    return None if stored is None else parse_catalog(stored, "statement inputs")


def tier_slices(catalog: Catalog, wo: dict[str, Any]) -> list[dict[str, Any]]:
    """How a work order's billing quantity falls into its catalog bands (R2), from the
    catalog the statement stored: one slice per band reached (graduated), or the one band
    the whole quantity is priced at (volume). The slices' amounts add up to ``tiered``."""
    meter = catalog.version(wo["catalog_version"]).items[wo["service_item_code"]].meters[wo["unit"]]
    quantity = Decimal(wo["billing_quantity"])
    slices = []
    for band in meter.bands:
        if meter.tier_mode == "volume":
            if band.upper is None or quantity <= band.upper:
                return [{"lower": band.lower, "upper": band.upper, "quantity": quantity, "price": band.price,
                         "amount": quantity * band.price}]  # fmt: skip
            continue
        if quantity <= band.lower:
            break
        top = quantity if band.upper is None else min(quantity, band.upper)
        slices.append({"lower": band.lower, "upper": band.upper, "quantity": top - band.lower, "price": band.price,
                       "amount": (top - band.lower) * band.price})  # fmt: skip
    return slices


def work_orders(conn: Connection) -> list[dict[str, Any]]:
    """Service orders with their work orders, each with its cumulative metered usage (of its
    item and unit, own and assigned: ``usage_summary``) and how many run manifests it has."""
    orders = [dict(r) for r in conn.execute(text("SELECT * FROM govops.service_order ORDER BY id")).mappings()]
    summed = usage_summary(conn, UsageFilter(), ("item", "work_order"))
    usage = {(r["work_order"], r["item"], r["unit"]): r for r in summed}
    # One grouped pass for the distinct manifests (a count per work order would scan the ledger each time).
    manifests = dict(conn.execute(text(f"""SELECT {_WO}, count(DISTINCT e.manifest_uri) FROM {_FROM}
                                            WHERE {_WO} IS NOT NULL GROUP BY 1""")).all())  # fmt: skip
    wos = conn.execute(text("SELECT * FROM govops.work_order ORDER BY id")).mappings()
    by_so: dict[str, list[dict[str, Any]]] = {}
    for w in wos:
        used = usage.get((w["id"], w["service_item_code"], w["unit"]), {})
        by_so.setdefault(w["service_order_id"], []).append({
            **w, "item_name": item_name(w["service_item_code"]), "quantity": used.get("quantity", 0),
            "records": used.get("records") or 0, "events": used.get("events", 0),
            "manifests": manifests.get(w["id"], 0),
        })  # fmt: skip
    return [{**so, "work_orders": by_so.get(so["id"], [])} for so in orders]


_URGENCY_ORDER = "CASE urgency " + " ".join(f"WHEN '{u}' THEN {i}" for i, u in enumerate(reversed(URGENCIES))) + " END"


def event_orders(conn: Connection, states: tuple[str, ...]) -> list[dict[str, Any]]:
    """Event orders in ``states``, the most urgent first, then the oldest."""
    rows = conn.execute(
        text(f"""SELECT id, state, kind, urgency, title, dag_id, run_id, task_id, occurrences, work_order_id,
                        incident_type, started_at, last_seen_at, acknowledged_by, resolved_by, resolution,
                        evaluated_on, last_error, links
                   FROM govops.event_order WHERE state = ANY(:states)
                  ORDER BY {_URGENCY_ORDER}, started_at NULLS LAST, id"""),
        {"states": list(states)},
    ).mappings()  # fmt: skip
    return [dict(r) for r in rows]


def run_usage(conn: Connection, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """What one DAG run metered, per task, item, unit and effective work order."""
    rows = conn.execute(
        text(f"""SELECT e.task_id, e.map_index, e.service_item_code, e.unit, {_WO} AS work_order_id,
                        sum(e.quantity)::bigint AS quantity, sum(e.records)::bigint AS records, count(*) AS events
                   FROM {_FROM} WHERE e.dag_id = :d AND e.run_id = :r
                  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 NULLS FIRST"""),
        {"d": dag_id, "r": run_id},
    ).mappings()  # fmt: skip
    return [{**r, "item_name": item_name(r["service_item_code"])} for r in rows]


# The event orders of job health: final failures, which the listener opens and classifies
# (govops.ops.event_orders.CLASSES), and what the monitoring pass (govops.ops.health) detects.
FAILURE_KINDS = ("failed", *(kind for kind, *_ in CLASSES))
HEALTH_KINDS = ("late", "slow", "stuck", "import_error")
PROBLEM_KINDS = FAILURE_KINDS + HEALTH_KINDS
MONITOR_DAG = "ops_job_health"  # the DAG that runs the monitoring pass


def job_health(conn: Connection, now: datetime, hours: int = 24) -> dict[str, Any]:
    """The last ``hours``: final task failures, and the event orders the listener and the
    monitoring pass opened for failed, stuck, slow and late runs and import errors (open
    ones whenever they were seen). Nothing is judged here: the orders are the rules' output."""
    since = now - timedelta(hours=hours)
    failures = conn.execute(
        text("""SELECT dag_id, run_id, task_id, map_index, try_number, work_order_id, error, log_url, failed_at
                  FROM govops.task_failure WHERE final AND failed_at >= :since ORDER BY failed_at DESC"""),
        {"since": since},
    ).mappings().all()  # fmt: skip
    problems = conn.execute(
        text("""SELECT id, kind, state, urgency, title, dag_id, run_id, task_id, occurrences, last_seen_at, started_at
                  FROM govops.event_order
                 WHERE kind = ANY(:kinds) AND (state IN ('open', 'acknowledged') OR last_seen_at >= :since)
                 ORDER BY kind, last_seen_at DESC NULLS LAST"""),
        {"kinds": list(PROBLEM_KINDS), "since": since},
    ).mappings().all()  # fmt: skip
    by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in PROBLEM_KINDS}
    for p in problems:
        by_kind[p["kind"]].append(dict(p))
    return {"since": since, "failures": [dict(f) for f in failures], "problems": by_kind,
            "failure_kinds": list(FAILURE_KINDS)}  # fmt: skip


def last_monitoring_pass() -> dict[str, Any] | None:
    """The latest run of the monitoring DAG (state, start, end) from Airflow's metadata
    database: the api-server's own, where this runs (never task code)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.execute(
            select(DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date)
            .where(DagRun.dag_id == MONITOR_DAG).order_by(DagRun.start_date.desc().nulls_last()).limit(1)
        ).first()  # fmt: skip
    return None if run is None else {"dag_id": MONITOR_DAG, "run_id": run.run_id, "state": str(run.state),
                                     "start_date": run.start_date, "end_date": run.end_date}  # fmt: skip
