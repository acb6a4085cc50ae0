"""File checks (item 09) on real files in a temporary zone and a real HTTP server on
127.0.0.1: every reason code, the file catalog's errors, the summary, the issue list, and
metering only the files whose content no earlier run checked (in the test database)."""

from __future__ import annotations

import csv
import io
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pytest
import yaml
from sqlalchemy import Connection, Engine, text

from govops.ledger.usage import IdempotencyConflict, TaskRef
from govops.quality import files as F
from govops.sample_data import sample_files as S
from govops.settlement.workorders import ensure_demo_work_order

CATALOG = {d["dataset"]: F.CatalogEntry(d["dataset"], d["provider_department"]) for d in S.DATASETS}


def entry(path: Path, fmt: str | None = None, size: int | None = None, dataset: str = S.REPORTS) -> F.FileEntry:
    return F.FileEntry(location=str(path), zone="sharing", path=path.name, dataset=dataset, format=fmt, size=size)


def codes(result: F.FileResult) -> list[str]:
    return result.codes


# --- a real HTTP server ------------------------------------------------------------------

ROUTES: dict[str, tuple[int, str | None, bytes, int | None]] = {}  # path -> status, type, body, Content-Length


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, ctype, body, length = ROUTES.get(self.path, (404, "text/plain", b"not found", None))
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)  # HTTP/1.0: the connection closes after this, even if short

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the sample zone ----------------------------------------------------------------------


def test_sample_zone_gets_exactly_the_expected_reasons(tmp_path: Path) -> None:
    sample = S.write_sample_files(tmp_path / "sharing" / "files")
    results = F.check_files(F.build_manifest(sample.folder, "sharing"), CATALOG)
    assert {r.entry.path: tuple(r.codes) for r in results} == sample.expected
    summary = F.summarize(results)
    assert (summary["checked"], summary["ok"], summary["failed"]) == (18, 7, 11)
    assert summary["by_reason"] == {"CATALOG_ENTRY_MISSING": 1, "EMPTY": 1, "FORMAT_MISMATCH": 1, "NOT_FOUND": 1,
                                    "NO_CATALOG_ENTRY": 1, "RAGGED_ROWS": 1, "SIZE_MISMATCH": 1, "TRUNCATED": 3,
                                    "UNREADABLE": 1}  # fmt: skip
    assert (summary["orphans"], summary["missing"]) == (1, 1)
    by_path = {r.entry.path: r for r in results}
    assert by_path["reports/mislabeled.pdf"].format == "png"  # read as what it is: a good PNG
    assert by_path["tables/legacy_gbk.csv"].status == "ok"  # GBK is read as GBK
    assert by_path["tables/ragged.csv"].problems[0].detail == "2 row(s) without the header's 3 fields: line 2, 3"
    assert by_path["reports/办事指南.docx"].department == "区政务服务办"
    assert by_path["images/map.png"].sha256 and by_path["reports/missing.pdf"].sha256 is None
    # Without the database the data-catalog link is not judged.
    assert tuple(F.check_file(by_path["reports/unregistered.pdf"].entry).codes) == ()


def test_internal_files_are_skipped_and_orphans_listed(tmp_path: Path) -> None:
    zone = tmp_path / "open" / "files"
    (zone / "_staging").mkdir(parents=True)
    (zone / "_staging" / "x.pdf").write_bytes(S.pdf_bytes())
    (zone / ".hidden.csv").write_text("a\n1\n")
    (zone / "a.csv").write_bytes(S.csv_bytes())
    manifest = F.build_manifest(zone, "open")
    assert [(e.path, e.dataset) for e in manifest] == [("a.csv", None)]
    assert codes(F.check_file(manifest[0], CATALOG)) == ["NO_CATALOG_ENTRY"]


# --- readers: one defect each -------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def _corrupt_member(package: bytes, member: str) -> bytes:
    """Flip a byte inside one member's compressed data: the CRC no longer matches."""
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(package)
    data[start + info.compress_size // 2] ^= 0xFF
    return bytes(data)


def _empty_pdf() -> bytes:
    from pypdf import PdfWriter

    buf = io.BytesIO()
    PdfWriter().write(buf)
    return buf.getvalue()


CASES = [
    ("ok.pdf", S.pdf_bytes(), None, []),
    ("ok.txt", "青浦区公共数据\n".encode(), None, []),
    ("ok.json", '{"主题": "青浦"}'.encode(), None, []),
    ("ok.gif", S.image_bytes("GIF"), None, []),
    ("ok.bmp", S.image_bytes("BMP"), None, []),
    ("ok.webp", S.image_bytes("WEBP"), None, []),
    ("ok.tiff", S.image_bytes("TIFF"), None, []),
    ("no-pages.pdf", _empty_pdf(), None, ["UNREADABLE"]),
    ("damaged.pdf", b"%PDF-1.7\n1 0 obj <<< garbage >>\nstartxref\n9999\n%%EOF\n", None, ["UNREADABLE"]),
    ("cut.docx", S.docx_bytes()[:400], None, ["TRUNCATED"]),
    ("crc.docx", _corrupt_member(S.docx_bytes(), "word/document.xml"), None, ["UNREADABLE"]),
    ("not-word.docx", _zip({"readme.txt": b"hello"}), None, ["UNREADABLE"]),
    ("bad-xml.docx", _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document"}), None,
     ["UNREADABLE"]),
    ("word-as-excel.xlsx", S.docx_bytes(), "xlsx", ["FORMAT_MISMATCH"]),
    ("legacy.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "xlsx", ["FORMAT_MISMATCH"]),
    ("cut.jpg", S.image_bytes("JPEG")[:700], None, ["TRUNCATED"]),
    ("cut-body.png", S.image_bytes("PNG")[:300] + S.image_bytes("PNG")[-12:], None, ["TRUNCATED"]),
    ("noise.png", b"\x89PNG\r\n\x1a\n" + S.noise(200) + b"IEND\xaeB`\x82", None, ["UNREADABLE"]),
    ("open-quote.csv", b'a,b\n1,"unfinished\n', None, ["TRUNCATED"]),
    ("nul.csv", b"a,b\n1,\x002\n", None, ["UNREADABLE"]),
    ("header-only-blank.csv", b"\n\n", None, ["UNREADABLE"]),
    ("utf16.csv", "a,b\n1,2\n".encode("utf-16"), None, ["UNREADABLE"]),
    ("cut.json", b'{"a": [1, 2', None, ["TRUNCATED"]),
    ("bad.json", b'{"a": 1,, "b": 2}', None, ["UNREADABLE"]),
    ("binary.txt", b"abc\x00def", None, ["UNREADABLE"]),
    ("movie.mp4", b"\x00\x00\x00\x18ftypmp42", None, ["UNSUPPORTED_FORMAT"]),
    ("README", b"hello", None, ["UNSUPPORTED_FORMAT"]),
    ("empty.csv", b"", None, ["EMPTY"]),
    ("named-pdf-declared-docx.pdf", S.docx_bytes(), "docx", ["FORMAT_MISMATCH"]),
    ("wrong-size.csv", S.csv_bytes(), None, ["SIZE_MISMATCH"]),
]


@pytest.mark.parametrize(("name", "body", "fmt", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reader_flags_each_defect(tmp_path: Path, name: str, body: bytes, fmt: str | None, expected: list) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    size = len(body) + 1 if name.startswith("wrong-size") else len(body)
    result = F.check_file(entry(path, fmt, size), CATALOG)
    assert codes(result) == expected, result.problems
    assert result.status == ("failed" if expected else "ok")
    assert all(p.detail for p in result.problems)


def test_catalog_format_of_the_dataset_is_the_declared_format(tmp_path: Path) -> None:
    path = tmp_path / "scan"  # no extension, no format in the file catalog
    path.write_bytes(S.image_bytes("PNG"))
    catalog = {S.IMAGES: F.CatalogEntry(S.IMAGES, "区规划资源局", "pdf")}  # database_type "file (pdf)"
    result = F.check_file(entry(path, dataset=S.IMAGES), catalog)
    assert codes(result) == ["FORMAT_MISMATCH"] and result.problems[0].detail == "declared pdf, the content is png"


# --- over HTTP ----------------------------------------------------------------------------


def test_urls_are_downloaded_and_checked(tmp_path: Path, http_base: str) -> None:
    pdf, csv_body = S.pdf_bytes(), S.csv_bytes()
    ROUTES.update({
        "/ok.pdf": (200, "application/pdf", pdf, None),
        "/ok.csv": (200, "text/csv; charset=utf-8", csv_body, None),
        "/wrong-type.pdf": (200, "text/html", pdf, None),
        "/no-type.pdf": (200, None, pdf, None),
        "/short.pdf": (200, "application/pdf", pdf[:200], len(pdf)),
        "/gone.pdf": (410, "text/plain", b"gone", None),
        "/error.csv": (500, "text/plain", b"boom", None),
        "/cut.xlsx": (200, next(iter(F.CONTENT_TYPES["xlsx"])), S.xlsx_bytes()[:900], None),
        "/export": (200, "text/csv", csv_body, None),
    })  # fmt: skip
    zone = tmp_path / "open" / "files"
    zone.mkdir(parents=True)
    (zone / F.FILE_CATALOG).write_text(yaml.safe_dump({"files": [
        {"url": f"{http_base}/ok.pdf", "dataset": S.REPORTS, "size": len(pdf)},
        {"url": f"{http_base}/wrong-type.pdf", "dataset": S.REPORTS},
    ]}), encoding="utf-8")  # fmt: skip
    nobody = f"http://127.0.0.1:{_closed_port()}/nobody.pdf"  # refused: nothing listens there
    urls = [
        f"{http_base}/ok.pdf",  # listed in the catalog too: keeps its link
        {"url": f"{http_base}/ok.csv", "dataset": S.TABLES, "size": len(csv_body) + 5},
        {"url": f"{http_base}/no-type.pdf", "dataset": S.REPORTS},
        {"url": f"{http_base}/short.pdf", "dataset": S.REPORTS, "size": len(pdf)},
        {"url": f"{http_base}/gone.pdf", "dataset": S.REPORTS},
        {"url": f"{http_base}/error.csv", "dataset": S.TABLES},
        {"url": f"{http_base}/cut.xlsx", "dataset": S.TABLES},
        {"url": f"{http_base}/export", "dataset": S.TABLES, "format": "csv"},
        nobody,
    ]
    results = F.check_files(F.build_manifest(zone, "open", urls), CATALOG, timeout=5)
    got = {r.entry.location.removeprefix(http_base): codes(r) for r in results}
    assert got == {
        "/ok.pdf": [],
        "/wrong-type.pdf": ["CONTENT_TYPE_MISMATCH"],
        "/ok.csv": ["SIZE_MISMATCH"],
        "/no-type.pdf": ["CONTENT_TYPE_MISMATCH"],
        "/short.pdf": ["TRUNCATED"],
        "/gone.pdf": ["HTTP_STATUS"],
        "/error.csv": ["HTTP_STATUS"],
        "/cut.xlsx": ["TRUNCATED"],
        "/export": [],
        nobody: ["NO_CATALOG_ENTRY", "UNREACHABLE"],
    }
    by = {r.entry.location.removeprefix(http_base): r for r in results}
    assert by["/ok.pdf"].content_type == "application/pdf" and by["/ok.pdf"].size_bytes == len(pdf)
    assert by["/short.pdf"].problems[0].detail == f"received 200 of the {len(pdf)} bytes announced"
    assert by["/gone.pdf"].problems[0].detail == "HTTP 410 Gone"
    assert by["/no-type.pdf"].problems[0].detail == "served as no Content-Type, expected pdf"
    assert F.summarize(results)["checked"] == 10


# --- the file catalog's errors name the file and the entry ----------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([{"path": "a.pdf", "size": "big"}], "files[0]: size must be a non-negative number of bytes, got 'big'"),
        ([{"path": "a.pdf"}, {"path": "./a.pdf"}], "files[1]: a.pdf is listed twice"),
        ([{"path": "../../etc/passwd"}], "files[0]: path '../../etc/passwd' leaves"),
        ([{"path": "/etc/passwd"}], "files[0]: path must be relative to"),
        ([{"path": "a.pdf", "url": "http://x/a.pdf"}], "files[0]: give exactly one of path or url"),
        ([{"url": "ftp://x/a.pdf"}], "files[0]: url must be an http(s) URL, got 'ftp://x/a.pdf'"),
        ([{"path": "a.pdf", "dataset": ""}], "files[0]: dataset must be a non-empty string"),
        ([{"path": "a.pdf", "owner": "x"}], "files[0]: unknown field(s) owner"),
        (["a.pdf"], "files[0]: expected a mapping"),
    ],
)
def test_bad_file_catalog_is_refused_naming_the_entry(tmp_path: Path, files: list, message: str) -> None:
    (tmp_path / F.FILE_CATALOG).write_text(yaml.safe_dump({"files": files}), encoding="utf-8")
    with pytest.raises(F.FileCheckError) as err:
        F.build_manifest(tmp_path, "sharing")
    assert str(tmp_path / F.FILE_CATALOG) in str(err.value) and message in str(err.value)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    (tmp_path / F.FILE_CATALOG).write_text("files: [", encoding="utf-8")
    with pytest.raises(F.FileCheckError, match=r"_file_catalog\.yaml: not valid YAML"):
        F.build_manifest(tmp_path, "sharing")
    with pytest.raises(F.FileCheckError, match=r"urls\[0\]: url must be an http\(s\) URL"):
        F.build_manifest(tmp_path / "none", "sharing", ["file:///etc/passwd"])
    with pytest.raises(F.FileCheckError, match="no such folder, and no URLs given"):
        F.build_manifest(tmp_path / "none", "open")
    with pytest.raises(F.FileCheckError, match="zone must be one of sharing, open"):
        F.zone_folder("file:///lake", "raw")
    with pytest.raises(F.FileCheckError, match="local"):
        F.zone_folder("hdfs://nn/lake", "sharing")
    assert F.zone_folder("file:///data/%E6%B9%96", "open") == Path("/data/湖/open/files")
    assert F.normalize_location("file:///data/a%20b.pdf") == "/data/a b.pdf"


def test_counts_must_reconcile() -> None:
    F.reconcile({"checked": 3, "ok": 1, "failed": 2})
    with pytest.raises(F.FileCheckError, match="counts do not reconcile: checked 3 != ok 1 \\+ failed 1"):
        F.reconcile({"checked": 3, "ok": 1, "failed": 1})


# --- the issue list -------------------------------------------------------------------------


def test_issue_list_csv_and_xlsx(tmp_path: Path) -> None:
    sample = S.write_sample_files(tmp_path / "sharing" / "files")
    results = F.check_files(F.build_manifest(sample.folder, "sharing"), CATALOG)
    summary, issues = F.summarize(results), F.issue_rows(results)
    written = F.export_issues(issues, summary, tmp_path / "out")
    with Path(written["issues.csv"]).open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["failed"] == 11
    truncated = next(r for r in rows if r["path"] == "reports/truncated.pdf")
    assert (truncated["reasons"], truncated["problem"]) == ("TRUNCATED", "文件不完整（被截断）")
    assert truncated["provider_department"] == "区政务服务办" and "%%EOF" in truncated["detail"]
    wb = openpyxl.load_workbook(written["issues.xlsx"])
    sheet = list(wb["问题文件清单"].iter_rows(values_only=True))
    assert sheet[0] == F.ISSUE_COLUMNS and len(sheet) == 12
    totals = dict(wb["汇总"].iter_rows(min_row=2, values_only=True))
    assert (totals["checked"], totals["ok"], totals["failed"]) == (18, 7, 11)
    assert totals["TRUNCATED 文件不完整（被截断）"] == 3


# --- metering: only what no earlier run checked ------------------------------------------


@pytest.fixture
def conn(ledger: Engine) -> Iterator[Connection]:
    """One transaction, rolled back: nothing of the runs here stays in the session database."""
    with ledger.connect() as c:
        tx = c.begin()
        for wo in ("WO-T-FILES", "WO-T-OTHER"):  # usage needs its work order (item 09)
            ensure_demo_work_order(c, wo, "09", on=date(2026, 8, 1))
        yield c
        tx.rollback()


def _run(conn: Connection, folder: Path, run_id: str, wo: str = "WO-T-FILES") -> dict[str, int]:
    """What the DAG's check and meter tasks do, in the test's transaction."""
    results = F.check_files(F.build_manifest(folder, "sharing"), CATALOG)
    summary = {"zone": "sharing", **F.summarize(results), "checked_at": datetime(2026, 8, 3, tzinfo=UTC).isoformat()}
    F.record_results(conn, "quality_file_check", run_id, results)
    return F.meter_run(conn, TaskRef("quality_file_check", run_id, "meter"), work_order_id=wo, summary=summary)


def test_only_new_content_is_metered(conn: Connection, tmp_path: Path) -> None:
    folder = tmp_path / "sharing" / "files"
    folder.mkdir(parents=True)
    (folder / F.FILE_CATALOG).write_text(yaml.safe_dump({"files": [
        {"path": "a.csv", "dataset": S.TABLES}, {"path": "b.pdf", "dataset": S.REPORTS},
        {"path": "gone.pdf", "dataset": S.REPORTS},  # NOT_FOUND: no content, counted by location
    ]}), encoding="utf-8")  # fmt: skip
    (folder / "a.csv").write_bytes(S.csv_bytes())
    (folder / "b.pdf").write_bytes(S.pdf_bytes())
    assert _run(conn, folder, "r1") == {"checked": 3, "new": 3, "inserted": 1}
    # The weekly re-check of the same files: nothing new, the event shows what was checked.
    assert _run(conn, folder, "r2") == {"checked": 3, "new": 0, "inserted": 1}
    # One file replaced with new content: exactly it.
    (folder / "a.csv").write_bytes(b"id,name\n1,new\n")
    assert _run(conn, folder, "r3") == {"checked": 3, "new": 1, "inserted": 1}
    # Re-running the first run after the later ones: its own 3 again, no conflict.
    assert _run(conn, folder, "r1") == {"checked": 3, "new": 3, "inserted": 0}
    # The first content back, the missing file there: only the file's first content is new.
    (folder / "a.csv").write_bytes(S.csv_bytes())
    (folder / "gone.pdf").write_bytes(S.pdf_bytes())
    assert _run(conn, folder, "r4") == {"checked": 3, "new": 1, "inserted": 1}
    usage = conn.execute(text(
        """SELECT run_id, quantity, records, attributes->'checked', attributes->'new' FROM govops.usage_event
            WHERE dag_id = 'quality_file_check' AND run_id IN ('r1', 'r2', 'r3', 'r4') ORDER BY id""")).all()
    assert usage == [("r1", 3, 3, 3, 3), ("r2", 0, 3, 3, 0), ("r3", 1, 3, 3, 1), ("r4", 1, 3, 3, 1)]
    # Re-running a run against another work order would bill its files twice: refused.
    with pytest.raises(IdempotencyConflict, match="already metered 3 new file"):
        _run(conn, folder, "r1", wo="WO-T-OTHER")
