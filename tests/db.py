"""Reading a real database from tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text


def rows(url: str, sql: str, **params: Any) -> list[tuple]:
    """All rows of one query, as tuples, on a connection of its own."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(text(sql), params)]
    engine.dispose()
    return found
