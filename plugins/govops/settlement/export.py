"""Statement exports for the settlement system and the supervisor: JSON, CSV and XLSX."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

LINE_COLUMNS = (
    "line_no", "kind", "service_order_id", "work_order_id", "service_item_code", "item_name", "unit",
    "billing_unit", "catalog_version", "raw_quantity", "billing_quantity", "tiered", "difficulty", "cap",
    "work_order_amount", "coefficient", "amount", "note",
)  # fmt: skip


def line_rows(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per work order of each line, then the line's own amount; penalties as rows."""
    rows: list[dict[str, Any]] = []
    for line in statement["lines"]:
        base = {"line_no": line["line_no"], "kind": line["kind"], "service_order_id": line.get("service_order_id")}
        for wo in line.get("work_orders", []):
            rows.append({**base, **{k: wo.get(k) for k in LINE_COLUMNS if k in wo}, "work_order_amount": wo["amount"],
                         "coefficient": line.get("coefficient")})  # fmt: skip
        if line["kind"] == "adjustment":
            note = f"billed in {line['billed_in']}: {line['billed_before']}, now {line['fee_now']}"
        elif line["kind"] == "penalty":
            note = " ".join(x for x in (line["incident_type"], line.get("event_order_id"), line.get("note")) if x)
        else:
            note = ""
        rows.append({**base, "coefficient": line.get("coefficient"), "amount": line["amount"], "note": note})
    return rows


def write_json(statement: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(statement, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    return path


def write_csv(statement: dict[str, Any], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel opens Chinese text correctly
        writer = csv.DictWriter(f, fieldnames=LINE_COLUMNS)
        writer.writeheader()
        writer.writerows(line_rows(statement))
        for key, value in statement["totals"].items():
            writer.writerow({"kind": "total", "note": key, "amount": value})
    return path


def write_xlsx(statement: dict[str, Any], path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    summary = book.active
    summary.title = "Summary"
    period = statement["period"]
    summary.append(["period", period["id"], period["kind"], period["start_date"], period["end_date"]])
    summary.append(["state", statement.get("state", "")])
    summary.append(["content_hash", statement["content_hash"]])
    for key, value in statement["assessment"].items():
        summary.append([f"assessment.{key}", value])
    for key, value in statement["totals"].items():
        summary.append([key, value])
    lines = book.create_sheet("Lines")
    lines.append(list(LINE_COLUMNS))
    for row in line_rows(statement):
        lines.append([row.get(c) for c in LINE_COLUMNS])
    excluded = book.create_sheet("Excluded")
    excluded.append(["service_order_id", "quality_score", "reason"])
    for e in statement["excluded"]:
        excluded.append([e["service_order_id"], e["quality_score"], e["reason"]])
    unassigned = book.create_sheet("Unassigned")
    unassigned.append(["service_item_code", "unit", "events", "quantity"])
    for u in statement["unassigned"]:
        unassigned.append([u["service_item_code"], u["unit"], u["events"], u["quantity"]])
    book.save(path)
    return path


WRITERS = {"json": write_json, "csv": write_csv, "xlsx": write_xlsx}
