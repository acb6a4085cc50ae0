"""The sharing API server (items 12/13): a FastAPI app over the interface sets of include/apis.

Every set serves ``/api/sets/<set>/``: ``sample.json`` and ``sample.xml`` (样例数据),
``rows.json`` and ``rows.xml`` (query pages), ``rows.csv`` (export, ``bom=true`` for Excel)
and ``rows.ndjson`` (streaming). ``/api/sets`` is the API list. Every call of a set, refused
or answered, is recorded (govops.sharing.records) before its answer goes out. Errors are
problem details (RFC 9457) naming the parameter; they never carry the server's internals.

**The request path.** A set's interfaces are answered by :class:`SharingApp`, a thin ASGI
layer in front of the FastAPI app (which still declares them, for ``/openapi.json`` and
``/docs``): the checks, the answer's formatting and the wait for its call record run on the
event loop; DuckDB runs in worker threads. Keyed lookups (``<key>=<value>``, nothing else
but ``fields`` / ``sort`` / ``limit``) that arrive together of one set, version and column
selection are answered by one query (``<key> IN (...)``) over the key's index (grouped
lookups, as the records are grouped commits).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import Engine

from govops.sharing import docs, formats
from govops.sharing.callers import TEST_CALLER, Caller, KeyStore, signed_message
from govops.sharing.docs import INTERFACES
from govops.sharing.limits import Limiter, tier
from govops.sharing.query import ApiError, CursorCodec, Filter, Query, bad, count_sql, parse, select_sql
from govops.sharing.records import CallRecord, Recorder
from govops.sharing.spec import ApiSetSpec, LoadedSet, load_all
from govops.sharing.versions import DatasetUnavailable, Version, VersionResolver

log = logging.getLogger("govops.sharing")
MEDIA = {"json": "application/json", "xml": "application/xml; charset=utf-8", "csv": "text/csv; charset=utf-8",
         "ndjson": "application/x-ndjson"}  # fmt: skip


@dataclass
class ServerConfig:
    lake_root: str
    apis_dir: Path
    engine: Engine
    cursor_key: bytes
    key_cache_seconds: float = 2.0
    state_seconds: float = 2.0  # a set closed (govops.api_set) answers 410 within this time
    signature_window: int = 300
    threads: int = 2
    # A published version of at most this many rows is also loaded into DuckDB's memory (in
    # the background) and queried there: a keyed lookup then reads no Parquet. 0: never.
    memory_rows: int = 10_000_000
    record_calls: bool = True  # False only in bench/sharing.py (the cost of records); serve has no switch
    query_threads: int = 8  # DuckDB queries other than grouped lookups
    lookup_threads: int = 1  # one: the lookups that arrive meanwhile make the next group bigger
    sets: dict[str, LoadedSet] = field(default_factory=dict)
    spec_errors: list[str] = field(default_factory=list)


def default_config() -> ServerConfig:
    from sqlalchemy import create_engine

    from govops import settings
    from govops.security.signing import signing_key
    from govops.sharing.spec import apis_dir

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID), pool_size=10, max_overflow=20,
                           pool_pre_ping=True)  # fmt: skip
    _, cursor_key = signing_key("govops-sharing:cursor")
    return ServerConfig(
        lake_root=settings.lake_root(), apis_dir=apis_dir(), engine=engine, cursor_key=cursor_key,
        key_cache_seconds=float(os.environ.get("GOVOPS_API_KEY_CACHE_SECONDS", "2")),
        state_seconds=float(os.environ.get("GOVOPS_API_STATE_SECONDS", "2")),
        memory_rows=int(os.environ.get("GOVOPS_API_MEMORY_ROWS", "10000000")),
    )  # fmt: skip


@dataclass(frozen=True)
class Call:
    """What a call's answer depends on from its HTTP request."""

    method: str
    path: str
    query: str  # the query string as sent (a signature covers it)
    headers: dict[str, str]  # lower-case names, the first of repeated ones

    @classmethod
    def of(cls, scope: dict[str, Any]) -> Call:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        return cls(scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), headers)

    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)  # as Starlette's request.query_params


@dataclass
class _Lookup:
    spec: ApiSetSpec
    query: Query
    version: Version
    future: asyncio.Future[Any]


def _settle(outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
    """Resolve event-loop futures from another thread: one wake-up of each loop."""
    by_loop: dict[Any, list[tuple[asyncio.Future[Any], BaseException | None, Any]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)

    def done(items: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
        for future, error, result in items:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(done, items)


class SetStates:
    """The closed sets (govops.api_set), read again when ``ttl`` seconds old (0: every call)."""

    def __init__(self, engine: Engine, ttl: float) -> None:
        self.engine, self.ttl = engine, ttl
        self.closed: dict[str, datetime] = {}  # set -> closed_at
        self._at = -1e18

    def fresh(self) -> bool:
        return time.monotonic() - self._at < self.ttl

    def refresh(self) -> None:
        from sqlalchemy import text

        at = time.monotonic()
        with self.engine.connect() as conn:
            found = conn.execute(text("SELECT set_name, closed_at FROM govops.api_set WHERE open_state = 'closed'"))
            self.closed = {r.set_name: r.closed_at for r in found}
        self._at = at


class Server:
    """What the routes share: sets, lake versions, DuckDB, keys, limits, the recorder."""

    def __init__(self, config: ServerConfig) -> None:
        import duckdb

        self.config = config
        if not config.sets and not config.spec_errors:
            config.sets, config.spec_errors = load_all(config.apis_dir)
        for error in config.spec_errors:
            log.error("%s (this set is not served; the others are)", error)
        self.sets = config.sets
        self.resolver = VersionResolver(config.lake_root)
        self._local = config.lake_root.startswith("file://")
        self.duck = duckdb.connect(":memory:", config={"threads": config.threads})
        self.codec = CursorCodec(config.cursor_key)
        self.keys = KeyStore(config.engine, config.key_cache_seconds)
        self.limiter = Limiter(config.engine)
        self.recorder = Recorder(config.engine, enabled=config.record_calls)
        self.states = SetStates(config.engine, config.state_seconds)
        self._state_refresh: asyncio.Task[None] | None = None
        self._fs: Any = None
        self._tables: dict[str, str] = {}  # version id -> its in-memory table
        self._loading: set[str] = set()
        self._generations: dict[str, list[str]] = {}  # dataset -> version ids loaded, oldest first
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(config.query_threads, thread_name_prefix="query")
        self._lookups: queue.Queue[_Lookup] = queue.Queue()
        for i in range(config.lookup_threads):
            threading.Thread(target=self._lookup_loop, name=f"lookups-{i}", daemon=True).start()

    # --- one call ---

    async def call(self, call: Call, set_name: str, resource: str, fmt: str) -> Response:
        started, now = time.perf_counter(), datetime.now(UTC)
        interface = INTERFACES.get((resource, fmt), f"{resource}_{fmt}"[:40])
        record = CallRecord(str(uuid.uuid4()), set_name[:100], interface, now, 0)
        counted: Caller | None = None
        try:
            loaded = self.sets.get(set_name)
            if loaded is None or (resource, fmt) not in INTERFACES:
                raise ApiError(404, "NOT_FOUND", f"no interface {resource}.{fmt} of a set {set_name[:100]!r}")
            spec = loaded.spec
            caller, approved = await self._authenticate(call, now)
            record.caller_id, record.key_id = caller.caller_id, caller.key_id
            closed_at = await self._closed_at(spec.set)
            if closed_at is not None and caller.caller_id != TEST_CALLER:
                raise ApiError(410, "SET_CLOSED", f"set {spec.set} was closed (已关闭) at {closed_at.isoformat()}")
            self._authorize(spec, caller, approved)
            sla = tier(spec.sla, caller.roles)
            if not self.limiter.ready(caller.caller_id, spec.set, now):  # the month's count comes from the ledger
                await asyncio.to_thread(self.limiter.load, caller.caller_id, spec.set, now)
            decision = self.limiter.check(caller.caller_id, spec.set, sla, now)
            if not decision.allowed:
                what = "monthly quota" if decision.reason == "quota" else "rate limit"
                raise ApiError(
                    429,
                    "QUOTA_EXCEEDED" if decision.reason == "quota" else "RATE_LIMITED",
                    f"the {what} of set {spec.set} is used up for this caller",
                    None,
                    decision.headers,
                )
            counted = caller
            # A local lake's version is an os.stat once listed; another lake's is a listing over the network.
            version = self._version(spec) if self._local else await asyncio.to_thread(self._version, spec)
            params = call.params()
            if resource == "sample":
                if params:
                    raise bad(params[0][0], "the sample interface takes no parameters")
                query = parse(spec, [("limit", str(spec.sample_rows))], set(caller.roles), page=True,
                              codec=self.codec)  # fmt: skip
                query.limit = spec.sample_rows
            else:
                query = parse(spec, params, set(caller.roles), page=fmt in ("json", "xml"), codec=self.codec,
                              version=version)  # fmt: skip
            headers = {**decision.headers, "X-Request-Id": record.request_id, "X-Dataset-Version": version.version_id}
            if fmt in ("csv", "ndjson"):
                return await asyncio.to_thread(self._stream, spec, query, version, fmt, record, started, headers)
            if self._groupable(spec, query):
                rows, used = await self._grouped(spec, query, version)
            else:
                rows, used = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self._page_rows, spec, query, version
                )
            body, n = self._page_body(spec, query, used, rows, fmt, paged=resource == "rows")
            headers["X-Dataset-Version"] = used.version_id
            record.status, record.rows, record.bytes = 200, n, len(body)
            record.latency_ms = (time.perf_counter() - started) * 1000
            await self.recorder.commit(record)  # committed before the answer leaves
            return Response(body, 200, headers, media_type=MEDIA[fmt])
        except ApiError as exc:
            if counted is not None and exc.status != 429:
                self.limiter.refund(counted.caller_id, set_name, now)
            return await self._refuse(exc, record, started, set_name)
        except Exception:
            log.exception("request %s failed", record.request_id)
            if counted is not None:
                self.limiter.refund(counted.caller_id, set_name, now)
            return await self._refuse(ApiError(500, "INTERNAL_ERROR", "the server could not answer this request; "
                                                                      "quote its request id to the operator"),
                                      record, started, set_name)  # fmt: skip

    async def _refuse(self, exc: ApiError, record: CallRecord, started: float, set_name: str) -> Response:
        body: dict[str, Any] = {"type": "about:blank", "title": exc.code, "status": exc.status, "detail": exc.detail,
                                "request_id": record.request_id}  # fmt: skip
        if exc.parameter:
            body["parameter"] = exc.parameter
        if set_name in self.sets:
            body["set"] = set_name
        payload = formats.dumps(body)
        record.status, record.error_code, record.bytes = exc.status, exc.code, len(payload)
        record.rows = 0
        record.latency_ms = (time.perf_counter() - started) * 1000
        try:
            await self.recorder.commit(record)
        except Exception:
            log.exception("call record of %s not written", record.request_id)
            return Response(status_code=503, headers={"X-Request-Id": record.request_id})
        headers = {**exc.headers, "X-Request-Id": record.request_id}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="govops"'
        return Response(payload, exc.status, headers, media_type="application/problem+json")

    async def _authenticate(self, call: Call, now: datetime) -> tuple[Caller, frozenset[str]]:
        h = call.headers
        result: tuple[Caller, frozenset[str]] | str
        if "x-app-key" in h:
            key_id = h["x-app-key"][:64]
            stamp, row = h.get("x-timestamp", ""), await self._key_row(key_id)
            message = signed_message(call.method, call.path, call.query, stamp)
            result = self.keys.check_signature(key_id, stamp, h.get("x-signature", ""), message, now,
                                               self.config.signature_window, row)  # fmt: skip
        else:
            auth = h.get("authorization", "")
            presented = auth[7:].strip() if auth.lower().startswith("bearer ") else h.get("x-api-key", "")
            if not presented:
                raise ApiError(401, "UNAUTHENTICATED", "an API key is required (Authorization: Bearer <key>)")
            result = self.keys.check(presented, now, await self._key_row(presented.partition(".")[0][:64]))
        if isinstance(result, str):
            raise ApiError(401, "UNAUTHENTICATED", result)
        return result

    async def _closed_at(self, set_name: str) -> datetime | None:
        if not self.states.fresh():  # one refresh at a time; the calls meanwhile wait for it
            if self._state_refresh is None or self._state_refresh.done():
                self._state_refresh = asyncio.ensure_future(asyncio.to_thread(self.states.refresh))
            await self._state_refresh
        return self.states.closed.get(set_name)

    async def _key_row(self, key_id: str) -> dict[str, Any] | None:
        if not key_id:
            return None
        fresh, row = self.keys.cached(key_id)
        return row if fresh else await asyncio.to_thread(self.keys.fetch, key_id)

    @staticmethod
    def _authorize(spec: ApiSetSpec, caller: Caller, approved: frozenset[str]) -> None:
        if caller.allowed_sets is not None and spec.set not in caller.allowed_sets:
            raise ApiError(403, "FORBIDDEN", f"caller {caller.caller_id} may not call set {spec.set}")
        if spec.open_type == "共享" and caller.kind != "department":
            raise ApiError(403, "FORBIDDEN", f"set {spec.set} is shared (共享) with government departments only")
        if spec.open_type == "有条件开放" and spec.set not in approved:
            raise ApiError(403, "FORBIDDEN", f"set {spec.set} is conditionally open (有条件开放): it needs an approved "
                                             f"application of caller {caller.caller_id}")  # fmt: skip

    def _version(self, spec: ApiSetSpec) -> Version:
        try:
            return self.resolver.resolve(spec.dataset)
        except DatasetUnavailable:
            raise ApiError(503, "SET_UNAVAILABLE", f"set {spec.set} has no published data at the moment",
                           None, {"Retry-After": "5"}) from None  # fmt: skip

    # --- grouped keyed lookups ---

    @staticmethod
    def _groupable(spec: ApiSetSpec, query: Query) -> bool:
        """A lookup by the set's key and nothing else (its rows do not depend on the others')."""
        return (
            len(query.filters) == 1
            and query.filters[0].field == spec.key
            and query.filters[0].op == "eq"
            and spec.fields[spec.key].type in ("integer", "string")  # Python equality is DuckDB's
            and query.after is None
            and not query.total
            and query.limit is not None
        )

    def _grouped(self, spec: ApiSetSpec, query: Query, version: Version) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._lookups.put(_Lookup(spec, query, version, future))
        return future

    def _lookup_loop(self) -> None:
        while True:
            first = self._lookups.get()
            batch = [first]
            while len(batch) < 256:
                try:
                    batch.append(self._lookups.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple[Any, ...], list[_Lookup]] = {}
            for lookup in batch:
                q = lookup.query
                shape = (lookup.spec.set, lookup.version.version_id, tuple(q.fields), tuple(q.sort),
                         frozenset(q.masked))  # fmt: skip
                groups.setdefault(shape, []).append(lookup)
            for group in groups.values():
                self._answer_group(group)

    def _answer_group(self, group: list[_Lookup]) -> None:
        head = group[0]
        spec, values = head.spec, list(dict.fromkeys(g.query.filters[0].value for g in group))
        query = Query(head.query.fields, [Filter(spec.key, "in", values)], head.query.sort, None,
                      masked=head.query.masked)  # fmt: skip
        # Sorted by the key alone, each caller's rows share one key value: their order is any
        # order (as the ORDER BY's would be), and DuckDB's sort is a fifth of the query.
        ordered = len(query.sort) > 1
        try:
            cur, used = self._execute(spec, head.version, lambda s: select_sql(spec, query, s, ordered=ordered)[:2])
            by_key: dict[Any, list[tuple[Any, ...]]] = {}
            for row in cur.fetchall():  # in the query's order; the key is the last sort value
                by_key.setdefault(row[-1], []).append(row)
        except BaseException as exc:  # ApiError and the rest: every caller of the group gets it
            _settle([(lookup.future, exc, None) for lookup in group])
            return
        outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        for lookup in group:
            assert lookup.query.limit is not None
            rows = by_key.get(lookup.query.filters[0].value, [])[: lookup.query.limit + 1]
            outcomes.append((lookup.future, None, (rows, used)))
        _settle(outcomes)

    # --- DuckDB ---

    def _source(self, cur: Any, version: Version) -> tuple[str, list[Any]]:
        """The FROM of a query over exactly this version: its in-memory copy once loaded,
        else its files (and the copy starts loading)."""
        table = self._tables.get(version.version_id)
        if table is not None:
            return table, []
        if self.config.memory_rows > 0 and version.version_id not in self._loading:
            with self._lock:
                start = version.version_id not in self._loading
                self._loading.add(version.version_id)
            if start:
                threading.Thread(target=self._load, args=(version,), name="load-version", daemon=True).start()
        return self._files(cur, version)

    def _load(self, version: Version) -> None:
        """Copy a version into a DuckDB table (if it is small enough); keep two per dataset,
        so a query that picked the one before still finds it."""
        import duckdb

        table = f'"v_{version.version_id}"'
        try:
            cur = self.duck.cursor()
            source, head = self._files(cur, version)
            rows = cur.execute(f"SELECT count(*) FROM {source}", head).fetchone()[0]
            if rows > self.config.memory_rows:
                return  # stays in _loading: not tried again
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM {source}", head)
            # An index on the set's key: a keyed lookup reads one row, not a row group.
            for key in sorted({s.spec.key for s in self.sets.values() if s.spec.dataset == version.dataset}):
                cur.execute(f'CREATE INDEX IF NOT EXISTS "i_{version.version_id}_{key}" ON {table} ("{key}")')
        except duckdb.Error:  # e.g. the version was replaced while loading: its queries read its files
            log.warning("version %s of %s not loaded into memory", version.version_id, version.dataset)
            return  # stays in _loading: not tried again
        with self._lock:
            self._tables[version.version_id] = table
            loaded = self._generations.setdefault(version.dataset, [])
            loaded.append(version.version_id)
            dropped = loaded[:-2]
            del loaded[:-2]
            for old in dropped:
                self._tables.pop(old, None)
        for old in dropped:
            cur.execute(f'DROP TABLE IF EXISTS "v_{old}"')

    def _files(self, cur: Any, version: Version) -> tuple[str, list[Any]]:
        """The FROM of a query over exactly this version's files."""
        if version.local:
            return "read_parquet(?)", [list(version.files)]
        import pyarrow.dataset as ds
        from pyarrow import fs

        if self._fs is None:
            self._fs = fs.FileSystem.from_uri(self.config.lake_root)[0]
        cur.register("version_files", ds.dataset(list(version.files), format="parquet", filesystem=self._fs))
        return "version_files", []

    @staticmethod
    def _run(cur: Any, sql: str, params: list[Any], arrow: bool) -> Any:
        """Rows (a DuckDB result), or with ``arrow`` an Arrow batch reader."""
        return cur.sql(sql, params=params).to_arrow_reader(50_000) if arrow else cur.execute(sql, params)

    def _execute(self, spec: ApiSetSpec, version: Version, build: Any, arrow: bool = False) -> tuple[Any, Version]:
        """Run ``build(source) -> (sql, params)``; if the files vanished (a swap mid-query) and
        the query has no cursor, once more on the new version."""
        import duckdb

        for attempt in (0, 1):
            cur = self.duck.cursor()
            source, head = self._source(cur, version)
            sql, params = build(source)
            try:
                return self._run(cur, sql, head + params, arrow), version
            except (duckdb.IOException, duckdb.CatalogException):
                newer = self._version(spec)
                if attempt or newer.version_id == version.version_id:
                    raise ApiError(
                        503,
                        "SET_UNAVAILABLE",
                        f"set {spec.set}: the data changed during the query; try again",
                        None,
                        {"Retry-After": "1"},
                    ) from None
                version = newer
        raise AssertionError("unreachable")

    def _page_rows(self, spec: ApiSetSpec, query: Query, version: Version) -> tuple[list[Any], Version]:
        """The rows of a page (one more than the limit: is there a next page) and the version
        they come from; with ``total`` that version's count too, as the last element."""
        if query.after is not None:  # a cursor pins the version it was issued for
            cur, used = self._execute_pinned(spec, version, lambda s: select_sql(spec, query, s)[:2])
        else:
            cur, used = self._execute(spec, version, lambda s: select_sql(spec, query, s)[:2])
        rows = cur.fetchall()
        if query.total:
            rows.append(self._execute_pinned(spec, used, lambda s: count_sql(query, s))[0].fetchone()[0])
        return rows, used

    def _page_body(self, spec: ApiSetSpec, query: Query, used: Version, rows: list[Any], fmt: str,
                   paged: bool) -> tuple[bytes, int]:  # fmt: skip
        n_fields = len(query.fields)
        total = rows.pop() if query.total else None
        assert query.limit is not None
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        meta: dict[str, Any] = {"set": spec.set, "version": used.version_id, "count": len(rows)}
        if paged:
            last = rows[-1][n_fields:] if rows else None
            meta["next_cursor"] = (
                self.codec.encode(used.version_id, query.binding(spec.set), list(last))
                if more and last is not None
                else None
            )
            if query.total:
                meta["total"] = total
        out = [r[:n_fields] for r in rows]
        body = (
            formats.page_json(meta, query.fields, out) if fmt == "json" else formats.page_xml(meta, query.fields, out)
        )
        return body, len(out)

    def _execute_pinned(self, spec: ApiSetSpec, version: Version, build: Any,
                        arrow: bool = False) -> tuple[Any, Version]:  # fmt: skip
        import duckdb

        cur = self.duck.cursor()
        source, head = self._source(cur, version)
        sql, params = build(source)
        try:
            return self._run(cur, sql, head + params, arrow), version
        except (duckdb.IOException, duckdb.CatalogException):
            raise ApiError(409, "CURSOR_STALE", "parameter 'cursor': the dataset was republished during this query; "
                                                "start again without a cursor", "cursor") from None  # fmt: skip

    def _stream(self, spec: ApiSetSpec, query: Query, version: Version, fmt: str, record: CallRecord,
                started: float, headers: dict[str, str]) -> Response:  # fmt: skip
        run = self._execute_pinned if query.after is not None else self._execute
        reader, used = run(spec, version, lambda s: select_sql(spec, query, s)[:2], arrow=True)
        names = query.fields
        record.status, record.completed = 200, False
        self.recorder.write(record)  # before the first byte; rows and bytes follow when it ends

        def body() -> Iterator[bytes]:
            sent, rows = 0, 0

            def batches() -> Iterator[Any]:
                nonlocal rows
                for batch in reader:
                    if query.limit is not None and rows + batch.num_rows > query.limit:
                        batch = batch.slice(0, query.limit - rows)
                    rows += batch.num_rows
                    yield batch
                    if query.limit is not None and rows >= query.limit:
                        return

            chunks = (
                formats.csv_chunks(batches(), names, query.bom)
                if fmt == "csv"
                else formats.ndjson_chunks(batches(), names)
            )
            completed = False
            try:
                for chunk in chunks:
                    sent += len(chunk)
                    yield chunk
                completed = True
            finally:
                record.rows, record.bytes, record.completed = rows, sent, completed
                record.latency_ms = (time.perf_counter() - started) * 1000
                self.recorder.write(record, finish=True)  # before the stream's end reaches the client

        headers = {**headers, "X-Dataset-Version": used.version_id}
        if fmt == "csv":
            headers["Content-Disposition"] = f'attachment; filename="{spec.set}.csv"'
        return StreamingResponse(body(), 200, headers, media_type=MEDIA[fmt])

    def api_list(self) -> list[dict[str, Any]]:
        if not self.states.fresh():
            self.states.refresh()
        closed = self.states.closed
        return [{"set": s.spec.set, "title": s.spec.title, "open_type": s.spec.open_type, "catalog": s.spec.catalog,
                 "open_state": "closed" if s.spec.set in closed else "open",
                 "closed_at": closed[s.spec.set].isoformat() if s.spec.set in closed else None,
                 "interfaces": [f"/api/sets/{s.spec.set}/{r}.{f}" for r, f in INTERFACES],
                 "max_page_size": s.spec.max_page_size, "spec_sha256": s.sha256,
                 "docs": f"/docs/{s.spec.set}"} for s in self.sets.values()]  # fmt: skip


def _page(body: str) -> Response:
    return Response(body, 200, {"Content-Security-Policy": docs.CSP}, media_type="text/html; charset=utf-8")


_INTERFACE = re.compile(r"/api/sets/([^/]{1,200})/([a-z]{1,20})\.([a-z]{1,20})")


class SharingApp:
    """The ASGI app: a set's interfaces (GET ``/api/sets/<set>/<resource>.<format>``) straight
    to :meth:`Server.call`, everything else (the API list, ``/docs``, ``/openapi.json``) to
    the FastAPI app, which declares the interfaces too (docs.add_routes)."""

    def __init__(self, api: FastAPI, server: Server) -> None:
        self.api, self.server = api, server
        self.state = api.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = _INTERFACE.fullmatch(scope["path"])
            if found is not None:
                response = await self.server.call(Call.of(scope), *found.groups())
                await response(scope, receive, send)
                return
        await self.api(scope, receive, send)  # type: ignore[arg-type]


def create_app(config: ServerConfig | None = None) -> SharingApp:
    """The app; the sets are read from ``config.apis_dir`` once, at start."""
    from contextlib import asynccontextmanager

    server = Server(config or default_config())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        server.recorder.close()  # the records still queued are committed

    app = FastAPI(title=docs.APP_TITLE, version="1", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.server = server

    @app.get("/api/sets", summary="API接口列表")
    def api_list() -> JSONResponse:
        return JSONResponse({"sets": server.api_list()})

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    specs = [loaded.spec for loaded in server.sets.values()]

    @app.get("/docs", include_in_schema=False)
    def documentation() -> Response:
        return _page(docs.render_page(app.openapi(), specs))

    @app.get("/docs/{set_name}", include_in_schema=False)
    def set_documentation(set_name: str) -> Response:
        if set_name not in server.sets:
            return JSONResponse({"detail": f"no set {set_name[:100]!r}"}, 404)
        return _page(docs.render_page(app.openapi(), [server.sets[set_name].spec]))

    async def handler(request: Request, set_name: str, resource: str, fmt: str) -> Response:
        return await server.call(Call.of(request.scope), set_name, resource, fmt)

    for spec in specs:
        docs.add_routes(app, handler, spec)
    return SharingApp(app, server)
