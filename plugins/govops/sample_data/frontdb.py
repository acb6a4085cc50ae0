"""Load the sample tables into the front-end database (前置库), one schema per department.

Tables are replaced inside one transaction and filled with COPY, so a reload is
idempotent and a failed load leaves the previous tables in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from govops.sample_data.generator import SampleFrames

if TYPE_CHECKING:
    import pandas as pd

TABLES: dict[str, str] = {
    "public_security.persons": """
        id bigint PRIMARY KEY, name varchar(64), gender varchar(4), id_number varchar(32),
        birth_date date, phone varchar(32), address_id bigint, address text, updated_at timestamptz NOT NULL""",
    "market_regulation.legal_persons": """
        id bigint PRIMARY KEY, uscc varchar(32), name varchar(200), legal_representative varchar(64),
        registered_address text, address_id bigint, established_on date, updated_at timestamptz NOT NULL""",
    "planning_resources.addresses": """
        id bigint PRIMARY KEY, province varchar(16), city varchar(16), district varchar(16), town varchar(32),
        road varchar(64), house_number varchar(32), address text, lon double precision, lat double precision,
        lon_gcj02 double precision, lat_gcj02 double precision, updated_at timestamptz NOT NULL""",
}
CHUNK_ROWS = 200_000


def _copy(cur, table: str, frame: pd.DataFrame) -> None:  # cur: psycopg.Cursor
    columns = ", ".join(frame.columns)
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        for start in range(0, len(frame), CHUNK_ROWS):
            # Timestamps are UTC wall times; say so, or PostgreSQL reads them in its own zone.
            chunk = frame.iloc[start : start + CHUNK_ROWS]
            copy.write(chunk.to_csv(index=False, header=False, date_format="%Y-%m-%d %H:%M:%S+00"))


def load_frontdb(database_url: str, frames: SampleFrames) -> dict[str, int]:
    """Replace the sample tables and return their row counts, as read back from the database."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(drivername="postgresql")
    data = {
        "public_security.persons": frames.persons,
        "market_regulation.legal_persons": frames.legal_persons,
        "planning_resources.addresses": frames.addresses,
    }
    counts: dict[str, int] = {}
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn, conn.cursor() as cur:
        for table, ddl in TABLES.items():
            schema = table.split(".")[0]
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} ({ddl})")
            _copy(cur, table, data[table])
        conn.commit()
        for table in TABLES:
            cur.execute(f"ANALYZE {table}")
            counts[table] = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        conn.commit()
    return counts
