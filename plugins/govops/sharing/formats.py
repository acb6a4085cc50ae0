"""The answer formats: JSON and XML pages, CSV and NDJSON streams (from Arrow batches)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

# XML 1.0 cannot carry these characters at all (escaped or not): they are written as U+FFFD.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, default=_plain, separators=(",", ":")).encode()


def page_json(meta: dict[str, Any], names: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    return dumps({**meta, "rows": [dict(zip(names, r, strict=False)) for r in rows]})


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return escape(_XML_INVALID.sub("\ufffd", str(value)))


def page_xml(meta: dict[str, Any], names: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<response']
    out += [f" {k}={quoteattr(str(v))}" for k, v in meta.items() if k in ("set", "version") and v is not None]
    out.append(">")
    for k, v in meta.items():
        if k not in ("set", "version") and v is not None:
            out.append(f"<{k}>{_xml_text(v)}</{k}>")
    out.append("<rows>")
    for row in rows:
        out.append("<row>")
        for name, value in zip(names, row, strict=False):  # field names are [a-z][a-z0-9_]*: valid tags
            out.append(f'<{name} null="true"/>' if value is None else f"<{name}>{_xml_text(value)}</{name}>")
        out.append("</row>")
    out.append("</rows></response>\n")
    return "".join(out).encode()


def csv_chunks(batches: Iterator[Any], names: list[str], bom: bool) -> Iterator[bytes]:
    """CSV (RFC 4180 quoting where needed, UTF-8, header line) from Arrow record batches."""
    import pyarrow as pa
    from pyarrow import csv

    header = (",".join(names) + "\n").encode()
    yield (b"\xef\xbb\xbf" if bom else b"") + header
    options = csv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in batches:
        sink = io.BytesIO()
        csv.write_csv(pa.Table.from_batches([batch.select(list(range(len(names))))]).rename_columns(names),
                      sink, options)  # fmt: skip
        yield sink.getvalue()


def ndjson_chunks(batches: Iterator[Any], names: list[str]) -> Iterator[bytes]:
    for batch in batches:
        columns = [batch.column(i).to_pylist() for i in range(len(names))]
        lines = [dumps(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)]
        yield b"\n".join(lines) + b"\n" if lines else b""
