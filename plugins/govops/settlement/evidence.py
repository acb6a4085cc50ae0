"""Evidence pack of a work order for the supervisor (监理): the ledger rows behind its
quantity, the runs and manifests behind each row, and the amount recomputed from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from govops.settlement.catalog import load_catalog
from govops.settlement.engine import _work_order_line


def evidence_pack(engine: Engine, work_order_id: str, out_dir: Path) -> Path:
    from govops.spark import manifest as manifests

    with engine.connect() as conn:
        wo = conn.execute(
            text("SELECT * FROM govops.work_order WHERE id = :id"), {"id": work_order_id}
        ).mappings().first()
        if wo is None:
            raise ValueError(f"work order {work_order_id!r} is unknown")
        so = conn.execute(
            text("SELECT * FROM govops.service_order WHERE id = :id"), {"id": wo["service_order_id"]}
        ).mappings().one()
        rows = conn.execute(
            text(
                """SELECT e.*, a.assigned_by, a.assigned_at FROM govops.usage_event e
                   LEFT JOIN govops.usage_assignment a ON a.usage_event_id = e.id
                   WHERE coalesce(e.work_order_id, a.work_order_id) = :wo
                     AND e.service_item_code = :item AND e.unit = :unit ORDER BY e.id"""
            ),
            {"wo": work_order_id, "item": wo["service_item_code"], "unit": wo["unit"]},
        ).mappings().all()
    out_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    for uri in sorted({r["manifest_uri"] for r in rows if r["manifest_uri"]}):
        try:
            found[uri] = manifests.read(uri)
        except manifests.ManifestError as exc:
            found[uri] = {"error": str(exc)}
    raw = sum(int(r["quantity"]) for r in rows)
    line = _work_order_line(
        {"id": wo["id"], "service_item_code": wo["service_item_code"], "unit": wo["unit"],
         "order_date": wo["order_date"].isoformat(), "difficulty": str(wo["difficulty"]),
         "cap": None if wo["cap"] is None else str(wo["cap"]), "raw_quantity": raw, "event_count": len(rows),
         "last_usage_event_id": rows[-1]["id"] if rows else None},
        load_catalog(),
    )  # fmt: skip
    pack = {
        "work_order": dict(wo),
        "service_order": dict(so),
        "usage_events": [dict(r) for r in rows],
        "runs": sorted({f"{r['dag_id']}/{r['run_id']}" for r in rows}),
        "manifests": found,
        "recomputed": line,
        "how_to_check": "raw_quantity = sum(usage_events.quantity); amount = recomputed.amount before the service "
        "order's quality coefficient (rules R1-R3); each event's manifest lists the outputs and counts behind it.",
    }
    path = out_dir / f"evidence_{work_order_id}.json"
    path.write_text(json.dumps(pack, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return path
