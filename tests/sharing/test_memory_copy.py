"""The server's in-memory copy of a published version: the same rows as its files (masking
included), only for versions of at most memory_rows rows, the last two per dataset kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from govops.sharing.app import Server, ServerConfig
from govops.sharing.query import CursorCodec, parse, select_sql
from govops.sharing.sample import SAMPLE_DATASET, publish_table
from tests.sharing.server import copy_sample_set
from tests.sharing.test_api import SENTINEL_NAME, legal_persons


@pytest.fixture
def make_server(ledger_url: str, tmp_path: Path) -> Iterator:
    lake, apis = tmp_path / "lake", tmp_path / "apis"
    apis.mkdir()
    copy_sample_set(apis)
    engine = create_engine(ledger_url)
    servers: list[Server] = []

    def make(memory_rows: int) -> Server:
        config = ServerConfig(lake.as_uri(), apis, engine, b"k" * 32, memory_rows=memory_rows)
        servers.append(Server(config))
        return servers[-1]

    make.lake = lake  # type: ignore[attr-defined]
    yield make
    for server in servers:
        server.recorder.close()
    engine.dispose()


def _loaded(server: Server) -> None:
    for thread in threading.enumerate():
        if thread.name == "load-version":
            thread.join(timeout=30)


def _rows(server: Server, version, roles: set[str], files: bool = False) -> tuple[str, list]:
    spec = server.sets["legal_persons"].spec
    query = parse(spec, [("limit", "1000"), ("sort", "-established_on")], roles, page=True, codec=CursorCodec(b"k"))
    cur = server.duck.cursor()
    source, head = server._files(cur, version) if files else server._source(cur, version)
    sql, params, _ = select_sql(spec, query, source)
    return source, cur.execute(sql, head + params).fetchall()


def test_the_memory_copy_answers_what_the_files_answer(make_server) -> None:
    publish_table(make_server.lake.as_uri(), SAMPLE_DATASET, legal_persons(300))
    server = make_server(memory_rows=1000)
    version = server.resolver.resolve(SAMPLE_DATASET)
    assert _rows(server, version, set())[0] == "read_parquet(?)"  # and the copy starts loading
    _loaded(server)
    for roles in (set(), {"market_regulation"}):
        _, from_files = _rows(server, version, roles, files=True)
        source, from_memory = _rows(server, version, roles)
        assert source == f'"v_{version.version_id}"'
        assert from_memory == from_files and len(from_memory) == 300
        names = {row[3] for row in from_memory}
        assert (SENTINEL_NAME in names) == bool(roles)  # masked for a role without the right

    # Three versions later, the two last ones are in memory, the first is gone.
    ids = []
    for n in (301, 302, 303):
        publish_table(make_server.lake.as_uri(), SAMPLE_DATASET, legal_persons(n))
        time.sleep(0.01)  # a new directory mtime per version
        newer = server.resolver.resolve(SAMPLE_DATASET)
        _rows(server, newer, set())
        _loaded(server)
        ids.append(newer.version_id)
        assert len(_rows(server, newer, set())[1]) == n
    tables = {r[0] for r in server.duck.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {f"v_{i}" for i in ids[-2:]}


def test_a_version_above_memory_rows_stays_on_its_files(make_server) -> None:
    publish_table(make_server.lake.as_uri(), SAMPLE_DATASET, legal_persons(300))
    server = make_server(memory_rows=299)
    version = server.resolver.resolve(SAMPLE_DATASET)
    _rows(server, version, set())
    _loaded(server)
    assert _rows(server, version, set())[0] == "read_parquet(?)"
    assert server.duck.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 0
