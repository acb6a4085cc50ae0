"""The console's ledger connections: one pooled engine per ledger URL in the api-server
process (the pages, the metrics and the operator extra links share it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine

from govops import settings

_engines: dict[str, Engine] = {}


def engine() -> Engine:
    url = settings.connection_url(settings.LEDGER_CONN_ID)
    if url not in _engines:
        _engines[url] = create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True)
    return _engines[url]


@contextmanager
def reading() -> Iterator[Connection]:
    with engine().connect() as conn:
        yield conn
