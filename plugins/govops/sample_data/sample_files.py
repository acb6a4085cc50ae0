"""Sample files of a sharing / open zone for the file checks (item 09): good and defective
PDF, DOCX, XLSX, CSV and images, the zone's ``_file_catalog.yaml`` linking them to catalog
entries, and the reason codes each one must get. Everything is built locally and
deterministically; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, text

REPORTS = "sharing/files/qingpu_reports"
TABLES = "sharing/files/qingpu_tables"
IMAGES = "sharing/files/qingpu_images"
UNREGISTERED = "sharing/files/not_registered"  # linked in the file catalog, absent from govops.data_catalog

DATASETS: list[dict[str, Any]] = [
    {"dataset": REPORTS, "name": "青浦区政务公开文件", "provider_department": "区政务服务办", "database_type": "文件"},
    {"dataset": TABLES, "name": "青浦区街镇办件统计表", "provider_department": "区大数据中心", "database_type": "文件"},
    {"dataset": IMAGES, "name": "青浦区专题地图", "provider_department": "区规划资源局", "database_type": "文件"},
]


@dataclass(frozen=True)
class SampleFiles:
    folder: Path
    expected: dict[str, tuple[str, ...]]  # path under the folder -> reason codes; () = passes
    datasets: list[dict[str, Any]]  # the entries to register in govops.data_catalog


def pdf_bytes(title: str = "青浦区公共数据", pages: int = 2) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)  # A4
    writer.add_metadata({"/Title": title, "/Producer": "govops sample"})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def docx_bytes(paragraph: str = "青浦区政务服务事项办事指南") -> bytes:
    """A minimal WordprocessingML package: what Word needs to open it."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="word/document.xml" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
            "</Relationships>"
        ),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{w}"><w:body>'
            f"<w:p><w:r><w:t>{paragraph}</w:t></w:r></w:p></w:body></w:document>"
        ),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts.items():
            zf.writestr(name, body.encode("utf-8"))
    return buf.getvalue()


def xlsx_bytes(rows: list[list[Any]] | None = None) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "办件量"
    for row in rows or [["街道", "办件量"], ["夏阳街道", 120], ["朱家角镇", 86], ["赵巷镇", 64]]:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    # A gradient, so compressed data is not trivially short and a cut lands inside it.
    img = Image.new("RGB", size)
    img.putdata([(x * 4 % 256, y * 5 % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def csv_bytes(encoding: str = "utf-8") -> bytes:
    return "街道,办件量,月份\n夏阳街道,120,2026-10\n朱家角镇,86,2026-10\n".encode(encoding)


def noise(n: int, seed: str = "govops") -> bytes:
    """Deterministic bytes that match no file signature (never starts like a PDF, a zip...)."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(seed.encode() + len(out).to_bytes(4, "big")).digest()
    return b"\x00" + out[: n - 1]


def write_sample_files(folder: Path) -> SampleFiles:
    """Write the sample zone folder (e.g. ``<lake>/sharing/files``) with its file catalog.

    Seven files pass; eleven fail with exactly one reason each: 18 checked = 7 ok + 11 failed.
    """
    pdf = pdf_bytes()
    files: dict[str, bytes] = {
        "reports/2026年度工作报告.pdf": pdf,
        "reports/办事指南.docx": docx_bytes(),
        "tables/街镇办件量.xlsx": xlsx_bytes(),
        "tables/street_cases.csv": csv_bytes(),
        "tables/legacy_gbk.csv": csv_bytes("gbk"),
        "images/map.png": image_bytes("PNG"),
        "images/photo.jpg": image_bytes("JPEG"),
        # defects
        "reports/truncated.pdf": pdf[: len(pdf) * 2 // 3],
        "reports/empty.pdf": b"",
        "reports/mislabeled.pdf": image_bytes("PNG"),
        "reports/garbage.docx": noise(512),
        "reports/wrong-size.pdf": pdf,
        "reports/unregistered.pdf": pdf,
        "tables/truncated.xlsx": xlsx_bytes()[:900],
        "tables/ragged.csv": "街道,办件量,月份\n夏阳街道,120\n朱家角镇,86,2026-10,多余\n".encode(),
        "images/truncated.png": image_bytes("PNG")[:300],
        "images/orphan.png": image_bytes("PNG", (16, 16)),
    }
    expected: dict[str, tuple[str, ...]] = {path: () for path in list(files)[:7]}
    expected.update({
        "reports/truncated.pdf": ("TRUNCATED",), "reports/empty.pdf": ("EMPTY",),
        "reports/mislabeled.pdf": ("FORMAT_MISMATCH",), "reports/garbage.docx": ("UNREADABLE",),
        "reports/wrong-size.pdf": ("SIZE_MISMATCH",), "reports/unregistered.pdf": ("CATALOG_ENTRY_MISSING",),
        "tables/truncated.xlsx": ("TRUNCATED",), "tables/ragged.csv": ("RAGGED_ROWS",),
        "images/truncated.png": ("TRUNCATED",), "images/orphan.png": ("NO_CATALOG_ENTRY",),
        "reports/missing.pdf": ("NOT_FOUND",),
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for path, body in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(body)

    def dataset_of(path: str) -> str:
        if path == "reports/unregistered.pdf":
            return UNREGISTERED
        return {"reports": REPORTS, "tables": TABLES, "images": IMAGES}[path.split("/")[0]]

    entries = []
    for path in expected:
        if path == "images/orphan.png":
            continue  # on disk, not in the catalog
        entry: dict[str, Any] = {"path": path, "dataset": dataset_of(path), "format": Path(path).suffix[1:]}
        if path in files:
            entry["size"] = len(files[path]) + (100 if path == "reports/wrong-size.pdf" else 0)
        entries.append(entry)
    (folder / "_file_catalog.yaml").write_text(
        "# file -> catalog entry (govops.data_catalog.dataset), declared format and size in bytes\n"
        + yaml.safe_dump({"files": entries}, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return SampleFiles(folder=folder, expected=expected, datasets=[dict(d) for d in DATASETS])


def register_datasets(target: Engine | Connection, datasets: list[dict[str, Any]]) -> None:
    """Put the sample file datasets in govops.data_catalog (as collection would); idempotent."""
    sql = text(
        """INSERT INTO govops.data_catalog (dataset, name, provider_department, source_system, database_type,
               source_object, schema, update_frequency, share_type, open_type, classification, pipeline,
               first_run_id)
           VALUES (:dataset, :name, :provider_department, :source_system, :database_type, :dataset,
               '[]'::jsonb, '不定期', '无条件共享', '无条件开放', '政务公开/文件', 'sample_files', 'sample')
           ON CONFLICT (dataset) DO NOTHING"""
    )
    rows = [{"source_system": f"{d['provider_department']}文件库", **d} for d in datasets]
    if isinstance(target, Connection):
        target.execute(sql, rows)
    else:
        with target.begin() as conn:
            conn.execute(sql, rows)
