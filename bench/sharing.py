"""The sharing API over HTTP on an N-row dataset (default 10,000,000), call records on.

- Keyed lookups (``rows.json?id=<random>``), once the server's in-memory copy of the
  version is loaded (``ServerConfig.memory_rows``; the warm-up's seconds are printed):
  requests/s and p50 / p99 latency with C keep-alive connections (default 8, 16 and 32) of one
  lean client process (asyncio on uvloop, raw HTTP/1.1; its own CPU is printed), each
  connection sending its next request when the answer came (goals: at least 1,500
  requests/s, p99 under 25 ms). The client runs on the same machine as the server and
  shares its cores.
- The ceiling: the same client and connections against a bare FastAPI app on uvicorn
  answering a constant (:func:`ceiling_app`), what this machine allows at most.
- Page 10,000 against page 1 (100 rows a page, in key order and in ``established_on``
  order): the median of R calls each (goal: within 1.5x). The page-10,000 cursor is signed
  here with the server's cursor key, as if 9,999 pages had been walked.
- CSV export MB/s (``rows.csv`` of M rows) next to DuckDB's own ``COPY (SELECT ... ORDER BY
  id LIMIT M) TO`` of the same rows and columns (goal: at least 0.5x).
- The cost of call records: the keyed-lookup load against a second server process started
  with ``ServerConfig(record_calls=False)``, at each number of connections, the two servers
  called in turns (three each) so that the machine's changing load falls on both alike
  (goal: under 10 %). That switch exists only in
  this file's ``serve`` command; ``python -m govops.sharing serve`` has none. The records
  server's ``api_call`` rows are counted against the requests it answered.

The dataset is sorted by its key ``id`` and written in row groups of ``--row-group`` rows
(default 100,000, as ``govops.sharing.sample.publish_table`` writes). ``--memory-rows 0``
serves it from its Parquet files only: a keyed lookup then decodes the row group whose
statistics hold the key.

    ./dev python -m bench.sharing [--rows N] [--clients C,C] [--seconds S] [--row-group R]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SET = "bench_persons"
CLIENTS = (8, 16, 32)  # keep-alive connections of the load client
DATASET = "sharing/bench/legal_persons"
SPEC = f"""
set: {SET}
title: 基准法人
dataset: {DATASET}
catalog: raw/frontdb/market_regulation/legal_persons_incremental
open_type: 共享
key: id
fields:
  id: {{type: integer}}
  uscc: {{type: string}}
  name: {{type: string}}
  legal_representative: {{type: string}}
  registered_address: {{type: string}}
  established_on: {{type: date}}
filters: {{id: [eq, in], established_on: [gte, lt]}}
sort: [established_on]
max_page_size: 1000
sla: {{rate_per_second: 1000000, quota_per_month: 1000000000}}
"""


def make_table(n: int) -> Any:
    """n legal-persons-like rows, built column-wise with Arrow."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(np.arange(1, n + 1, dtype=np.int64))
    text = pc.cast(ids, pa.string())
    rng = np.random.default_rng(7)
    days = rng.integers(0, 12_000, n).astype("int32") + 7_300  # 1990 .. 2022
    return pa.table({
        "id": ids,
        "uscc": pc.binary_join_element_wise("913101180", pc.utf8_lpad(text, 9, "0"), ""),
        "name": pc.binary_join_element_wise("上海企业", text, "有限公司", ""),
        "legal_representative": pc.binary_join_element_wise("王", text, ""),
        "registered_address": pc.binary_join_element_wise("上海市青浦区某路", text, "号", ""),
        "established_on": pa.array(days, pa.int32()).cast(pa.date32()),
    })  # fmt: skip


def serve(port: int, mode: str) -> None:
    """The API server as ``python -m govops.sharing serve`` runs it, with the records switch
    (``on`` / ``off``), or (``ceiling``) :func:`ceiling_app`."""
    import uvicorn

    from govops.sharing.app import create_app, default_config

    if mode == "ceiling":
        app: Any = ceiling_app()
    else:
        config = default_config()
        config.record_calls = mode == "on"
        app = create_app(config)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def ceiling_app() -> Any:
    """A bare FastAPI app on uvicorn answering a constant: what this machine, this client and
    this framework allow at most."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/sets/{set_name}/rows.json")
    async def constant(set_name: str) -> Response:
        return Response(b'{"count":1}', 200, media_type="application/json")

    return app


async def _connection(port: int, key: str, n: int, end: float, seed: int, latencies: list[float],
                      errors: list[int]) -> None:  # fmt: skip
    """One keep-alive HTTP/1.1 connection sending lookups one after the other until ``end``."""
    import asyncio

    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    tail = f" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    while time.perf_counter() < end:
        started = time.perf_counter()
        writer.write(f"GET /api/sets/{SET}/rows.json?id={rng.randint(1, n)}".encode() + tail)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
        body = await reader.readexactly(length)
        latencies.append((time.perf_counter() - started) * 1000)
        if not head.startswith(b"HTTP/1.1 200") or b'"count":1' not in body:
            errors[0] += 1
    writer.close()


def load(url: str, key: str, n: int, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` keep-alive connections of one asyncio client process (this one, on uvloop):
    requests/s, p50 / p99 ms and the client's own CPU (a share of one core)."""
    import asyncio
    import resource

    import uvloop

    port = int(url.rsplit(":", 1)[1])
    latencies: list[float] = []
    errors = [0]

    async def run() -> None:
        end = time.perf_counter() + seconds
        await asyncio.gather(*(_connection(port, key, n, end, i, latencies, errors) for i in range(clients)))

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    uvloop.run(run())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors[0], "rps": len(latencies) / wall, "p50": q[49],
            "p99": q[98], "client_cpu": cpu / wall, "wall": wall, "latencies": latencies}  # fmt: skip


def _warm_up(url: str, key: str, rows: int, limit_s: float = 120) -> float:
    """Lookups until the in-memory copy of the version answers (three in a row under 20 ms,
    or ``limit_s``); the seconds it took."""
    import httpx

    started, fast = time.perf_counter(), 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        while fast < 3 and time.perf_counter() - started < limit_s:
            t = time.perf_counter()
            client.get(f"/api/sets/{SET}/rows.json", params={"id": str(random.randint(1, rows))}).raise_for_status()
            fast = fast + 1 if time.perf_counter() - t < 0.02 else 0
            time.sleep(0.2)
    return time.perf_counter() - started


ROUNDS = 3  # turns of records on and records off


def _pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one: requests/s over their time, quantiles of all their latencies."""
    latencies = sorted(x for r in runs for x in r["latencies"])
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": sum(r["errors"] for r in runs), "p50": q[49], "p99": q[98],
            "rps": len(latencies) / sum(r["wall"] for r in runs),
            "client_cpu": sum(r["client_cpu"] * r["wall"] for r in runs) / sum(r["wall"] for r in runs)}  # fmt: skip


def _print(label: str, c: int, f: dict[str, Any], written: int | None) -> None:
    records = f"{written:,} call records; " if written is not None else ""
    print(f"keyed lookups, {label}, {c} connections: {f['rps']:,.0f} requests/s, p50 {f['p50']:.1f} ms, "
          f"p99 {f['p99']:.1f} ms ({f['requests']:,} requests, {f['errors']} errors; {records}client CPU "
          f"{100 * f['client_cpu']:.0f}% of a core; load {os.getloadavg()[0]:.1f})")  # fmt: skip


class Server:
    def __init__(self, env: dict[str, str], mode: str, log: Path) -> None:
        from tests.sharing.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.sharing", "serve", "--port", str(self.port),
                                          "--records", mode],
                                         env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the bench server did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _alternate(client: Any, path: str, a: dict[str, str], b: dict[str, str], repeat: int) -> list[tuple[float, float]]:
    """(median, p99) ms of GET path?a and path?b, called in turns (the machine's load hits both alike)."""
    times: list[list[float]] = [[], []]
    for _ in range(repeat):
        for i, params in enumerate((a, b)):
            started = time.perf_counter()
            client.get(path, params=params).raise_for_status()
            times[i].append((time.perf_counter() - started) * 1000)
    return [(statistics.median(t), statistics.quantiles(t, n=100)[98]) for t in times]


def bench_sharing(url: str, rows: int, clients: tuple[int, ...] = CLIENTS, seconds: float = 15,
                  export_rows: int = 2_000_000, repeat: int = 20, row_group: int = 100_000) -> None:  # fmt: skip
    from sqlalchemy import create_engine, text

    from govops import settings
    from govops.sharing import callers
    from govops.sharing.sample import publish_table
    from govops.sharing.spec import load_set
    from govops.sharing.versions import VersionResolver

    work = Path(tempfile.mkdtemp(prefix="bench-sharing-", dir=settings.home()))
    try:
        lake, apis = work / "lake", work / "apis"
        apis.mkdir(parents=True)
        (apis / f"{SET}.yaml").write_text(SPEC, encoding="utf-8")
        started = time.perf_counter()
        table = make_table(rows)
        publish_table(lake.as_uri(), DATASET, table, row_group_size=row_group)
        del table
        version = VersionResolver(lake.as_uri()).resolve(DATASET)
        size = sum(os.path.getsize(f) for f in version.files)
        print(f"sharing: {rows:,} rows in row groups of {row_group:,} sorted by id, {size / 1e6:.0f} MB of Parquet "
              f"in {time.perf_counter() - started:.1f}s; "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
        engine = create_engine(url)
        callers.add_caller(engine, "bench", "基准部门", "department", "bench", [])
        key = callers.issue_key(engine, "bench")
        env = {**os.environ, "GOVOPS_DATABASE_URL": url, "GOVOPS_LAKE_ROOT": lake.as_uri(),
               "GOVOPS_APIS_DIR": str(apis)}  # fmt: skip
        ceiling = Server(env, "ceiling", work / "server.log")
        try:
            for c in clients:
                _print("bare FastAPI constant", c, load(ceiling.url, key, rows, c, seconds), None)
        finally:
            ceiling.stop()
        # Records on and off: both servers up, called in turns of `seconds / ROUNDS`, so the
        # machine's changing load (other work shares it) falls on both alike.
        servers = {mode: Server(env, mode, work / "server.log") for mode in ("on", "off")}
        try:
            warm = {mode: _warm_up(server.url, key, rows) for mode, server in servers.items()}
            print(f"warm-up (the in-memory copy): {warm['on']:.0f}s and {warm['off']:.0f}s")
            for c in clients:
                runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
                with engine.connect() as conn:
                    before = conn.execute(text("SELECT count(*) FROM govops.api_call")).scalar_one()
                for _ in range(ROUNDS):
                    for mode, server in servers.items():
                        runs[mode].append(load(server.url, key, rows, c, seconds / ROUNDS))
                with engine.connect() as conn:
                    written = conn.execute(text("SELECT count(*) FROM govops.api_call")).scalar_one() - before
                pooled = {mode: _pool(found) for mode, found in runs.items()}
                _print("records on", c, pooled["on"], written)
                _print("records off", c, pooled["off"], None)
                on, off = pooled["on"]["rps"], pooled["off"]["rps"]
                turns = {mode: " ".join(f"{r['rps']:,.0f}" for r in found) for mode, found in runs.items()}
                print(f"cost of call records, {c} connections: {100 * (1 - on / off):.1f}% of the throughput "
                      f"({on:,.0f} vs {off:,.0f} requests/s over {ROUNDS} turns each; per turn {turns['on']} vs "
                      f"{turns['off']}; goal under 10%)")  # fmt: skip
            _pages(servers["on"].url, key, version, rows, repeat, load_set(apis / f"{SET}.yaml").spec)
            _export(servers["on"].url, key, version.files, min(export_rows, rows), work)
        finally:
            for server in servers.values():
                server.stop()
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pages(url: str, key: str, version: Any, rows: int, repeat: int, spec: Any) -> None:
    import duckdb
    import httpx

    from govops.security.signing import signing_key
    from govops.sharing.query import CursorCodec, parse

    codec = CursorCodec(signing_key("govops-sharing:cursor")[1])
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    path = f"/api/sets/{SET}/rows.json"
    page = min(10_000, rows // 100)
    for sort in ("id", "established_on"):
        params = {"limit": "100", **({"sort": sort} if sort != "id" else {})}
        query = parse(spec, list(params.items()), set(), page=True, codec=codec)
        # The sort values of the last row before page `page`, as the page before's cursor holds them.
        columns = ", ".join(name for name, _ in query.sort)
        last = duckdb.execute(f"SELECT {columns} FROM read_parquet(?) ORDER BY {columns} LIMIT 1 OFFSET ?",
                              [list(version.files), (page - 1) * 100 - 1]).fetchone()  # fmt: skip
        cursor = codec.encode(version.version_id, query.binding(SET), list(last))
        deep = client.get(path, params={**params, "cursor": cursor}).json()
        first = client.get(path, params=params).json()
        assert deep["count"] == first["count"] == 100, deep
        p1, pn = _alternate(client, path, params, {**params, "cursor": cursor}, repeat)
        print(f"page {page:,} vs page 1, sort {sort}: {pn[0]:.1f} ms vs {p1[0]:.1f} ms median = {pn[0] / p1[0]:.2f}x "
              f"(p99 {pn[1]:.1f} vs {p1[1]:.1f} ms; goal within 1.5x)")  # fmt: skip
    client.close()


def _export(url: str, key: str, files: tuple[str, ...], m: int, work: Path) -> None:
    import duckdb
    import httpx

    cols = "id,uscc,name,legal_representative,registered_address,established_on"
    started, size = time.perf_counter(), 0
    with httpx.stream("GET", f"{url}/api/sets/{SET}/rows.csv", params={"fields": cols, "limit": str(m)},
                      headers={"Authorization": f"Bearer {key}"}, timeout=600) as response:  # fmt: skip
        response.raise_for_status()
        for chunk in response.iter_raw(1 << 20):
            size += len(chunk)
    http_s = time.perf_counter() - started
    print(f"CSV export of {m:,} rows over HTTP: {size / 1e6:.0f} MB in {http_s:.1f}s = {size / 1e6 / http_s:.0f} MB/s")
    con = duckdb.connect(config={"threads": 2})
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [list(files)])  # as the server's memory copy
    for label, source in (("from the Parquet files", "read_parquet(?)"), ("from a table in memory", "t")):
        target = work / "copy.csv"
        started = time.perf_counter()
        con.execute(f"COPY (SELECT {cols} FROM {source} ORDER BY id LIMIT {m}) TO '{target}' (HEADER)",
                    [list(files)] if "?" in source else [])  # fmt: skip
        copy_s = time.perf_counter() - started
        copy_size = target.stat().st_size
        print(f"  DuckDB COPY TO {label}: {copy_size / 1e6:.0f} MB in {copy_s:.1f}s = "
              f"{copy_size / 1e6 / copy_s:.0f} MB/s; HTTP / COPY = {(size / http_s) / (copy_size / copy_s):.2f}x "
              "(goal at least 0.5x)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sharing", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--records", choices=("on", "off", "ceiling"), required=True)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--clients", type=lambda v: tuple(int(c) for c in v.split(",")), default=CLIENTS,
                        help="connections, comma-separated (default 8,16,32)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--export-rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="calls of each page")
    parser.add_argument("--row-group", type=int, default=100_000, help="Parquet rows per row group")
    parser.add_argument("--memory-rows", type=int, default=10_000_000, help="the server's memory_rows (0: Parquet)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.records)
        return
    os.environ["GOVOPS_API_MEMORY_ROWS"] = str(args.memory_rows)
    from bench import fresh_ledger

    bench_sharing(fresh_ledger("govops_bench_sharing"), args.rows, args.clients, args.seconds, args.export_rows,
                  args.repeat, args.row_group)  # fmt: skip


if __name__ == "__main__":
    main()
