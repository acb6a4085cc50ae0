"""Compute a period statement from its inputs: a pure function, so a statement can be
recomputed from what it stored (``verify``) and is identical every time.

The inputs hold everything the result depends on: the catalog and contract terms as they
were, the accepted service orders with the cumulative usage of their work orders, what
closed periods already billed, the period's assessment, penalties and what it carries in.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

from govops.settlement import rules
from govops.settlement.catalog import Catalog, Contract, parse_catalog, parse_contract


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def content_hash(statement: dict[str, Any]) -> str:
    canonical = json.dumps(statement, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _work_order_line(wo: dict[str, Any], catalog: Catalog, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """One work order's amount (R1-R3). A snapshot pins the version, difficulty and cap of an
    earlier billing, for adjustments (R9)."""
    version = (
        catalog.version(snapshot["catalog_version"]) if snapshot
        else catalog.in_force(date.fromisoformat(wo["order_date"]))
    )  # fmt: skip
    item = version.items[wo["service_item_code"]]
    meter = item.meters[wo["unit"]]
    if snapshot:
        difficulty, cap = Decimal(snapshot["difficulty"]), _d(snapshot["cap"])
    else:
        difficulty = Decimal(wo["difficulty"])
        cap = _d(wo["cap"]) if wo.get("cap") is not None else item.cap
    raw = int(wo["raw_quantity"])
    quantity = rules.billing_quantity(raw, meter)
    tiered = rules.tiered(quantity, meter.bands, meter.tier_mode)
    return {
        "work_order_id": wo["id"],
        "service_item_code": item.code,
        "item_name": item.name_zh,
        "unit": meter.unit,
        "billing_unit": meter.billing_unit,
        "catalog_version": version.version,
        "raw_quantity": raw,
        "event_count": int(wo.get("event_count", 0)),
        "last_usage_event_id": wo.get("last_usage_event_id"),
        "billing_quantity": str(quantity),
        "tiered": str(tiered),
        "difficulty": str(difficulty),
        "cap": None if cap is None else str(cap),
        "capped": cap is not None and tiered * difficulty > cap,
        "amount": str(rules.work_order_amount(raw, meter, difficulty, cap)),
    }


def compute_statement(inputs: dict[str, Any]) -> dict[str, Any]:
    catalog = parse_catalog(inputs["catalog"], "statement inputs")
    contract: Contract = parse_contract(inputs["contract"], "statement inputs")
    lines: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []

    for so in sorted(inputs["service_orders"], key=lambda s: s["id"]):
        coefficient = rules.quality_coefficient(_d(so["quality_score"]), _d(so.get("rework_score")), contract)
        if coefficient is None:
            excluded.append({"service_order_id": so["id"], "quality_score": so["quality_score"],
                             "reason": "rework pending: scored below 60 and not yet re-evaluated"})
            continue
        wos = [_work_order_line(wo, catalog) for wo in sorted(so["work_orders"], key=lambda w: w["id"])]
        fee = rules.service_order_fee((Decimal(w["amount"]) for w in wos), coefficient)
        lines.append({
            "kind": "service_order", "service_order_id": so["id"], "accepted_on": so["accepted_on"],
            "quality_score": so["quality_score"], "rework_score": so.get("rework_score"),
            "coefficient": str(coefficient), "work_orders": wos, "amount": str(fee),
        })  # fmt: skip

    for prior in sorted(inputs["prior"], key=lambda p: p["service_order_id"]):
        snapshots = {w["work_order_id"]: w for w in prior["work_orders"]}
        usage = sorted(prior["usage"], key=lambda w: w["id"])
        added = [wo["id"] for wo in usage if wo["id"] not in snapshots]
        if added:  # refused by the database since migration 0008 (seed 004: accepted orders are final)
            raise ValueError(
                f"service order {prior['service_order_id']} was billed in {prior['billed_in']} without work "
                f"order(s) {', '.join(added)}, added after its acceptance: move them to a new service order"
            )
        wos = [_work_order_line(wo, catalog, snapshots[wo["id"]]) for wo in usage]
        coefficient = Decimal(prior["coefficient"])
        fee_now = rules.service_order_fee((Decimal(w["amount"]) for w in wos), coefficient)
        delta = fee_now - Decimal(prior["billed_total"])
        if delta != 0:
            lines.append({
                "kind": "adjustment", "service_order_id": prior["service_order_id"], "billed_in": prior["billed_in"],
                "coefficient": str(coefficient), "billed_before": prior["billed_total"], "fee_now": str(fee_now),
                "work_orders": wos, "amount": str(delta),
            })  # fmt: skip

    for penalty in sorted(inputs["penalties"], key=lambda p: (p["incident_type"], str(p.get("event_order_id")))):
        lines.append({"kind": "penalty", **penalty})
    for number, line in enumerate(lines, start=1):
        line["line_no"] = number

    gross = sum((Decimal(x["amount"]) for x in lines if x["kind"] != "penalty"), Decimal("0.00"))
    penalties = sum((Decimal(x["amount"]) for x in lines if x["kind"] == "penalty"), Decimal("0.00"))
    assessment = inputs["assessment"]
    overall = rules.overall_score(Decimal(assessment["service_quality"]), Decimal(assessment["satisfaction"]), contract)
    totals = rules.period_totals(
        gross,
        overall=overall,
        penalties=penalties,
        shortfall_in=Decimal(inputs["carry"]["shortfall_in"]),
        prepayment_remaining=Decimal(inputs["carry"]["prepayment_remaining"]),
        contract=contract,
    )
    statement = {
        "period": inputs["period"],
        "contract": contract.name,
        "currency": catalog.currency,
        "assessment": {**assessment, "overall": str(overall), "deduction_rate": str(totals.deduction_rate)},
        "lines": lines,
        "excluded": excluded,
        "unassigned": inputs["unassigned"],
        "totals": {k: str(v) for k, v in totals.__dict__.items()},
    }
    statement["content_hash"] = content_hash(statement)
    return statement
