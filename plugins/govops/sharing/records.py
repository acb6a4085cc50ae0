"""Call records (调用记录): one ``govops.api_call`` row per call, refused calls included.

**Group commit.** A request hands its record to :class:`Recorder` and waits until the
record is committed before its response goes out; a writer thread (there are two) takes
every record waiting at that moment and commits them in one transaction. Concurrent
requests share a commit, and an answered request always has its record, even if the server is killed right
after answering. A streamed answer (CSV, NDJSON) is recorded before its first byte (rows
and bytes NULL, ``completed`` false) and updated with its rows, bytes and latency when
the stream ends. ``request_id`` is unique, so a record is written once.
"""

from __future__ import annotations

import asyncio
import csv
import io
import queue
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

S = "govops"
COLUMNS = ("request_id", "set_name", "interface", "caller_id", "key_id", "called_at", "status", "error_code",
           "rows", "bytes", "latency_ms", "completed")  # fmt: skip
_COPY = f"COPY {S}.api_call ({', '.join(COLUMNS)}) FROM STDIN"
_INSERT_DBAPI = (f"INSERT INTO {S}.api_call ({', '.join(COLUMNS)}) VALUES ({', '.join(f'%({c})s' for c in COLUMNS)}) "
                 "ON CONFLICT (request_id) DO NOTHING")  # fmt: skip
_FINISH_DBAPI = f"""UPDATE {S}.api_call SET rows = %(rows)s, bytes = %(bytes)s, latency_ms = %(latency_ms)s,
                                          completed = %(completed)s
                   WHERE request_id = %(request_id)s"""


@dataclass
class CallRecord:
    request_id: str
    set_name: str
    interface: str
    called_at: datetime
    status: int
    caller_id: str | None = None
    key_id: str | None = None
    error_code: str | None = None
    rows: int | None = None
    bytes: int | None = None
    latency_ms: float | None = None
    completed: bool = True

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Pending:
    record: CallRecord
    finish: bool  # an update of a stream's record, not an insert
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    future: asyncio.Future[None] | None = None  # commit(): resolved on its event loop


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)


class Recorder:
    """The writer threads; :meth:`write` blocks (:meth:`commit` awaits) until the record is
    committed.

    Each writer keeps one connection of its own, in autocommit, and writes a batch with one
    ``COPY`` (the cheapest way into PostgreSQL): the statement is its own transaction, and
    its result comes back once that transaction is committed, so a batch costs two round
    trips instead of four (``BEGIN``, ``COPY``, its data, ``COMMIT``). A batch that COPY
    refuses (a record already there after a reconnection) is written again with ``INSERT
    ... ON CONFLICT DO NOTHING``; a stream's update is a statement of its own."""

    def __init__(self, engine: Engine, max_batch: int = 500, *, enabled: bool = True, writers: int = 2) -> None:
        self.engine, self.max_batch, self.enabled = engine, max_batch, enabled
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        # Two writers: records that arrive during a commit go out in the next one at once,
        # not after it (PostgreSQL flushes concurrent commits together).
        self._threads = [threading.Thread(target=self._run, name=f"call-records-{i}", daemon=True)
                         for i in range(writers)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def write(self, record: CallRecord, *, wait: bool = True, finish: bool = False) -> None:
        if not self.enabled:  # the benchmark's records-off server only
            return
        pending = _Pending(record, finish)
        self._queue.put(pending)
        if wait:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error

    async def commit(self, record: CallRecord) -> None:
        """:meth:`write` for the event loop: awaits the commit without holding a thread."""
        if not self.enabled:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put(_Pending(record, False, future=future))
        await future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self) -> None:
        conn: list[Any] = [None]  # this writer's pooled DBAPI connection (a list: _commit replaces it)
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            error: BaseException | None = None
            try:
                self._commit(conn, batch)
            except Exception as exc:  # the waiting requests answer 503: no record, no answer
                error = exc
            futures: dict[Any, list[asyncio.Future[None]]] = {}  # loop -> its futures: one wake-up each
            for p in batch:
                p.error = error
                if p.future is not None:
                    futures.setdefault(p.future.get_loop(), []).append(p.future)
                else:
                    p.done.set()
            for loop, waiting in futures.items():
                loop.call_soon_threadsafe(_resolve, waiting, error)

    def _commit(self, holder: list[Any], batch: list[_Pending]) -> None:
        inserts = [p.record for p in batch if not p.finish]
        finishes = [p.record.row() for p in batch if p.finish]
        for attempt in (0, 1):
            if holder[0] is None:
                holder[0] = self.engine.raw_connection()
                holder[0].driver_connection.autocommit = True
            conn = holder[0]
            try:
                with conn.cursor() as cur:
                    if inserts and attempt == 0:
                        with cur.copy(_COPY) as copy:
                            for r in inserts:
                                copy.write_row(tuple(getattr(r, c) for c in COLUMNS))
                    elif inserts:
                        cur.executemany(_INSERT_DBAPI, [r.row() for r in inserts])
                    if finishes:
                        cur.executemany(_FINISH_DBAPI, finishes)
                return
            except Exception:
                _drop(holder)
                if attempt:
                    raise


def _drop(holder: list[Any]) -> None:
    conn, holder[0] = holder[0], None
    if conn is None:
        return
    try:
        conn.driver_connection.autocommit = False  # as the pool's other users expect it
        conn.close()
    except Exception:  # a broken connection: the pool discards it
        conn.invalidate()


# --- aggregates and the export ---


def aggregates(engine: Engine, period: str, start: date, end: date) -> list[dict[str, Any]]:
    """Calls per ``period`` ('day' or 'month', in the contract's time zone), set and caller."""
    from govops.ledger.usage import contract_timezone

    if period not in ("day", "month"):
        raise ValueError(f"period: {period!r} is not day or month")
    tz = contract_timezone().key
    sql = text(f"""
        SELECT date_trunc(:p, called_at AT TIME ZONE :tz)::date AS period_start, set_name, caller_id,
               count(*) AS calls, count(*) FILTER (WHERE status < 400) AS answered,
               count(*) FILTER (WHERE status >= 400) AS refused, coalesce(sum(rows), 0) AS rows,
               coalesce(sum(bytes), 0) AS bytes,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
        FROM {S}.api_call
        WHERE (called_at AT TIME ZONE :tz)::date BETWEEN :start AND :end
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")  # fmt: skip
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql, {"p": period, "tz": tz, "start": start, "end": end}).mappings()]


EXPORT_HEADER = ("接口信息", "请求方信息", "请求时间", "请求次数")  # seed 000: interface, caller, time, count
AGGREGATE_HEADER = {"period_start": "统计周期", "set_name": "接口集", "caller_id": "请求方", "calls": "请求次数",
                    "answered": "成功次数", "refused": "拒绝次数", "rows": "返回条数", "bytes": "返回字节数",
                    "p50_ms": "P50耗时(ms)", "p99_ms": "P99耗时(ms)"}  # fmt: skip


def export_rows(engine: Engine, start: date, end: date) -> list[tuple[str, str, str, int]]:
    """The seed's four fields, one line per interface, caller and day (the contract's time zone)."""
    from govops.ledger.usage import contract_timezone

    sql = text(f"""
        SELECT c.set_name || '/' || c.interface AS interface,
               coalesce(c.caller_id || ' ' || a.name, '(no valid key)') AS caller,
               (c.called_at AT TIME ZONE :tz)::date AS day, count(*) AS calls
        FROM {S}.api_call c LEFT JOIN {S}.api_caller a USING (caller_id)
        WHERE (c.called_at AT TIME ZONE :tz)::date BETWEEN :start AND :end
        GROUP BY 1, 2, 3 ORDER BY 3, 1, 2""")  # fmt: skip
    with engine.connect() as conn:
        found = conn.execute(sql, {"tz": contract_timezone().key, "start": start, "end": end}).all()
    return [(r.interface, r.caller, r.day.isoformat(), int(r.calls)) for r in found]


def export_csv(engine: Engine, start: date, end: date) -> str:
    """:func:`export_rows` as CSV with the seed's Chinese headers (UTF-8 with a BOM, for Excel)."""
    return _csv(EXPORT_HEADER, export_rows(engine, start, end))


def _csv(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return "\ufeff" + out.getvalue()


def write_table(path: Path, title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """``rows`` under ``header`` as ``.xlsx`` (one sheet named ``title``) or ``.csv`` (with a BOM)."""
    if path.suffix == ".csv":
        path.write_text(_csv(header, rows), encoding="utf-8")
        return
    if path.suffix != ".xlsx":
        raise ValueError(f"{path}: .csv or .xlsx")
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(list(header))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(row))
    sheet.freeze_panes = "A2"
    book.save(path)
