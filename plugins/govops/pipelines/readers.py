"""File readers of the extraction job: CSV, JSON lines, XML, XLSX and Parquet.

Text formats are read with every declared column as a string, in the file's own charset
(GBK exports become UTF-8 here), and then cast to the declared types, so a value that does
not fit is rejected with its column and value instead of nulling the whole row. Positional
formats (CSV, XLSX) have their header checked against the declared columns first: a file
with a new or missing column would otherwise shift values into the wrong columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from govops.errors import CodedError
from govops.pipelines.cleansing import CORRUPT, LOCATION, READ_ERROR, typed

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

    from govops.pipelines.spec import FileSource
    from govops.spark.job import JobContext


class SchemaDriftError(CodedError, ValueError):
    """A file's header does not match the spec's columns; the message names file and columns."""

    code = "SCHEMA_DRIFT"


def resolve(path: str, landing_root: str | None) -> str:
    return path if "://" in path else f"{(landing_root or '').rstrip('/')}/{path}"


def source_files(ctx: JobContext, pattern: str) -> list[str]:
    """The files a path or glob names, through Hadoop's FileSystem (file://, hdfs://...)."""
    jvm = ctx.spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(pattern)
    fs = path.getFileSystem(ctx.spark._jsc.hadoopConfiguration())
    found = []
    for status in fs.globStatus(path) or []:
        if status.isFile():
            found.append(status.getPath().toString())
        else:
            found.extend(s.getPath().toString() for s in fs.listStatus(status.getPath()) if s.isFile()
                         and not s.getPath().getName().startswith(("_", ".")))  # fmt: skip
    if not found:
        raise FileNotFoundError(f"no files match {pattern}")
    return sorted(found)


def first_line(ctx: JobContext, uri: str, encoding: str) -> str:
    jvm = ctx.spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(ctx.spark._jsc.hadoopConfiguration()).open(path)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, encoding))
        return (reader.readLine() or "").lstrip("\ufeff")
    finally:
        stream.close()


def drift(declared: list[str], found: list[str]) -> str | None:
    """How a header differs from the declared columns, or None."""
    new = [c for c in found if c not in declared]
    missing = [c for c in declared if c not in found]
    parts = [f"new column {c!r}" for c in new] + [f"missing column {c!r}" for c in missing]
    if not parts and found != declared:
        parts.append(f"columns in another order: {', '.join(found)}")
    return "; ".join(parts) or None


def _string_schema(columns: dict[str, str]) -> str:
    return ", ".join(f"`{name}` string" for name in columns) + f", `{CORRUPT}` string"


def read_files(ctx: JobContext, source: FileSource, landing_root: str | None) -> tuple[DataFrame, list[Column]]:
    """The rows of the source files and the reasons of values that do not cast."""
    from pyspark.sql import functions as F

    path = resolve(source.path, landing_root)
    if source.kind == "parquet":
        return ctx.spark.read.parquet(path).withColumn(LOCATION, F.col("_metadata.file_path")), []
    columns = source.columns or {}
    # Spark 4 accepts only the Unicode charsets unless told to use Java's (GBK, GB18030...).
    ctx.spark.conf.set("spark.sql.legacy.javaCharsets", "true")
    if source.kind == "xlsx":
        df = read_xlsx(ctx, source, source_files(ctx, path))
    else:
        reader = (
            ctx.spark.read.schema(_string_schema(columns))
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("encoding", source.encoding)
        )
        if source.kind == "csv":
            df = _read_csv(ctx, source, path, reader)
        elif source.kind == "jsonl":
            df = reader.option("lineSep", "\n").json(path).withColumn(LOCATION, F.col("_metadata.file_path"))
        else:
            df = reader.format("xml").option("rowTag", source.row_tag).load(path)
            df = df.withColumn(LOCATION, F.col("_metadata.file_path"))
    # Cached so that Spark can query the corrupt-record column on its own, and so that the
    # source is read once for the counts, the output and the rejects.
    df, reasons = typed(df.cache(), columns)
    return df, reasons


def _read_csv(ctx: JobContext, source: FileSource, path: str, reader: Any) -> DataFrame:
    from pyspark.sql import functions as F

    declared = list(source.columns or {})
    files, drifted = source_files(ctx, path), {}
    if source.header:
        for uri in files:
            header = next(iter(csv_rows(first_line(ctx, uri, source.encoding), source.delimiter, source.escape)), [])
            problem = drift(declared, [h.strip() for h in header])
            if problem:
                drifted[uri] = problem
    if drifted and source.on_schema_drift == "fail":
        raise SchemaDriftError(
            "; ".join(f"{uri}: schema drift: {why}" for uri, why in drifted.items())
            + " (set source.on_schema_drift: quarantine to keep such files as rejects and load the others)"
        )
    good = [f for f in files if f not in drifted]
    frames = []
    if good:
        # The header check above and this read parse quotes the same way (csv_rows).
        csv = reader.options(header=str(source.header).lower(), sep=source.delimiter, quote='"',
                             escape=source.escape).csv(good)  # fmt: skip
        frames.append(csv.withColumn(LOCATION, F.col("_metadata.file_path")).withColumn(READ_ERROR, F.lit(None)))
    for uri, why in drifted.items():
        # Each data line of a drifted file is one reject, kept whole in the corrupt column.
        lines = (
            ctx.spark.read.option("encoding", source.encoding)
            .option("lineSep", "\n")
            .schema("`__line` string")
            .option("sep", "\u0000")
            .option("quote", "\u0000")
            .option("header", "true")
            .csv(uri)
        )
        frames.append(
            lines.select(
                *[F.lit(None).cast("string").alias(c) for c in declared],
                F.col("__line").alias(CORRUPT),
                F.lit(uri).alias(LOCATION),
                F.lit(f"schema drift: {why}").alias(READ_ERROR),
            )
        )
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other)
    return df


def csv_rows(text: str, delimiter: str, escape: str = '"') -> list[list[str]]:
    """Python's reading of CSV lines in the dialect Spark is given: escape '"' is RFC 4180's
    doubled quote, another escape character precedes the quote it escapes."""
    import csv

    if escape == '"':
        return list(csv.reader([text], delimiter=delimiter, quotechar='"', doublequote=True))
    return list(csv.reader([text], delimiter=delimiter, quotechar='"', doublequote=False, escapechar=escape))


def read_xlsx(ctx: JobContext, source: FileSource, files: list[str]) -> DataFrame:
    """XLSX workbooks, one Spark task per file: no Spark reader for Excel ships with Spark,
    and the Maven packages that add one are not reachable, so openpyxl reads them."""
    import json

    declared = list(source.columns or {})
    schema = _string_schema(source.columns or {}) + f", `{LOCATION}` string, `{READ_ERROR}` string"
    spec = json.dumps({"sheet": source.sheet, "header": source.header, "columns": declared,
                       "drift": source.on_schema_drift})  # fmt: skip
    paths = ctx.spark.createDataFrame([(f,) for f in files], "path string").repartition(len(files))
    return paths.mapInArrow(lambda batches: _xlsx_batches(batches, spec), schema)


def _xlsx_batches(batches: Iterator[pa.RecordBatch], spec_json: str) -> Iterator[pa.RecordBatch]:
    import json

    import pyarrow as pa

    spec = json.loads(spec_json)
    declared: list[str] = spec["columns"]
    names = [*declared, CORRUPT, LOCATION, READ_ERROR]
    for batch in batches:
        for uri in batch.column(0).to_pylist():
            rows = list(xlsx_records(uri, spec["sheet"], declared, spec["header"], spec["drift"]))
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
            yield pa.RecordBatch.from_arrays([pa.array(list(c), pa.string()) for c in columns], names=names)


def xlsx_records(
    uri: str, sheet: str | None, declared: list[str], header: bool, on_drift: str
) -> Iterator[tuple[str | None, ...]]:
    """(declared values..., corrupt, location, read error) per non-empty row of a sheet."""
    import json

    import openpyxl
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    with filesystem.open_input_file(path) as handle:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        try:
            ws = book[sheet] if sheet else book.worksheets[0]
            rows = ws.iter_rows(values_only=True)
            order = list(range(len(declared)))
            problem = None
            if header:
                found = [str(v).strip() if v is not None else "" for v in next(rows, ())]
                while found and found[-1] == "":
                    found.pop()
                problem = drift(declared, found)
                if problem and on_drift == "fail":
                    raise SchemaDriftError(f"{uri}#{ws.title}: schema drift: {problem}")
            for number, values in enumerate(rows, start=2 if header else 1):
                cells = ["" if v is None else _cell_text(v) for v in values]
                if not any(cells):
                    continue  # Excel's trailing empty rows are not records
                where = f"{uri}#{ws.title}!{number}"
                if problem:
                    yield (*([None] * len(declared)), json.dumps(cells, ensure_ascii=False), where,
                           f"schema drift: {problem}")  # fmt: skip
                    continue
                extra = [c for c in cells[len(declared) :] if c]
                if extra:
                    why = f"row has {len(declared) + len(extra)} values, {len(declared)} columns declared"
                    yield (*([None] * len(declared)), json.dumps(cells, ensure_ascii=False), where, why)
                    continue
                cells += [""] * (len(declared) - len(cells))
                yield (*[cells[i] or None for i in order], None, where, None)
        finally:
            book.close()


def _cell_text(value: Any) -> str:
    """A cell as text the way a person reads it: dates ISO, whole floats without .0."""
    from datetime import date, datetime

    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != datetime.min.time() else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
