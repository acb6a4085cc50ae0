"""The security_archive DAG (item 21) under real Airflow and PostgreSQL with the project's
retention policy: a preview changes nothing; an archive run maps one task per partition and
meters its records once, also when re-run; a restore brings a partition back identical and
meters nothing; a destruction is refused without an approval, then destroys, certifies and
meters; the report is written."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.security.archive import ARCHIVE_MANIFEST, safe_name
from govops.security.archive_sample import DEMO_DATASET, write_sample_events
from govops.security.destruction import approve_destruction
from govops.settlement.workorders import ensure_demo_work_order
from tests.browser import assert_screenshot_not_blank, render
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

WO = "WO-DEMO-ARCHIVE"
USAGE = """SELECT service_item_code, unit, quantity, records, data_source, work_order_id, attributes->>'action'
             FROM govops.usage_event WHERE dag_id = 'security_archive' AND run_id = :run ORDER BY id"""
OPS = """SELECT partition, state, rows FROM govops.security_archive_operation
          WHERE dag_id = 'security_archive' AND run_id = :run ORDER BY partition"""
DUE = ["event_date=2025-01-01", "event_date=2025-01-31", "event_date=2025-03-02", "event_date=2025-04-01",
       "event_date=2025-05-01", "event_date=2025-05-31", "event_date=2025-06-30"]  # fmt: skip
ROWS = 20


def at(day: int) -> datetime:
    return datetime(2026, 3, day, tzinfo=UTC)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ARCHIVE_MANIFEST}  # fmt: skip


def test_security_archive_dag(isolated_env: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    lake = isolated_env
    write_sample_events(lake.as_uri(), start=date(2025, 1, 1), end=date(2025, 12, 31), every_days=30,
                        rows_per_day=ROWS)  # fmt: skip
    live, arch = lake / DEMO_DATASET, lake / "archive" / DEMO_DATASET
    original = digests(live)
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, WO, "21", on=date(2026, 1, 1))
    base = {"work_order_id": WO, "dataset": DEMO_DATASET, "as_of": "2025-12-31"}  # keep 180 days: cutoff 2025-07-04

    preview = run_dag("security_archive", conf={**base, "action": "preview"}, logical_date=at(1))
    assert preview.state == "success", preview.task_states
    assert preview.task_states["prepare"] == "success"
    assert rows(ledger_url, OPS, run=preview.run_id) == [] and digests(live) == original
    assert rows(ledger_url, USAGE, run=preview.run_id) == []

    archived = run_dag("security_archive", conf={**base, "action": "archive"}, logical_date=at(2))
    assert archived.state == "success", archived.task_states
    assert sorted(k for k in archived.task_states if k.startswith("process[")) == [f"process[{i}]" for i in range(7)]
    assert rows(ledger_url, OPS, run=archived.run_id) == [(p, "removed", ROWS) for p in DUE]
    assert sorted(p.name for p in arch.iterdir() if not p.name.startswith(".")) == DUE
    assert sorted(p.name for p in live.iterdir() if p.is_dir()) == [
        "event_date=2025-07-30", "event_date=2025-08-29", "event_date=2025-09-28", "event_date=2025-10-28",
        "event_date=2025-11-27", "event_date=2025-12-27"]  # fmt: skip
    metered = [("21", "record", 7 * ROWS, 7 * ROWS, DEMO_DATASET, WO, "archive")]
    assert rows(ledger_url, USAGE, run=archived.run_id) == metered
    report = lake / "reports/security/archive/report.html"
    assert report.exists() and f"{7 * ROWS:,}" in report.read_text()

    again = run_dag("security_archive", conf={**base, "action": "archive"}, logical_date=at(2))
    assert again.state == "success" and again.run_id == archived.run_id
    assert rows(ledger_url, USAGE, run=archived.run_id) == metered

    restored = run_dag("security_archive", conf={**base, "action": "restore", "partitions": [DUE[0]]},
                       logical_date=at(3))  # fmt: skip
    assert restored.state == "success", restored.task_states
    assert digests(live / DUE[0]) == {k.split("/", 1)[1]: v for k, v in original.items() if k.startswith(DUE[0])}
    assert not (arch / DUE[0]).exists()
    assert rows(ledger_url, OPS, run=restored.run_id) == [(DUE[0], "restored", ROWS)]
    assert rows(ledger_url, USAGE, run=restored.run_id) == []

    destroy = {**base, "action": "destroy", "partitions": DUE[1:3]}
    refused = run_dag("security_archive", conf=destroy, logical_date=at(4))
    assert refused.state == "failed" and refused.task_states["prepare"] == "failed"
    assert (arch / DUE[1]).exists() and rows(ledger_url, OPS, run=refused.run_id) == []

    approve_destruction(engine, WO, DEMO_DATASET, DUE[1:3], requested_by="数据管理员", approved_by="安全负责人")
    destroyed = run_dag("security_archive", conf=destroy, logical_date=at(5))
    assert destroyed.state == "success", destroyed.task_states
    assert not (arch / DUE[1]).exists() and not (arch / DUE[2]).exists()
    assert rows(ledger_url, OPS, run=destroyed.run_id) == [(p, "destroyed", ROWS) for p in DUE[1:3]]
    assert rows(ledger_url, USAGE, run=destroyed.run_id) == [
        ("21", "record", 2 * ROWS, 2 * ROWS, DEMO_DATASET, WO, "destroy")]
    folder = lake / "reports/security/destruction" / DEMO_DATASET / safe_name(destroyed.run_id)
    cert = json.loads((folder / "certificate.json").read_text())
    assert (cert["complete"], cert["rows_before"], cert["rows_after"], cert["approved_by"]) == (
        True, 2 * ROWS, 0, ["安全负责人"])
    assert cert["key"]["destroyed"] is False  # other partitions of the dataset remain
    assert "certificate.html" in report.read_text()
    for page in (report, folder / "certificate.html"):  # as a person sees them
        shown = render(page.as_uri())
        assert DEMO_DATASET in shown.text
        assert all(i.natural_width and i.natural_width > 300 for i in shown.images)
        assert_screenshot_not_blank(shown.screenshot)
    assert len(render(report.as_uri()).images) == 3
    engine.dispose()
