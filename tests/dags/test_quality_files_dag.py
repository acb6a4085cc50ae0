"""The quality_file_check DAG under real Airflow and PostgreSQL, with a real HTTP server on
127.0.0.1: exact counts per reason in the check log, metered once and only the files whose
content no earlier run checked (also when a run is re-run after later ones), the issue
list, and the replacement workflow from request to verification."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.quality import files as F
from govops.sample_data import sample_files as S
from govops.settlement.workorders import ensure_demo_work_order
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

BODIES = {"/open/stats.csv": S.csv_bytes()}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BODIES.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/csv" if body else "text/plain")
        body = body or b"not found"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


USAGE = "SELECT service_item_code, unit, quantity, records, data_source, attributes->'checked', " \
        "attributes->'new' FROM govops.usage_event WHERE dag_id = 'quality_file_check' ORDER BY id"  # fmt: skip
BY_REASON = """SELECT p, count(*) FROM govops.quality_file_check, unnest(problems) p
                WHERE run_id = :run GROUP BY p ORDER BY p"""
FIRST, SECOND = ("09", "file", 20, 20, "sharing", 20, 20), ("09", "file", 2, 20, "sharing", 20, 2)
STATUS = "SELECT status, count(*) FROM govops.quality_file_check WHERE run_id = :run GROUP BY status ORDER BY status"


def test_file_check_run_metering_and_replacements(isolated_env: Path, ledger_url: str, http_base: str) -> None:
    sample = S.write_sample_files(isolated_env / "sharing" / "files")
    engine = create_engine(ledger_url)
    S.register_datasets(engine, sample.datasets)
    ensure_demo_work_order(engine, "WO-FILES", "09", on=date(2026, 6, 1))
    urls = [{"url": f"{http_base}/open/stats.csv", "dataset": S.TABLES, "format": "csv"},
            {"url": f"{http_base}/open/gone.pdf", "dataset": S.REPORTS}]  # fmt: skip
    conf = {"work_order_id": "WO-FILES", "zone": "sharing", "urls": urls}
    first = datetime(2026, 8, 1, tzinfo=UTC)
    result = run_dag("quality_file_check", conf=conf, logical_date=first)
    assert result.state == "success", result.task_states

    # 18 sample files + 2 URLs = 20 checked: 8 ok + 12 failed, one reason each.
    assert rows(ledger_url, STATUS, run=result.run_id) == [("failed", 12), ("ok", 8)]
    assert dict(rows(ledger_url, BY_REASON, run=result.run_id)) == {
        "CATALOG_ENTRY_MISSING": 1, "EMPTY": 1, "FORMAT_MISMATCH": 1, "HTTP_STATUS": 1, "NOT_FOUND": 1,
        "NO_CATALOG_ENTRY": 1, "RAGGED_ROWS": 1, "SIZE_MISMATCH": 1, "TRUNCATED": 3, "UNREADABLE": 1,
    }  # fmt: skip
    assert rows(ledger_url, USAGE) == [FIRST]
    folder = isolated_env / "reports" / "files" / "sharing"
    (report,) = list(folder.iterdir())
    with (report / "issues.csv").open(encoding="utf-8-sig") as fh:
        issues = list(csv.DictReader(fh))
    assert len(issues) == 12 and {i["reasons"] for i in issues} >= {"HTTP_STATUS", "NO_CATALOG_ENTRY"}
    assert (report / "issues.xlsx").stat().st_size > 0
    assert rows(ledger_url, "SELECT count(*) FROM govops.quality_file_replacement WHERE state = 'requested'") == [(12,)]

    # A re-run of the same run: rows replaced, not added; metered once; no second requests.
    again = run_dag("quality_file_check", conf=conf, logical_date=first)
    assert again.state == "success" and again.run_id == result.run_id
    assert rows(ledger_url, STATUS, run=result.run_id) == [("failed", 12), ("ok", 8)]
    assert rows(ledger_url, USAGE) == [FIRST]
    assert rows(ledger_url, "SELECT count(*) FROM govops.quality_file_replacement") == [(12,)]

    # The data owner replaces the truncated PDF with a good one and the ragged CSV with one
    # still ragged, and points the file catalog at the new files.
    zone = sample.folder
    truncated, ragged = zone / "reports/truncated.pdf", zone / "tables/ragged.csv"
    fixed, still_ragged = zone / "reports/truncated-v2.pdf", zone / "tables/ragged-v2.csv"
    fixed.write_bytes(S.pdf_bytes())
    still_ragged.write_bytes(ragged.read_bytes())
    truncated.unlink()
    ragged.unlink()
    catalog = yaml.safe_load((zone / F.FILE_CATALOG).read_text(encoding="utf-8"))
    for item in catalog["files"]:
        if item["path"] in ("reports/truncated.pdf", "tables/ragged.csv"):
            new = fixed if item["path"].endswith(".pdf") else still_ragged
            item.update(path=new.relative_to(zone).as_posix(), size=new.stat().st_size)
    (zone / F.FILE_CATALOG).write_text(yaml.safe_dump(catalog, allow_unicode=True), encoding="utf-8")
    F.record_replacement(engine, truncated, fixed, "张运营")
    F.record_replacement(engine, ragged, still_ragged, "张运营")
    assert F.replacements(engine, truncated)[-1]["state"] == "replaced"

    second = run_dag("quality_file_check", conf=conf, logical_date=datetime(2026, 8, 2, tzinfo=UTC))
    assert second.state == "success", second.task_states
    assert rows(ledger_url, STATUS, run=second.run_id) == [("failed", 11), ("ok", 9)]
    [pdf_request] = F.replacements(engine, truncated)
    assert (pdf_request["state"], pdf_request["replacement_location"], pdf_request["replaced_by"]) == (
        "verified", str(fixed), "张运营")
    assert pdf_request["verified_at"] > pdf_request["replaced_at"]
    assert [r["state"] for r in F.replacements(engine, ragged)] == ["replaced"]  # its replacement failed too
    assert F.replacements(engine, still_ragged) == []  # no request against a pending replacement
    # Metered: the 2 new files only; the 18 others (also the missing file and the URL that
    # fails, counted by location) were checked by the first run.
    assert rows(ledger_url, USAGE) == [FIRST, SECOND]

    # Invalid transitions are refused with the file named.
    with pytest.raises(F.ReplacementError, match=f"{fixed}: its last check passed"):
        F.request_replacement(engine, fixed)
    with pytest.raises(F.ReplacementError, match="already open"):
        F.request_replacement(engine, zone / "reports/empty.pdf")
    with pytest.raises(F.ReplacementError, match="its replacement is already verified"):
        F.record_replacement(engine, truncated, fixed, "张运营")
    with pytest.raises(F.ReplacementError, match="never checked"):
        F.request_replacement(engine, zone / "nowhere.pdf")
    with pytest.raises(F.ReplacementError, match="say who replaced"):
        F.record_replacement(engine, ragged, still_ragged, " ")

    # One file's content changes: exactly 1 new. Then the first run re-run after the later
    # ones meters its own 20 again, with no conflict.
    (zone / "tables/legacy_gbk.csv").write_bytes(S.csv_bytes())
    third = run_dag("quality_file_check", conf=conf, logical_date=datetime(2026, 8, 5, tzinfo=UTC))
    assert third.state == "success", third.task_states
    rerun = run_dag("quality_file_check", conf=conf, logical_date=first)
    assert rerun.state == "success" and rerun.run_id == result.run_id, rerun.task_states
    assert rows(ledger_url, USAGE) == [FIRST, SECOND, ("09", "file", 1, 20, "sharing", 20, 1)]
    engine.dispose()


def test_refused_work_order_checks_nothing(
    isolated_env: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    S.write_sample_files(isolated_env / "open" / "files")
    result = run_dag("quality_file_check", conf={"work_order_id": "WO-NOPE", "zone": "open"},
                     logical_date=datetime(2026, 8, 3, tzinfo=UTC))  # fmt: skip
    assert result.state == "failed" and result.task_states["prepare"] == "failed"
    # A refusal fails at once: one attempt, the last, no retries.
    final = "SELECT error FROM govops.task_failure WHERE run_id = :r AND task_id = 'prepare' AND final AND try_number=1"
    every = "SELECT count(*) FROM govops.task_failure WHERE run_id = :r AND task_id = 'prepare'"
    errors = rows(ledger_url, final, r=result.run_id)
    assert rows(ledger_url, every, r=result.run_id) == [(1,)]
    assert len(errors) == 1 and "WORK_ORDER_REFUSED: work order 'WO-NOPE' is unknown" in errors[0][0]
    checked = "SELECT count(*) FROM govops.quality_file_check WHERE run_id = :r"
    assert rows(ledger_url, checked, r=result.run_id) == [(0,)]
