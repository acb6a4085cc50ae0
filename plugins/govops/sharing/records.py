"""Call records (调用记录): one ``govops.api_call`` row per call, refused calls included.

**Group commit.** A request hands its record to :class:`Recorder` and waits until the
record is committed before its response goes out; one writer thread takes every record
waiting at that moment and commits them in one transaction. Concurrent requests share a
commit, and an answered request always has its record, even if the server is killed right
after answering. A streamed answer (CSV, NDJSON) is recorded before its first byte (rows
and bytes NULL, ``completed`` false) and updated with its rows, bytes and latency when
the stream ends. ``request_id`` is unique, so a record is written once.
"""

from __future__ import annotations

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
_INSERT = text(f"""INSERT INTO {S}.api_call (request_id, set_name, interface, caller_id, key_id, called_at, status,
                                             error_code, rows, bytes, latency_ms, completed)
                   VALUES (:request_id, :set_name, :interface, :caller_id, :key_id, :called_at, :status,
                           :error_code, :rows, :bytes, :latency_ms, :completed)
                   ON CONFLICT (request_id) DO NOTHING""")  # fmt: skip
_FINISH = text(f"""UPDATE {S}.api_call SET rows = :rows, bytes = :bytes, latency_ms = :latency_ms,
                                          completed = :completed
                   WHERE request_id = :request_id""")


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


class Recorder:
    """The writer thread; :meth:`write` blocks until the record is committed."""

    def __init__(self, engine: Engine, max_batch: int = 500, *, enabled: bool = True) -> None:
        self.engine, self.max_batch, self.enabled = engine, max_batch, enabled
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="call-records", daemon=True)
        self._thread.start()
        self.commits = 0  # how many transactions (for the benchmark's group-commit figure)

    def write(self, record: CallRecord, *, wait: bool = True, finish: bool = False) -> None:
        if not self.enabled:  # the benchmark's records-off server only
            return
        pending = _Pending(record, finish)
        self._queue.put(pending)
        if wait:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
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
                with self.engine.begin() as conn:
                    inserts = [p.record.row() for p in batch if not p.finish]
                    if inserts:
                        conn.execute(_INSERT, inserts)
                    finishes = [p.record.row() for p in batch if p.finish]
                    if finishes:
                        conn.execute(_FINISH, finishes)
                self.commits += 1
            except Exception as exc:  # the waiting requests answer 503: no record, no answer
                error = exc
            for p in batch:
                p.error = error
                p.done.set()


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
