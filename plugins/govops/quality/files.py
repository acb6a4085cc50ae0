"""Unstructured file checks (catalog item 09, 非结构化文件的质量检查), metered per file.

**What is checked.** The files of one zone, ``sharing`` or ``open``: every file under
``<lake>/<zone>/files/`` (names starting with ``_`` or ``.`` are skipped, in any folder),
plus the HTTP(S) URLs listed in the zone's file catalog or given to the run. Each file is

* downloadable: a local file exists; a URL answers 2xx with the declared format's content
  type, and the whole body arrives (not fewer bytes than its Content-Length);
* readable: opened with the library of its format (pypdf, zipfile + the DOCX XML, openpyxl,
  csv in UTF-8 or GBK, Pillow ``verify`` + ``load``); empty and truncated files are flagged;
* linked to its catalog entry: listed in the file catalog, with a dataset that exists in
  ``govops.data_catalog``, and the declared format and size matching the content.

**The linking convention (file catalog).** ``<lake>/<zone>/files/_file_catalog.yaml``
(JSON is valid YAML too) lists the zone's files::

    files:
      - path: reports/2026年度工作报告.pdf        # under <lake>/<zone>/files/
        dataset: sharing/files/qingpu_reports     # govops.data_catalog.dataset
        format: pdf                               # optional: else the catalog's "file (pdf)", else the extension
        size: 48213                               # optional: bytes
      - url: https://data.example.gov.cn/open/poi.csv
        dataset: open/files/poi
        format: csv

A file on disk that the catalog does not list, or a URL given without a dataset, is an
orphan (``NO_CATALOG_ENTRY``); a listed file that is not on disk is missing (``NOT_FOUND``);
a listed dataset that is not in ``govops.data_catalog`` is ``CATALOG_ENTRY_MISSING``.
Reason codes are in ``REASONS``.

**Records.** One row per file and run in ``govops.quality_file_check`` (upserted by
``(dag_id, run_id, location)``, so a re-run replaces its rows); ``location`` is the absolute
local path or the URL. Failed files get a replacement request in
``govops.quality_file_replacement`` (requested → replaced → verified); a later run in which
the replacement passes verifies it. Checked = ok + failed, or the run fails.

**Metering: what is new.** The contract bills item 09 per file newly quality-checked
(新增质量检查的数据文件个数), so a weekly re-check does not bill the same files again. One
usage event per run: item 09, unit ``file``, data source = the zone, quantity = the files
of the run that are **new**, records = the files checked, and ``attributes`` ``{"checked":
N, "new": M, ...}``. A file of the run is new unless a row of ``govops.quality_file_check``
with a smaller id (an earlier run: a re-run keeps its rows' ids) has

* the same ``location`` and the same ``sha256`` (the same content: a replaced file with
  new content is new, the same bytes under a new location are new too), or,
* for a file checked without content (no ``sha256``: ``NOT_FOUND``, unreachable, HTTP
  errors), the same ``location``, with or without content.

This reads the whole check log, whatever the DAG or work order of the earlier run. A run
with nothing new meters quantity 0 (the event still shows what it checked). A re-run of a
run that has metered (its event in ``govops.usage_event``, found by the event key without
the work order) re-records exactly that event, whatever it checks now or later runs did
in between; against another work order it is refused (it would bill the files twice). A
re-run that finds changed content rewrites its rows, so the content it first checked stops
counting as checked for the runs metered after that re-run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.ledger.usage import TaskRef, UsageEvent, record_usage, recorded_event

ZONES = ("sharing", "open")
FILE_CATALOG = "_file_catalog.yaml"
SERVICE_ITEM = "09"
UNIT = "file"

# Reason code -> what the data owner reads in the issue list.
REASONS: dict[str, str] = {
    "NOT_FOUND": "文件不存在",
    "UNREACHABLE": "下载地址无法访问",
    "HTTP_STATUS": "下载返回错误状态码",
    "CONTENT_TYPE_MISMATCH": "下载内容类型与登记格式不符",
    "SIZE_MISMATCH": "文件大小与登记不符",
    "EMPTY": "空文件",
    "TRUNCATED": "文件不完整（被截断）",
    "UNREADABLE": "文件内容无法读取",
    "RAGGED_ROWS": "表格各行列数不一致",
    "FORMAT_MISMATCH": "文件格式与登记不符",
    "UNSUPPORTED_FORMAT": "无法检查的文件格式",
    "NO_CATALOG_ENTRY": "未关联目录（孤立文件）",
    "CATALOG_ENTRY_MISSING": "关联的目录条目不存在",
}

FORMATS = ("pdf", "docx", "xlsx", "csv", "txt", "json", "png", "jpeg", "gif", "bmp", "tiff", "webp")
TEXT_FORMATS = frozenset({"csv", "txt", "json"})
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "bmp", "tiff", "webp"})
_ALIASES = {"jpg": "jpeg", "tif": "tiff", "text": "txt"}
CONTENT_TYPES: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf"}),
    "docx": frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}),
    "xlsx": frozenset({"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}),
    # Windows servers commonly label CSV as Excel's old type.
    "csv": frozenset({"text/csv", "application/csv", "text/comma-separated-values", "application/vnd.ms-excel"}),
    "txt": frozenset({"text/plain"}),
    "json": frozenset({"application/json", "text/json"}),
    "png": frozenset({"image/png"}),
    "jpeg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    "gif": frozenset({"image/gif"}),
    "bmp": frozenset({"image/bmp", "image/x-ms-bmp"}),
    "tiff": frozenset({"image/tiff"}),
    "webp": frozenset({"image/webp"}),
}
_CATALOG_FORMAT = re.compile(r"^file \((\w+)\)$")  # govops.data_catalog.database_type of a file source
_CHUNK = 1 << 16


class FileCheckError(CodedError):
    code = "FILE_CHECK_ERROR"


class ReplacementError(FileCheckError):
    code = "REPLACEMENT_REFUSED"


@dataclass(frozen=True)
class FileEntry:
    """One file to check and what its catalog link declares."""

    location: str  # absolute local path, or an http(s) URL
    zone: str
    path: str | None = None  # under the zone's files folder; None for URLs
    dataset: str | None = None  # None: not in the file catalog (an orphan)
    format: str | None = None
    size: int | None = None

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


@dataclass(frozen=True)
class CatalogEntry:
    dataset: str
    department: str | None = None
    format: str | None = None  # from database_type "file (pdf)"


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str


@dataclass(frozen=True)
class FileResult:
    entry: FileEntry
    problems: tuple[Problem, ...] = ()
    format: str | None = None  # what the content is
    content_type: str | None = None  # as served (URLs)
    size_bytes: int | None = None
    sha256: str | None = None
    department: str | None = None

    @property
    def status(self) -> str:
        return "failed" if self.problems else "ok"

    @property
    def codes(self) -> list[str]:
        return list(dict.fromkeys(p.code for p in self.problems))


# --- the manifest -------------------------------------------------------------------


def normalize_format(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    name = str(value).strip().lower().lstrip(".")
    return _ALIASES.get(name, name)


def normalize_location(value: str | Path) -> str:
    """A file:// URI or a path becomes an absolute local path; URLs stay as they are."""
    value = str(value)
    if value.startswith(("http://", "https://")):
        return value
    if value.startswith("file://"):
        value = unquote(urlsplit(value).path)
    return str(Path(value).resolve())


def zone_folder(lake_root: str, zone: str) -> Path:
    """``<lake>/<zone>/files`` as a local folder (the checks open files with local libraries)."""
    if zone not in ZONES:
        raise FileCheckError(f"zone must be one of {', '.join(ZONES)}, got {zone!r}")
    if not lake_root.startswith("file://"):
        raise FileCheckError(f"file checks read a local (file://) lake, got {lake_root!r}")
    return Path(unquote(urlsplit(lake_root).path)) / zone / "files"


def _entry_fields(item: Any, where: str) -> tuple[str | None, str | None, int | None]:
    if not isinstance(item, dict):
        raise FileCheckError(f"{where}: expected a mapping, got {item!r}")
    unknown = set(item) - {"path", "url", "dataset", "format", "size"}
    if unknown:
        raise FileCheckError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    dataset = item.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or not dataset.strip()):
        raise FileCheckError(f"{where}: dataset must be a non-empty string, got {dataset!r}")
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise FileCheckError(f"{where}: size must be a non-negative number of bytes, got {size!r}")
    fmt = item.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise FileCheckError(f"{where}: format must be a string, got {fmt!r}")
    return dataset, normalize_format(fmt), size


def _url_entry(item: Any, zone: str, where: str) -> FileEntry:
    if isinstance(item, str):
        item = {"url": item}
    dataset, fmt, size = _entry_fields(item, where)
    url = item.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise FileCheckError(f"{where}: url must be an http(s) URL, got {url!r}")
    return FileEntry(location=url, zone=zone, dataset=dataset, format=fmt, size=size)


def read_file_catalog(folder: Path, zone: str) -> list[FileEntry]:
    """The entries of ``<folder>/_file_catalog.yaml``; none if there is no such file."""
    import yaml

    source = folder / FILE_CATALOG
    if not source.exists():
        return []
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FileCheckError(f"{source}: not valid YAML: {exc}") from exc
    items = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise FileCheckError(f"{source}: expected a top-level 'files' list")
    entries: list[FileEntry] = []
    seen: set[str] = set()
    root = folder.resolve()
    for i, item in enumerate(items):
        where = f"{source}: files[{i}]"
        if isinstance(item, dict) and ("path" in item) == ("url" in item):
            raise FileCheckError(f"{where}: give exactly one of path or url")
        if isinstance(item, dict) and "url" in item:
            entry = _url_entry(item, zone, where)
        else:
            dataset, fmt, size = _entry_fields(item, where)
            rel = item["path"]
            if not isinstance(rel, str) or not rel.strip() or PurePosixPath(rel).is_absolute():
                raise FileCheckError(f"{where}: path must be relative to {folder}, got {rel!r}")
            target = (root / rel).resolve()
            if not target.is_relative_to(root):
                raise FileCheckError(f"{where}: path {rel!r} leaves {folder}")
            rel = target.relative_to(root).as_posix()
            entry = FileEntry(location=str(target), zone=zone, path=rel, dataset=dataset, format=fmt, size=size)
        if entry.location in seen:
            raise FileCheckError(f"{where}: {entry.path or entry.location} is listed twice")
        seen.add(entry.location)
        entries.append(entry)
    return entries


def _skipped(rel: Path) -> bool:
    return any(part.startswith(("_", ".")) for part in rel.parts)


def build_manifest(folder: Path, zone: str, urls: Sequence[Any] = ()) -> list[FileEntry]:
    """Every file to check: the catalog's entries, the orphans on disk, then the given URLs
    (a URL string, or a mapping like a catalog entry); a URL the catalog lists keeps its link."""
    if zone not in ZONES:
        raise FileCheckError(f"zone must be one of {', '.join(ZONES)}, got {zone!r}")
    if not folder.is_dir() and not urls:
        raise FileCheckError(f"{folder}: no such folder, and no URLs given: nothing to check in zone {zone}")
    entries = read_file_catalog(folder, zone) if folder.is_dir() else []
    listed = {e.location for e in entries}
    if folder.is_dir():
        root = folder.resolve()
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not _skipped(rel) and str(path) not in listed:
                entries.append(FileEntry(location=str(path), zone=zone, path=rel.as_posix()))
    for i, item in enumerate(urls):
        entry = _url_entry(item, zone, f"urls[{i}]")
        if entry.location not in listed:
            listed.add(entry.location)
            entries.append(entry)
    return entries


def load_catalog(target: Engine | Connection) -> dict[str, CatalogEntry]:
    """The datasets of govops.data_catalog that files may link to."""
    with _connection(target) as conn:
        found = conn.execute(text("SELECT dataset, provider_department, database_type FROM govops.data_catalog"))
        catalog = {}
        for dataset, department, database_type in found:
            match = _CATALOG_FORMAT.match(database_type or "")
            fmt = normalize_format(match.group(1)) if match else None
            catalog[dataset] = CatalogEntry(dataset, department, fmt if fmt in FORMATS else None)
    return catalog


# --- format detection and readers ----------------------------------------------------


def detect_format(path: Path) -> str | None:
    """The format the content's signature shows; None for text or unknown bytes.
    A zip that does not open is "zip" (a truncated DOCX/XLSX); "ole" is legacy .doc/.xls."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # "BM" alone is too weak (a text could start so): the header repeats the file size.
    if head[:2] == b"BM" and len(head) >= 6 and int.from_bytes(head[2:6], "little") == path.stat().st_size:
        return "bmp"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError):
            return "zip"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        return "zip"
    return None


_SHOWN = {"ole": "a legacy Office file (OLE2: .doc/.xls/.ppt)", "zip": "a zip package"}


def _compatible(detected: str | None, expected: str) -> bool:
    if detected is None:
        return True  # text, or bytes no reader knows: the reader says what is wrong
    if detected == "zip":
        return expected in ("docx", "xlsx", "zip")
    if detected == "ole":
        return expected in ("doc", "xls", "ppt")
    return detected == expected


def _open_zip(path: Path) -> zipfile.ZipFile | Problem:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with path.open("rb") as fh:
            local_header = fh.read(4) == b"PK\x03\x04"
        if local_header:  # entries written, the central directory at the end is not
            return Problem("TRUNCATED", "zip package without its central directory (cut off)")
        return Problem("UNREADABLE", "not a zip package")


def _check_zip_members(zf: zipfile.ZipFile, required: Sequence[str], kind: str) -> Problem | None:
    try:
        bad = zf.testzip()  # reads every member: CRC and deflate errors
    except Exception as exc:  # BadZipFile, EOFError, zlib.error... from a corrupt member
        return Problem("UNREADABLE", f"damaged zip member: {type(exc).__name__}: {exc}")
    if bad is not None:
        return Problem("UNREADABLE", f"damaged zip member {bad} (CRC mismatch)")
    missing = [name for name in required if name not in zf.namelist()]
    if missing:
        return Problem("UNREADABLE", f"not a {kind} package: no {', '.join(missing)}")
    return None


def read_pdf(path: Path) -> list[Problem]:
    from pypdf import PdfReader

    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 1024))
        tail = fh.read()
    if b"%%EOF" not in tail:  # pypdf looks for it in the same last 1 KiB
        return [Problem("TRUNCATED", "no %%EOF marker at the end of the PDF")]
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return [Problem("UNREADABLE", "encrypted PDF (needs a password)")]
        pages = len(reader.pages)
        if pages == 0:
            return [Problem("UNREADABLE", "PDF without pages")]
        for page in reader.pages:
            contents = page.get_contents()
            if contents is not None:
                contents.get_data()  # decodes the page's streams
    # pypdf raises many types on damaged input (its own, KeyError, ValueError, zlib.error...)
    except Exception as exc:
        return [Problem("UNREADABLE", f"PDF does not open: {type(exc).__name__}: {exc}")]
    return []


def read_docx(path: Path) -> list[Problem]:
    import xml.etree.ElementTree as ET

    zf = _open_zip(path)
    if isinstance(zf, Problem):
        return [zf]
    with zf:
        problem = _check_zip_members(zf, ("[Content_Types].xml", "word/document.xml"), "Word (DOCX)")
        if problem:
            return [problem]
        try:
            ET.fromstring(zf.read("word/document.xml"))
        except ET.ParseError as exc:
            return [Problem("UNREADABLE", f"word/document.xml is not well-formed XML: {exc}")]
    return []


def read_xlsx(path: Path) -> list[Problem]:
    from openpyxl import load_workbook

    zf = _open_zip(path)
    if isinstance(zf, Problem):
        return [zf]
    with zf:
        problem = _check_zip_members(zf, ("[Content_Types].xml", "xl/workbook.xml"), "Excel (XLSX)")
        if problem:
            return [problem]
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            for ws in wb.worksheets:
                for _ in ws.iter_rows(values_only=True):
                    pass
        finally:
            wb.close()
    except Exception as exc:  # openpyxl raises many types on a damaged workbook
        return [Problem("UNREADABLE", f"workbook does not open: {type(exc).__name__}: {exc}")]
    return []


def _decoded(path: Path, read: Any) -> tuple[Any, str | None]:
    """Run ``read(text_file)`` on the file decoded as UTF-8, else as GBK (GB 18030)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with path.open(encoding=encoding, newline="") as fh:
                return read(fh), encoding
        except UnicodeDecodeError:
            continue
    return None, None


def read_csv(path: Path) -> list[Problem]:
    def scan(fh: Any) -> tuple[int, list[int]] | Problem:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                return Problem("UNREADABLE", "no header row")
            if any("\x00" in value for value in header):
                return Problem("UNREADABLE", "line 1: binary content (NUL byte)")
            ragged = []
            for row in reader:
                if any("\x00" in value for value in row):  # csv accepts NUL since 3.11; a text file has none
                    return Problem("UNREADABLE", f"line {reader.line_num}: binary content (NUL byte)")
                if row and len(row) != len(header):
                    ragged.append(reader.line_num)
        except csv.Error as exc:
            code = "TRUNCATED" if "unexpected end of data" in str(exc) else "UNREADABLE"
            return Problem(code, f"line {reader.line_num}: {exc}")
        return len(header), ragged

    found, encoding = _decoded(path, scan)
    if encoding is None:
        return [Problem("UNREADABLE", "neither UTF-8 nor GBK text")]
    if isinstance(found, Problem):
        return [found]
    width, ragged = found
    if ragged:
        lines = ", ".join(map(str, ragged[:10])) + (" …" if len(ragged) > 10 else "")
        return [Problem("RAGGED_ROWS", f"{len(ragged)} row(s) without the header's {width} fields: line {lines}")]
    return []


def read_txt(path: Path) -> list[Problem]:
    def scan(fh: Any) -> bool:
        return any("\x00" in chunk for chunk in iter(lambda: fh.read(_CHUNK), ""))

    has_nul, encoding = _decoded(path, scan)
    if encoding is None:
        return [Problem("UNREADABLE", "neither UTF-8 nor GBK text")]
    return [Problem("UNREADABLE", "binary content (NUL bytes) in a text file")] if has_nul else []


def read_json(path: Path) -> list[Problem]:
    def parse(fh: Any) -> Problem | None:
        body = fh.read()
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            cut = exc.pos >= len(body.rstrip())  # the document stops where more was expected
            return Problem("TRUNCATED" if cut else "UNREADABLE", f"invalid JSON: {exc}")
        return None

    found, encoding = _decoded(path, parse)
    if encoding is None:
        return [Problem("UNREADABLE", "neither UTF-8 nor GBK text")]
    return [found] if found else []


_TRAILERS = {"png": b"IEND\xaeB`\x82", "jpeg": b"\xff\xd9", "gif": b";"}


def read_image(path: Path, fmt: str) -> list[Problem]:
    from PIL import Image

    trailer = _TRAILERS.get(fmt)
    if trailer:
        size = path.stat().st_size
        with path.open("rb") as fh:
            fh.seek(max(0, size - 64))
            tail = fh.read().rstrip(b"\x00")  # some writers pad with zeros
        if not tail.endswith(trailer):
            return [Problem("TRUNCATED", f"{fmt.upper()} image without its end marker")]
    try:
        with Image.open(path) as img:
            img.verify()  # structure and checksums
        with Image.open(path) as img:
            img.load()  # decodes every pixel: catches cut data that verify() misses
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        code = "TRUNCATED" if "truncated" in str(exc).lower() else "UNREADABLE"
        return [Problem(code, f"image does not open: {type(exc).__name__}: {exc}")]
    return []


def read_content(path: Path, fmt: str) -> list[Problem]:
    """Open the file with the reader of ``fmt``; the problems found (none: readable)."""
    if fmt == "pdf":
        return read_pdf(path)
    if fmt == "docx":
        return read_docx(path)
    if fmt == "xlsx":
        return read_xlsx(path)
    if fmt == "csv":
        return read_csv(path)
    if fmt == "txt":
        return read_txt(path)
    if fmt == "json":
        return read_json(path)
    if fmt in IMAGE_FORMATS:
        return read_image(path, fmt)
    return [Problem("UNSUPPORTED_FORMAT", f"no reader for format {fmt!r}")]


# --- checking ------------------------------------------------------------------------


@dataclass
class _Fetched:
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    problems: list[Problem] = field(default_factory=list)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, target: Path, timeout: float) -> _Fetched:
    import urllib.error
    import urllib.request

    out = _Fetched()
    request = urllib.request.Request(url, headers={"User-Agent": "govops-file-check/1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, target.open("wb") as sink:
            out.content_type = resp.headers.get_content_type() if resp.headers.get("Content-Type") else None
            announced = resp.headers.get("Content-Length")
            digest, received = hashlib.sha256(), 0
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                sink.write(chunk)
                digest.update(chunk)
                received += len(chunk)
    except urllib.error.HTTPError as exc:
        out.problems.append(Problem("HTTP_STATUS", f"HTTP {exc.code} {exc.reason}"))
        return out
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, TLS, timeout
        out.problems.append(Problem("UNREACHABLE", f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"))
        return out
    out.path, out.size, out.sha256 = target, received, digest.hexdigest()
    # http.client stops quietly when the server closes early: compare with what it announced.
    if announced is not None and announced.isdigit() and received < int(announced):
        out.problems.append(Problem("TRUNCATED", f"received {received} of the {announced} bytes announced"))
        out.size, out.sha256 = int(announced), None  # the hash of a partial body identifies nothing
    return out


def _expected_format(entry: FileEntry, linked: CatalogEntry | None) -> tuple[str | None, list[Problem]]:
    name = entry.path or unquote(urlsplit(entry.location).path)
    suffix = normalize_format(PurePosixPath(name).suffix) if PurePosixPath(name).suffix else None
    expected = entry.format or (linked.format if linked else None) or suffix
    problems = []
    if linked and linked.format and entry.format and linked.format != entry.format:
        problems.append(Problem("FORMAT_MISMATCH", f"file catalog says {entry.format}, data catalog {linked.format}"))
    if expected and suffix and suffix in FORMATS and suffix != expected:
        problems.append(Problem("FORMAT_MISMATCH", f"the name ends in .{suffix}, declared {expected}"))
    return expected, problems


def check_file(
    entry: FileEntry, catalog: Mapping[str, CatalogEntry] | None = None, *, timeout: float = 10.0
) -> FileResult:
    """Check one file. ``catalog`` None skips the data-catalog link check (no database)."""
    problems: list[Problem] = []
    linked = catalog.get(entry.dataset) if catalog is not None and entry.dataset else None
    if entry.dataset is None:
        problems.append(Problem("NO_CATALOG_ENTRY", f"not listed in {FILE_CATALOG} of zone {entry.zone}"))
    elif catalog is not None and linked is None:
        problems.append(Problem("CATALOG_ENTRY_MISSING", f"dataset {entry.dataset} is not in govops.data_catalog"))
    department = linked.department if linked else None

    def result(fetched: _Fetched, fmt: str | None = None) -> FileResult:
        return FileResult(entry, tuple(problems + fetched.problems), fmt, fetched.content_type, fetched.size,
                          fetched.sha256, department)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="govops-file-") as tmp:
        if entry.is_url:
            fetched = _download(entry.location, Path(tmp) / "body", timeout)
        else:
            local = Path(entry.location)
            if not local.is_file():
                where = f"{entry.path} in zone {entry.zone}" if entry.path else entry.location
                problems.append(Problem("NOT_FOUND", f"{where} is listed in {FILE_CATALOG} but not on disk"))
                return result(_Fetched())
            fetched = _Fetched(local, local.stat().st_size, _hash_file(local))
        if fetched.path is None:  # not downloadable
            return result(fetched)
        expected, format_problems = _expected_format(entry, linked)
        problems.extend(format_problems)
        if entry.size is not None and fetched.size != entry.size:
            problems.append(Problem("SIZE_MISMATCH", f"{fetched.size} bytes, declared {entry.size}"))
        if entry.is_url and expected in CONTENT_TYPES and fetched.content_type not in CONTENT_TYPES[expected]:
            served = fetched.content_type or "no Content-Type"
            problems.append(Problem("CONTENT_TYPE_MISMATCH", f"served as {served}, expected {expected}"))
        if fetched.path.stat().st_size == 0:
            fetched.problems.append(Problem("EMPTY", "0 bytes"))
            return result(fetched)
        if any(p.code == "TRUNCATED" for p in fetched.problems):
            return result(fetched)  # a partial download: its content says nothing more
        detected = detect_format(fetched.path)
        if expected is None and detected is None:
            problems.append(Problem("UNSUPPORTED_FORMAT", "format unknown: not declared, no extension, no signature"))
            return result(fetched)
        reader = expected
        if expected is None or not _compatible(detected, expected):
            if expected is not None:
                shown = _SHOWN.get(detected or "", detected)
                problems.append(Problem("FORMAT_MISMATCH", f"declared {expected}, the content is {shown}"))
            reader = detected if detected in FORMATS else None
        if reader is not None:
            problems.extend(read_content(fetched.path, reader))
        # What the content is: its signature, else the text format it was read as.
        return result(fetched, detected or (reader if reader in TEXT_FORMATS else None))


def check_files(
    entries: Sequence[FileEntry],
    catalog: Mapping[str, CatalogEntry] | None = None,
    *,
    timeout: float = 10.0,
    workers: int = 4,
) -> list[FileResult]:
    """Check every entry, in order; threads overlap the downloads and disk reads."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda e: check_file(e, catalog, timeout=timeout), entries))


def summarize(results: Sequence[FileResult]) -> dict[str, Any]:
    """Counts per status, reason, format and zone; raises if checked != ok + failed."""
    status = Counter(r.status for r in results)
    reasons = Counter(code for r in results for code in r.codes)
    summary = {
        "checked": len(results),
        "ok": status["ok"],
        "failed": status["failed"],
        "by_reason": dict(sorted(reasons.items())),
        "by_format": dict(sorted(Counter(r.format or "unknown" for r in results).items())),
        "by_zone": dict(sorted(Counter(r.entry.zone for r in results).items())),
        "orphans": reasons["NO_CATALOG_ENTRY"],
        "missing": reasons["NOT_FOUND"],
    }
    reconcile(summary)
    return summary


def reconcile(summary: Mapping[str, Any]) -> None:
    if summary["checked"] != summary["ok"] + summary["failed"]:
        raise FileCheckError(
            f"counts do not reconcile: checked {summary['checked']} != ok {summary['ok']} + failed {summary['failed']}"
        )


# --- the check log -------------------------------------------------------------------


@contextmanager
def _connection(target: Engine | Connection) -> Iterator[Connection]:
    if isinstance(target, Connection):
        yield target
    else:
        with target.begin() as conn:
            yield conn


def record_results(target: Engine | Connection, dag_id: str, run_id: str, results: Sequence[FileResult]) -> int:
    """Upsert the run's rows in govops.quality_file_check; rows of files no longer in the run
    go (a replacement request keeps its failed_location, not the row). Returns the rows."""
    rows = [
        {"dag": dag_id, "run": run_id, "loc": r.entry.location, "zone": r.entry.zone, "ds": r.entry.dataset,
         "status": r.status, "problems": r.codes, "ct": r.content_type, "size": r.size_bytes, "sha": r.sha256}
        for r in results
    ]  # fmt: skip
    with _connection(target) as conn:
        if rows:
            conn.execute(
                text(
                    """INSERT INTO govops.quality_file_check (dag_id, run_id, location, zone, catalog_dataset, status,
                           problems, content_type, size_bytes, sha256)
                       VALUES (:dag, :run, :loc, :zone, :ds, :status, :problems, :ct, :size, :sha)
                       ON CONFLICT (dag_id, run_id, location) DO UPDATE SET zone = EXCLUDED.zone,
                           catalog_dataset = EXCLUDED.catalog_dataset, status = EXCLUDED.status,
                           problems = EXCLUDED.problems, content_type = EXCLUDED.content_type,
                           size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, checked_at = now()"""
                ),
                rows,
            )
        stale = """SELECT id FROM govops.quality_file_check
                    WHERE dag_id = :dag AND run_id = :run AND NOT (location = ANY(:locs))"""
        params = {"dag": dag_id, "run": run_id, "locs": [r["loc"] for r in rows]}
        conn.execute(text(f"UPDATE govops.quality_file_replacement SET file_check_id = NULL "
                          f"WHERE file_check_id IN ({stale})"), params)  # fmt: skip
        conn.execute(text(f"DELETE FROM govops.quality_file_check WHERE id IN ({stale})"), params)
        count = conn.execute(
            text("SELECT count(*) FROM govops.quality_file_check WHERE dag_id = :dag AND run_id = :run"),
            {"dag": dag_id, "run": run_id},
        ).scalar_one()
    if count != len(rows):
        raise FileCheckError(f"{dag_id}/{run_id}: {count} rows recorded for {len(rows)} files checked")
    return count


def recorded_counts(target: Engine | Connection, dag_id: str, run_id: str) -> dict[str, int]:
    """checked / ok / failed of one run as govops.quality_file_check holds them."""
    with _connection(target) as conn:
        found = dict(
            conn.execute(
                text("""SELECT status, count(*) FROM govops.quality_file_check
                         WHERE dag_id = :dag AND run_id = :run GROUP BY status"""),
                {"dag": dag_id, "run": run_id},
            ).all()
        )
    return {"checked": sum(found.values()), "ok": found.get("ok", 0), "failed": found.get("failed", 0)}


# --- the replacement workflow ----------------------------------------------------------


def _open_request(conn: Connection, location: str) -> Any:
    return conn.execute(
        text("""SELECT id, state, replacement_location FROM govops.quality_file_replacement
                 WHERE failed_location = :loc AND state <> 'verified' FOR UPDATE"""),
        {"loc": location},
    ).first()


def request_replacement(target: Engine | Connection, failed_location: str | Path) -> int:
    """Mark a file whose last check failed as to be replaced; the request's id."""
    location = normalize_location(failed_location)
    with _connection(target) as conn:
        last = conn.execute(
            text("""SELECT id, status FROM govops.quality_file_check WHERE location = :loc
                     ORDER BY checked_at DESC, id DESC LIMIT 1"""),
            {"loc": location},
        ).first()
        if last is None:
            raise ReplacementError(f"{location}: never checked, so it has not failed")
        if last.status != "failed":
            raise ReplacementError(f"{location}: its last check passed; nothing to replace")
        current = _open_request(conn, location)
        if current is not None:
            raise ReplacementError(f"{location}: a replacement is already open (#{current.id}, {current.state})")
        return conn.execute(
            text("""INSERT INTO govops.quality_file_replacement (failed_location, file_check_id)
                    VALUES (:loc, :check) RETURNING id"""),
            {"loc": location, "check": last.id},
        ).scalar_one()


def record_replacement(
    target: Engine | Connection, failed_location: str | Path, replacement_location: str | Path, by: str
) -> int:
    """Record the file that replaces a failed one (it may be the same location, fixed in
    place); a later check run verifies it. Again on a replaced request: a newer replacement."""
    if not by or not by.strip():
        raise ReplacementError("record_replacement: say who replaced the file (by)")
    location, replacement = normalize_location(failed_location), normalize_location(replacement_location)
    with _connection(target) as conn:
        current = _open_request(conn, location)
        if current is None:
            verified = conn.execute(
                text("SELECT 1 FROM govops.quality_file_replacement WHERE failed_location = :loc"), {"loc": location}
            ).first()
            state = "its replacement is already verified" if verified else "request_replacement first"
            raise ReplacementError(f"{location}: no open replacement request ({state})")
        conn.execute(
            text("""UPDATE govops.quality_file_replacement SET state = 'replaced', replacement_location = :rep,
                        replaced_by = :by, replaced_at = clock_timestamp(), verified_at = NULL WHERE id = :id"""),
            {"rep": replacement, "by": by.strip(), "id": current.id},
        )
        return int(current.id)


def verify_replacements(conn: Connection, dag_id: str, run_id: str) -> dict[str, list[str]]:
    """Replaced files checked by this run, after they were recorded: passed -> verified;
    failed -> still replaced (record another replacement). Returns the failed locations of both."""
    found = conn.execute(
        text("""SELECT r.id, r.failed_location, c.status FROM govops.quality_file_replacement r
                  JOIN govops.quality_file_check c ON c.location = r.replacement_location
                 WHERE r.state = 'replaced' AND c.dag_id = :dag AND c.run_id = :run
                   AND c.checked_at > r.replaced_at"""),
        {"dag": dag_id, "run": run_id},
    ).all()
    passed = [row.id for row in found if row.status == "ok"]
    if passed:
        conn.execute(
            text("""UPDATE govops.quality_file_replacement SET state = 'verified', verified_at = now()
                     WHERE id = ANY(:ids)"""),
            {"ids": passed},
        )
    return {
        "verified": sorted(row.failed_location for row in found if row.status == "ok"),
        "still_failing": sorted(row.failed_location for row in found if row.status != "ok"),
    }


def request_replacements_for_run(conn: Connection, dag_id: str, run_id: str) -> int:
    """Open a request for every file this run failed that has none open and is not itself
    the pending replacement of another; idempotent. Returns how many were opened."""
    return conn.execute(
        text("""INSERT INTO govops.quality_file_replacement (failed_location, file_check_id)
                SELECT c.location, c.id FROM govops.quality_file_check c
                 WHERE c.dag_id = :dag AND c.run_id = :run AND c.status = 'failed'
                   AND NOT EXISTS (SELECT 1 FROM govops.quality_file_replacement r WHERE r.state <> 'verified'
                                   AND c.location IN (r.failed_location, r.replacement_location))
                ON CONFLICT DO NOTHING"""),
        {"dag": dag_id, "run": run_id},
    ).rowcount


def replacements(target: Engine | Connection, failed_location: str | Path) -> list[dict[str, Any]]:
    """The requests of one failed file, oldest first."""
    with _connection(target) as conn:
        found = conn.execute(
            text("""SELECT id, failed_location, file_check_id, state, replacement_location, replaced_by,
                           requested_at, replaced_at, verified_at
                      FROM govops.quality_file_replacement WHERE failed_location = :loc ORDER BY id"""),
            {"loc": normalize_location(failed_location)},
        ).mappings()
        return [dict(row) for row in found]


# --- one run: check, record, meter, export ------------------------------------------------


def run_checks(
    engine: Engine,
    *,
    dag_id: str,
    run_id: str,
    zone: str,
    lake_root: str,
    urls: Sequence[Any] = (),
    request_replacements: bool = True,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Check a zone's files, record them (and the replacement workflow) in one transaction;
    returns the summary and the issue list (failed files with their reasons)."""
    from datetime import UTC

    entries = build_manifest(zone_folder(lake_root, zone), zone, urls)
    results = check_files(entries, load_catalog(engine), timeout=timeout)
    summary = {"zone": zone, **summarize(results), "checked_at": datetime.now(UTC).isoformat()}
    with engine.begin() as conn:
        record_results(conn, dag_id, run_id, results)
        summary["replacements"] = verify_replacements(conn, dag_id, run_id)
        summary["replacements"]["requested"] = (
            request_replacements_for_run(conn, dag_id, run_id) if request_replacements else 0
        )
    return {"summary": summary, "issues": issue_rows(results)}


_NEW_FILES = """
    SELECT count(*) FROM govops.quality_file_check c
     WHERE c.dag_id = :dag AND c.run_id = :run
       AND NOT EXISTS (SELECT 1 FROM govops.quality_file_check e
                        WHERE e.id < c.id AND e.location = c.location
                          AND (c.sha256 IS NULL OR e.sha256 = c.sha256))"""


def new_files(target: Engine | Connection, dag_id: str, run_id: str) -> int:
    """The files of one run whose content (location + sha256; location alone for a file
    checked without content) no row with a smaller id, i.e. an earlier run, holds."""
    with _connection(target) as conn:
        return int(conn.execute(text(_NEW_FILES), {"dag": dag_id, "run": run_id}).scalar_one())


def meter_run(
    target: Engine | Connection, task: TaskRef, *, work_order_id: str | None, summary: Mapping[str, Any]
) -> dict[str, int]:
    """One usage event for the run: item 09, the files it checked that are new (see the
    module docstring), once per task key; a re-run re-records what the run metered first.
    Refuses counts that do not reconcile with the check log. Returns checked, new (the
    quantity metered) and inserted (0: the event was already there)."""
    reconcile(summary)
    with _connection(target) as conn:
        recorded = recorded_counts(conn, task.dag_id, task.run_id)
        wanted = {k: summary[k] for k in ("checked", "ok", "failed")}
        if recorded != wanted:
            raise FileCheckError(f"{task.dag_id}/{task.run_id}: the check log holds {recorded}, the run {wanted}")
        earlier = recorded_event(conn, task, SERVICE_ITEM, summary["zone"], work_order_id,
                                 f"new file(s) of zone {summary['zone']}")
        if earlier is not None:  # a re-run: exactly the measures of the first time
            quantity, records, attributes = earlier.quantity, earlier.records, earlier.attributes
        else:
            quantity, records = new_files(conn, task.dag_id, task.run_id), summary["checked"]
            attributes = {"checked": summary["checked"], "new": quantity, "ok": summary["ok"],
                          "failed": summary["failed"], "by_reason": summary["by_reason"]}  # fmt: skip
        event = UsageEvent(
            task=task, service_item_code=SERVICE_ITEM, quantity=quantity, unit=UNIT,
            event_time=datetime.fromisoformat(summary["checked_at"]), work_order_id=work_order_id,
            data_source=summary["zone"], records=records, attributes=attributes,
        )  # fmt: skip
        written = record_usage(conn, [event])
    return {"checked": summary["checked"], "new": quantity, "inserted": written.inserted}


ISSUE_COLUMNS = (
    "location", "zone", "path", "catalog_dataset", "provider_department", "declared_format", "detected_format",
    "size_bytes", "reasons", "problem", "detail",
)  # fmt: skip


def issue_rows(results: Iterable[FileResult]) -> list[dict[str, Any]]:
    """The failed files, one row each, for the data owner."""
    return [
        {"location": r.entry.location, "zone": r.entry.zone, "path": r.entry.path, "catalog_dataset": r.entry.dataset,
         "provider_department": r.department, "declared_format": r.entry.format, "detected_format": r.format,
         "size_bytes": r.size_bytes, "reasons": ";".join(r.codes),
         "problem": "；".join(REASONS.get(c, c) for c in r.codes), "detail": "; ".join(p.detail for p in r.problems)}
        for r in results if r.problems
    ]  # fmt: skip


def export_issues(issues: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """Write issues.csv (UTF-8 with BOM, for Excel), issues.xlsx (the list and a summary
    sheet) and summary.json into ``folder``; their paths."""
    from openpyxl import Workbook

    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("issues.csv", "issues.xlsx", "summary.json")}
    with paths["issues.csv"].open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ISSUE_COLUMNS)
        writer.writeheader()
        writer.writerows({k: row.get(k) for k in ISSUE_COLUMNS} for row in issues)
    wb = Workbook()
    ws = wb.active
    ws.title = "问题文件清单"
    ws.append(list(ISSUE_COLUMNS))
    for row in issues:
        ws.append([row.get(k) for k in ISSUE_COLUMNS])
    ws.freeze_panes = "A2"
    totals = wb.create_sheet("汇总")
    totals.append(["item", "value"])
    for key in ("zone", "checked", "ok", "failed", "orphans", "missing"):
        totals.append([key, summary.get(key)])
    for code, count in summary.get("by_reason", {}).items():
        totals.append([f"{code} {REASONS.get(code, '')}", count])
    wb.save(paths["issues.xlsx"])
    paths["summary.json"].write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return {name: str(path) for name, path in paths.items()}


def report_folder(lake_root: str, zone: str, run_id: str) -> Path:
    """``<lake>/reports/files/<zone>/<run>/``."""
    from govops.spark.manifest import _safe

    return zone_folder(lake_root, zone).parent.parent / "reports" / "files" / zone / _safe(run_id)
