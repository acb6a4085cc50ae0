"""Benchmarks: ``./dev bench`` prints figures; nothing here is a test."""

from __future__ import annotations

import subprocess
import time
from typing import Any


def spark_submit(cmd: list[str], manifest_uri: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a job's spark-submit command; its manifest, with the command's wall time added
    as ``wall_s`` (the job's own timings leave out the JVM start-up)."""
    from govops.spark import manifest as manifests

    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(manifests.read(manifest_uri).get("error") or result.stderr[-3000:])
    manifest = manifests.read(manifest_uri)
    manifest["wall_s"] = wall
    return manifest


def fresh_ledger(name: str = "govops_bench") -> str:
    """A new, migrated ledger database ``name`` (dropped first if it exists): its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from govops import settings
    from govops.ledger.migrate import upgrade

    server = make_url(settings.connection_url(settings.LEDGER_CONN_ID))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url
