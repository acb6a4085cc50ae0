"""Incremental capture from a PostgreSQL table as a Spark Structured Streaming source.

A Python data source (``pyspark.sql.datasource``): the offset is the highest value of a
column that only grows (an id, or an ``updated_at``), so a micro-batch is the rows with
``start < column <= end``. Spark writes the offsets of each micro-batch to the query's
checkpoint before it runs the batch, so a batch replayed after a crash reads the same
rows again. Rows are read with psycopg, on the executors.

Imported by the Spark job only (never when Airflow parses DAGs), hence pyspark at module
level here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any

from pyspark.sql.datasource import (  # noqa: TID253 - imported by spark_jobs/extract_stream.py only
    DataSource,
    DataSourceStreamReader,
    InputPartition,
)
from pyspark.sql.streaming.datasource import (  # noqa: TID253
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType  # noqa: TID253

NAME = "govops_pg_capture"
# PostgreSQL types -> Spark SQL types; anything else is captured as text.
_TYPES = {
    "bigint": "bigint", "integer": "int", "smallint": "smallint", "boolean": "boolean", "real": "float",
    "double precision": "double", "date": "date", "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp_ntz", "text": "string", "character varying": "string",
    "character": "string",
}  # fmt: skip
_NUMERIC_OFFSETS = ("bigint", "int", "smallint")


def conninfo(jdbc_url: str, user: str | None) -> str:
    """A libpq connection string from ``jdbc:postgresql://host:port/db`` (no password)."""
    from urllib.parse import urlsplit

    from psycopg.conninfo import make_conninfo

    parts = urlsplit(jdbc_url.removeprefix("jdbc:"))
    return make_conninfo(host=parts.hostname, port=parts.port or 5432, dbname=parts.path.lstrip("/"),
                         user=user or None)  # fmt: skip


def table_columns(dsn: str, password: str | None, table: str, wanted: dict[str, str] | None) -> list[list[str]]:
    """[[name, Spark type, select expression], ...] of the table (or of the wanted columns),
    in table order, typed as the table declares them."""
    import psycopg

    schema, _, name = table.rpartition(".")
    with psycopg.connect(dsn, password=password or None) as conn:
        found = conn.execute(
            """SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
               WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position""",
            (schema or "public", name),
        ).fetchall()
    if not found:
        raise ValueError(f"{table}: no such table (or no columns visible to the user)")
    columns = []
    for column, pg_type, precision, scale in found:
        if wanted is not None and column not in wanted:
            continue
        kind = _TYPES.get(pg_type)
        if pg_type == "numeric" and precision is not None:
            kind = f"decimal({min(precision, 38)},{scale or 0})"
        expression = f'"{column}"' if kind else f'"{column}"::text'
        columns.append([column, kind or "string", expression])
    missing = sorted(set(wanted or ()) - {c[0] for c in columns})
    if missing:
        raise ValueError(f"{table}: no column(s) {', '.join(missing)}")
    return columns


class PgCapture(DataSource):
    """Options: dsn, password, table, offset_column, columns (JSON from table_columns),
    max_rows (optional), partitions (optional, numeric offsets: parallel range reads)."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> str:
        columns = json.loads(self.options["columns"])
        return ", ".join(f"`{name}` {kind}" for name, kind, _ in columns)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return _Reader(dict(self.options))


class _Reader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.table = options["table"]
        self.column = options["offset_column"]
        self.columns: list[list[str]] = json.loads(options["columns"])
        kinds = {name: kind for name, kind, _ in self.columns}
        self.numeric = kinds.get(self.column) in _NUMERIC_OFFSETS
        self.target: str | None = None  # availableNow: the latest offset when the query started

    def _query(self, sql: str, params: Sequence[Any] = ()) -> Any:
        import psycopg

        with psycopg.connect(self.options["dsn"], password=self.options.get("password") or None) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def _bounds(self, start: dict, end: dict | None = None) -> tuple[str, list[Any]]:
        where, params = [f'"{self.column}" IS NOT NULL'], []
        if start.get("after") is not None:
            where.append(f'"{self.column}" > %s')
            params.append(start["after"])
        if end is not None and end.get("after") is not None:
            where.append(f'"{self.column}" <= %s')
            params.append(end["after"])
        return " AND ".join(where), params

    def initialOffset(self) -> dict:
        return {"after": None}  # everything: the first batch captures the whole table

    def getDefaultReadLimit(self) -> ReadLimit:
        rows = self.options.get("max_rows")
        return ReadMaxRows(int(rows)) if rows else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        where, params = self._bounds({})
        self.target = self._query(f'SELECT max("{self.column}")::text FROM {self.table} WHERE {where}', params)

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        # Offsets are the column's values as PostgreSQL prints them, compared by PostgreSQL:
        # ids, timestamps and dates keep their own order and precision.
        where, params = self._bounds(start, {"after": self.target} if self.target is not None else None)
        top = f'ORDER BY "{self.column}" LIMIT {int(limit.max_rows)}' if isinstance(limit, ReadMaxRows) else ""
        latest = self._query(
            f'SELECT max("{self.column}")::text FROM (SELECT "{self.column}" FROM {self.table} WHERE {where} {top}) s',
            params,
        )
        return {"after": latest} if latest is not None else start

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        if start.get("after") == end.get("after"):
            return []
        slices = int(self.options.get("partitions") or 1)
        if not self.numeric or slices == 1:
            return [InputPartition({"start": start, "end": end})]
        where, params = self._bounds(start, end)
        lo = self._query(f'SELECT min("{self.column}") FROM {self.table} WHERE {where}', params)
        if lo is None:  # the rows are gone since latestOffset: one (empty) read
            return [InputPartition({"start": start, "end": end})]
        hi, lo = int(end["after"]), int(lo) - 1
        step = max(1, -(-(hi - lo) // slices))
        cuts = [*range(lo, hi, step), hi]
        return [InputPartition({"start": {"after": str(a) if i else start.get("after")}, "end": {"after": str(b)}})
                for i, (a, b) in enumerate(pairwise(cuts))]  # fmt: skip

    def read(self, partition: InputPartition) -> Iterator[tuple]:
        import psycopg

        where, params = self._bounds(partition.value["start"], partition.value["end"])
        select = ", ".join(expression for _, _, expression in self.columns)
        with (
            psycopg.connect(self.options["dsn"], password=self.options.get("password") or None) as conn,
            conn.cursor(name="govops_capture") as cur,  # server-side: a large batch streams in chunks
        ):
            cur.itersize = 10_000
            cur.execute(f'SELECT {select} FROM {self.table} WHERE {where} ORDER BY "{self.column}"', params)
            yield from cur
