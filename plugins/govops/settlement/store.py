"""Settlement against PostgreSQL: gather a period's inputs, keep drafts, close periods,
return closed statements unchanged, and verify a statement against the ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops import settings
from govops.errors import CodedError
from govops.settlement import rules
from govops.settlement.catalog import CATALOG_FILE, CONTRACT_FILE, parse_catalog, parse_contract, read_yaml
from govops.settlement.engine import compute_statement, content_hash


class SettlementError(CodedError, ValueError):
    code = "SETTLEMENT_REFUSED"


class PeriodClosed(SettlementError):
    code = "PERIOD_CLOSED"


def _terms() -> tuple[dict[str, Any], dict[str, Any]]:
    """The catalog and the contract as the files hold them, validated (errors name the file)."""
    root = settings.repo_root()
    catalog, contract = read_yaml(root / CATALOG_FILE), read_yaml(root / CONTRACT_FILE)
    parse_catalog(catalog, str(root / CATALOG_FILE))
    parse_contract(contract, str(root / CONTRACT_FILE))
    return catalog, contract


def add_period(conn: Connection, period_id: str, kind: str, start: date, end: date) -> None:
    if end < start:
        raise SettlementError(f"period {period_id}: ends on {end}, before it starts on {start}")
    if conn.execute(text("SELECT 1 FROM govops.settlement_period WHERE id = :id"), {"id": period_id}).first():
        raise SettlementError(f"period {period_id} already exists")
    overlap = conn.execute(
        text(
            """SELECT id, start_date, end_date FROM govops.settlement_period
               WHERE daterange(start_date, end_date, '[]') && daterange(:s, :e, '[]') ORDER BY start_date LIMIT 1"""
        ),
        {"s": start, "e": end},
    ).first()
    if overlap is not None:
        raise SettlementError(
            f"period {period_id} ({start} to {end}) overlaps period {overlap.id} "
            f"({overlap.start_date} to {overlap.end_date})"
        )
    conn.execute(
        text("INSERT INTO govops.settlement_period (id, kind, start_date, end_date) VALUES (:id, :k, :s, :e)"),
        {"id": period_id, "k": kind, "s": start, "e": end},
    )


def _open_period(conn: Connection, period_id: str, what: str) -> Any:
    """The period, locked; refused if unknown or closed."""
    period = _period(conn, period_id, lock=True)
    if period.state == "closed":
        raise PeriodClosed(f"period {period_id} is closed; {what}")
    return period


def record_assessment(conn: Connection, period_id: str, service_quality: Decimal, satisfaction: Decimal) -> None:
    _open_period(conn, period_id, "its assessment cannot change")
    conn.execute(
        text("UPDATE govops.settlement_period SET service_quality = :q, satisfaction = :s WHERE id = :id"),
        {"id": period_id, "q": service_quality, "s": satisfaction},
    )


def add_penalty(
    conn: Connection, period_id: str, incident_type: str, event_order_id: str | None = None, note: str = ""
) -> Decimal:
    """A seed-000 incident penalty, at the contract's fixed amount for its type."""
    contract = parse_contract(_terms()[1])
    if incident_type not in contract.penalties:
        raise SettlementError(f"unknown incident type {incident_type!r}; known: {', '.join(contract.penalties)}")
    _open_period(conn, period_id, "no penalty can be added to it")
    if event_order_id is not None:
        order = conn.execute(
            text("SELECT state, incident_type FROM govops.event_order WHERE id = :id"), {"id": event_order_id}
        ).first()
        if order is None:
            raise SettlementError(f"period {period_id}: unknown event order {event_order_id!r}")
        # One penalty per event order: an evaluated one with an incident type is settled from
        # its evaluation (gather_inputs), and none is recorded twice.
        if order.state == "evaluated" and order.incident_type is not None:
            raise SettlementError(
                f"period {period_id}: event order {event_order_id} was evaluated as {order.incident_type}; "
                "settlement takes its penalty from the evaluation"
            )
        earlier = conn.execute(
            text("SELECT period_id FROM govops.period_penalty WHERE event_order_id = :id LIMIT 1"),
            {"id": event_order_id},
        ).scalar()
        if earlier is not None:
            raise SettlementError(
                f"period {period_id}: event order {event_order_id} already has a penalty in {earlier}"
            )
    amount = contract.penalties[incident_type]
    conn.execute(
        text(
            """INSERT INTO govops.period_penalty (period_id, incident_type, event_order_id, amount, note)
               VALUES (:p, :t, :e, :a, :n)"""
        ),
        {"p": period_id, "t": incident_type, "e": event_order_id, "a": amount, "n": note},
    )
    return amount


_USAGE = """
    SELECT w.id, w.service_item_code, w.unit, w.order_date, w.difficulty, w.cap, w.service_order_id,
           coalesce(u.quantity, 0) AS raw_quantity, coalesce(u.events, 0) AS event_count, u.last_id
      FROM govops.work_order w
      LEFT JOIN (
            SELECT coalesce(e.work_order_id, a.work_order_id) AS work_order_id, e.service_item_code, e.unit,
                   sum(e.quantity) AS quantity, count(*) AS events, max(e.id) AS last_id
              FROM govops.usage_event e
              LEFT JOIN govops.usage_assignment a ON a.usage_event_id = e.id
             WHERE coalesce(e.work_order_id, a.work_order_id) = ANY(:ids)
             GROUP BY 1, 2, 3
           ) u ON u.work_order_id = w.id AND u.service_item_code = w.service_item_code AND u.unit = w.unit
     WHERE w.service_order_id = ANY(:sos)
"""


def _work_order_usage(conn: Connection, service_order_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not service_order_ids:
        return {}
    wo_ids = conn.execute(
        text("SELECT id FROM govops.work_order WHERE service_order_id = ANY(:sos)"), {"sos": service_order_ids}
    ).scalars().all()
    out: dict[str, list[dict[str, Any]]] = {so: [] for so in service_order_ids}
    for r in conn.execute(text(_USAGE), {"ids": list(wo_ids), "sos": service_order_ids}).mappings():
        out[r["service_order_id"]].append(
            {
                "id": r["id"], "service_item_code": r["service_item_code"], "unit": r["unit"],
                "order_date": r["order_date"].isoformat(), "difficulty": str(r["difficulty"]),
                "cap": None if r["cap"] is None else str(r["cap"]),
                "raw_quantity": int(r["raw_quantity"]), "event_count": int(r["event_count"]),
                "last_usage_event_id": r["last_id"],
            }
        )  # fmt: skip
    return out


def _score(value: Any) -> str | None:
    return None if value is None else str(value)


def gather_inputs(conn: Connection, period: Any) -> dict[str, Any]:
    catalog_raw, contract_raw = _terms()
    contract = parse_contract(contract_raw)
    if period.service_quality is None or period.satisfaction is None:
        raise SettlementError(f"period {period.id}: record the assessment (service quality, satisfaction) first")
    earlier_open = conn.execute(
        text("SELECT id FROM govops.settlement_period WHERE state = 'open' AND start_date < :s ORDER BY start_date"),
        {"s": period.start_date},
    ).scalars().all()
    if earlier_open:
        raise SettlementError(f"period {period.id}: settle and close earlier period(s) {', '.join(earlier_open)} first")
    # A closed period whose statement is not closed (possible before migration 0008) would
    # have its orders billed again here: refuse until it is repaired.
    unsound = conn.execute(
        text(
            """SELECT p.id FROM govops.settlement_period p
               LEFT JOIN govops.settlement_statement s ON s.period_id = p.id
               WHERE p.state = 'closed' AND s.state IS DISTINCT FROM 'closed' AND p.start_date < :s
               ORDER BY p.start_date"""
        ),
        {"s": period.start_date},
    ).scalars().all()
    if unsound:
        raise SettlementError(f"period {period.id}: closed period(s) {', '.join(unsound)} have no closed statement")

    closed = conn.execute(
        text(
            """SELECT s.period_id, s.statement FROM govops.settlement_statement s
               JOIN govops.settlement_period p ON p.id = s.period_id
               WHERE s.state = 'closed' AND p.end_date < :s ORDER BY p.end_date"""
        ),
        {"s": period.start_date},
    ).all()
    carry = {"shortfall_in": "0.00", "prepayment_remaining": str(rules.prepayment(contract))}
    billed: dict[str, dict[str, Any]] = {}
    for row in closed:
        statement = row.statement
        carry = {
            "shortfall_in": statement["totals"]["shortfall_out"],
            "prepayment_remaining": statement["totals"]["prepayment_remaining"],
        }
        for line in statement["lines"]:
            if line["kind"] == "service_order":
                billed[line["service_order_id"]] = {
                    "service_order_id": line["service_order_id"],
                    "billed_in": row.period_id,
                    "billed_total": line["amount"],
                    "coefficient": line["coefficient"],
                    "work_orders": [
                        {k: w[k] for k in ("work_order_id", "catalog_version", "difficulty", "cap")}
                        for w in line["work_orders"]
                    ],
                }
            elif line["kind"] == "adjustment":
                prior = billed[line["service_order_id"]]
                prior["billed_total"] = str(Decimal(prior["billed_total"]) + Decimal(line["amount"]))

    to_bill = conn.execute(
        text(
            """SELECT id, quality_score, rework_score, accepted_on FROM govops.service_order
               WHERE state = 'accepted' AND accepted_on <= :e AND NOT (id = ANY(:billed)) ORDER BY id"""
        ),
        {"e": period.end_date, "billed": list(billed)},
    ).all()
    usage = _work_order_usage(conn, [r.id for r in to_bill] + list(billed))
    service_orders = [
        {"id": r.id, "quality_score": _score(r.quality_score), "rework_score": _score(r.rework_score),
         "accepted_on": r.accepted_on.isoformat(), "work_orders": usage[r.id]}
        for r in to_bill
    ]  # fmt: skip
    prior = [{**p, "usage": usage[so]} for so, p in billed.items()]
    penalties = [
        {"incident_type": r.incident_type, "event_order_id": r.event_order_id, "amount": str(r.amount),
         "note": r.note or ""}
        for r in conn.execute(
            text("SELECT * FROM govops.period_penalty WHERE period_id = :p ORDER BY id"), {"p": period.id}
        )
    ]  # fmt: skip
    # Event orders evaluated in the period with an incident type (事后评估): their penalty is
    # taken here, at the contract's amount (one without a period_penalty row of its own).
    penalties += [
        {"incident_type": r.incident_type, "event_order_id": r.id, "amount": str(contract.penalties[r.incident_type]),
         "note": f"event order evaluated on {r.evaluated_on.isoformat()}"}
        for r in conn.execute(
            text(
                """SELECT e.id, e.incident_type, e.evaluated_on FROM govops.event_order e
                   WHERE e.state = 'evaluated' AND e.incident_type IS NOT NULL
                     AND e.evaluated_on BETWEEN :s AND :e
                     AND NOT EXISTS (SELECT 1 FROM govops.period_penalty p WHERE p.event_order_id = e.id)
                   ORDER BY e.id"""
            ),
            {"s": period.start_date, "e": period.end_date},
        )
    ]  # fmt: skip
    unassigned = [
        {"service_item_code": r.service_item_code, "unit": r.unit, "events": int(r.events), "quantity": int(r.quantity)}
        for r in conn.execute(
            text(
                """SELECT service_item_code, unit, count(*) AS events, sum(quantity) AS quantity
                   FROM govops.unassigned_usage_v1 WHERE period <= :e GROUP BY 1, 2 ORDER BY 1, 2"""
            ),
            {"e": period.end_date},
        )
    ]
    return {
        "period": {"id": period.id, "kind": period.kind, "start_date": period.start_date.isoformat(),
                   "end_date": period.end_date.isoformat()},
        "assessment": {"service_quality": str(period.service_quality), "satisfaction": str(period.satisfaction)},
        "carry": carry,
        "service_orders": service_orders,
        "prior": prior,
        "penalties": penalties,
        "unassigned": unassigned,
        "catalog": catalog_raw,
        "contract": contract_raw,
    }  # fmt: skip


def _period(conn: Connection, period_id: str, *, lock: bool = False) -> Any:
    row = conn.execute(
        text(f"SELECT * FROM govops.settlement_period WHERE id = :id{' FOR UPDATE' if lock else ''}"),
        {"id": period_id},
    ).first()
    if row is None:
        raise SettlementError(f"unknown settlement period {period_id!r}")
    return row


def get_statement(engine: Engine, period_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT statement, state FROM govops.settlement_statement WHERE period_id = :p"), {"p": period_id}
        ).first()
    return None if row is None else {**row.statement, "state": row.state}


def _store(conn: Connection, period_id: str, state: str) -> dict[str, Any]:
    """Compute the period's statement and store it as ``state``; the caller holds the period lock."""
    inputs = gather_inputs(conn, _period(conn, period_id))
    statement = compute_statement(inputs)
    conn.execute(
        text(
            """INSERT INTO govops.settlement_statement (period_id, state, content_hash, statement, inputs)
               VALUES (:p, :state, :h, CAST(:s AS jsonb), CAST(:i AS jsonb))
               ON CONFLICT (period_id) DO UPDATE SET state = EXCLUDED.state, content_hash = EXCLUDED.content_hash,
                   statement = EXCLUDED.statement, inputs = EXCLUDED.inputs, computed_at = now()"""
        ),
        {"p": period_id, "state": state, "h": statement["content_hash"],
         "s": json.dumps(statement, ensure_ascii=False), "i": json.dumps(inputs, ensure_ascii=False, default=str)},
    )  # fmt: skip
    return {**statement, "state": state}


def settle(engine: Engine, period_id: str, *, force: bool = False) -> dict[str, Any]:
    """R10: an open period's draft is recomputed and replaced; a closed period's statement is
    returned as stored; forcing a recompute of a closed period raises PERIOD_CLOSED."""
    with engine.begin() as conn:
        period = _period(conn, period_id, lock=True)
        if period.state == "closed":
            if force:
                raise PeriodClosed(f"period {period_id} is closed; its statement cannot be recomputed")
            row = conn.execute(
                text("SELECT statement FROM govops.settlement_statement WHERE period_id = :p"), {"p": period_id}
            ).one()
            return {**row.statement, "state": "closed"}
        return _store(conn, period_id, "draft")


def close(engine: Engine, period_id: str) -> dict[str, Any]:
    """Settle the period one last time and close it, in one transaction under the period's
    row lock: a concurrent settle waits, then finds the period closed. From now on the
    period never changes."""
    with engine.begin() as conn:
        _open_period(conn, period_id, "it is already closed")
        statement = _store(conn, period_id, "closed")
        closed = conn.execute(
            text("UPDATE govops.settlement_period SET state = 'closed', closed_at = now() "
                 "WHERE id = :p AND state = 'open'"),
            {"p": period_id},
        ).rowcount
        if closed != 1:  # cannot happen under the lock; never report a close that did not happen
            raise SettlementError(f"period {period_id}: the close matched {closed} periods, not 1; nothing changed")
    return statement


def statement_of(engine: Engine, period_id: str) -> dict[str, Any]:
    """The stored statement; refused if the period is unknown or has none yet."""
    with engine.connect() as conn:
        _period(conn, period_id)
    statement = get_statement(engine, period_id)
    if statement is None:
        raise SettlementError(f"period {period_id} has no statement: settle it first")
    return statement


@dataclass(frozen=True)
class Verification:
    period_id: str
    stored_hash: str
    recomputed_hash: str
    ledger_mismatches: list[str]

    @property
    def ok(self) -> bool:
        return self.stored_hash == self.recomputed_hash and not self.ledger_mismatches


def verify(engine: Engine, period_id: str) -> Verification:
    """Recompute a stored statement from its stored inputs, and check every quantity in those
    inputs against the ledger rows behind it (the events up to the recorded last id)."""
    with engine.connect() as conn:
        period = _period(conn, period_id)
        row = conn.execute(
            text("SELECT statement, inputs, state FROM govops.settlement_statement WHERE period_id = :p"),
            {"p": period_id},
        ).first()
        if row is None:
            raise SettlementError(f"period {period_id} has no statement")
        recomputed = compute_statement(row.inputs)
        mismatches = []
        if period.state != row.state and "closed" in (period.state, row.state):
            mismatches.append(f"period {period_id} is {period.state} but its statement is {row.state}")
        work_orders = [w for so in row.inputs["service_orders"] for w in so["work_orders"]]
        work_orders += [w for p in row.inputs["prior"] for w in p["usage"]]
        for wo in work_orders:
            found = conn.execute(
                text(
                    """SELECT count(*) AS n, coalesce(sum(e.quantity), 0) AS q FROM govops.usage_event e
                       LEFT JOIN govops.usage_assignment a ON a.usage_event_id = e.id
                       WHERE coalesce(e.work_order_id, a.work_order_id) = :wo AND e.unit = :unit
                         AND e.service_item_code = :item AND e.id <= :last"""
                ),
                {"wo": wo["id"], "unit": wo["unit"], "item": wo["service_item_code"],
                 "last": wo["last_usage_event_id"] or 0},
            ).one()  # fmt: skip
            if (int(found.n), int(found.q)) != (wo["event_count"], wo["raw_quantity"]):
                mismatches.append(
                    f"work order {wo['id']}: statement has {wo['event_count']} events / {wo['raw_quantity']} "
                    f"units, the ledger has {found.n} / {found.q}"
                )
    stored = row.statement["content_hash"]
    body = {k: v for k, v in row.statement.items() if k != "content_hash"}
    if content_hash(body) != stored:
        mismatches.append(f"the stored statement no longer matches its own hash {stored}")
    return Verification(period_id, stored, recomputed["content_hash"], mismatches)


def period_containing(engine: Engine, kind: str, day: date) -> str:
    """The id of the period of ``kind`` that contains ``day`` (for scheduled settlement runs)."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT id FROM govops.settlement_period WHERE kind = :k AND :d BETWEEN start_date AND end_date"),
            {"k": kind, "d": day},
        ).scalar()
    if found is None:
        raise SettlementError(f"no {kind} settlement period contains {day}: add it with add-period")
    return found
