"""Shared fixtures: a fresh, migrated ledger database per test module on the real
PostgreSQL server ``./dev`` provides, a temporary lake, and the front-end database."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from govops import settings

REPO = Path(__file__).resolve().parent.parent

# The tests' own master key (govops.security.keys): a connections file of Airflow's local-
# filesystem secrets backend in a temporary folder, set before anything loads Airflow's
# backends, so tests never touch the developer's key and can rotate theirs.
MASTER_KEYS_FILE = Path(tempfile.mkdtemp(prefix="govops-test-secrets-")) / "connections.json"


def write_master_keys(current: tuple[int, bytes], *previous: tuple[int, bytes]) -> None:
    """The test master key's connections: the current version and, after a rotation, older ones."""
    def conn(version: int, key: bytes) -> dict:
        return {"conn_type": "generic", "password": base64.b64encode(key).decode(), "extra": {"version": version}}

    body = {"govops_master_key": conn(*current), **{f"govops_master_key_v{v}": conn(v, k) for v, k in previous}}
    MASTER_KEYS_FILE.write_text(json.dumps(body))


write_master_keys((1, os.urandom(32)))
os.environ.pop("AIRFLOW_CONN_GOVOPS_MASTER_KEY", None)
os.environ["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
os.environ["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({"connections_file_path": str(MASTER_KEYS_FILE)})

# Spark defaults of the tests' spark-submit runs (SPARK_CONF_DIR/spark-defaults.conf, read by
# every job the tests start, in Airflow tasks too): their data is small, so the JVM's quick
# compiler, no web UI and few shuffle partitions: a quarter to a third off a job's wall time
# here. A developer's own SPARK_CONF_DIR wins.
SPARK_TEST_DEFAULTS = """spark.ui.enabled false
spark.driver.extraJavaOptions -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
spark.sql.shuffle.partitions 4
"""
if "SPARK_CONF_DIR" not in os.environ:
    _spark_conf = Path(tempfile.mkdtemp(prefix="govops-test-spark-conf-"))
    (_spark_conf / "spark-defaults.conf").write_text(SPARK_TEST_DEFAULTS)
    os.environ["SPARK_CONF_DIR"] = str(_spark_conf)

if os.environ.get("PYTEST_XDIST_WORKER"):  # before anything imports Airflow
    from tests.workers import isolate

    isolate(os.environ["PYTEST_XDIST_WORKER"])


def _server_url() -> str:
    try:
        return settings.connection_url(settings.LEDGER_CONN_ID)
    except settings.ConfigError as exc:
        pytest.exit(f"{exc}\nRun the tests with ./dev test", returncode=2)


@pytest.fixture
def master() -> Iterator[bytes]:
    """A fresh current master key (version 1) for the test; the file is restored afterwards."""
    saved = MASTER_KEYS_FILE.read_text()
    key = os.urandom(32)
    write_master_keys((1, key))
    yield key
    MASTER_KEYS_FILE.write_text(saved)


_template: list[str] = []  # the migrated ledger every test database is copied from


def new_ledger_database(prefix: str) -> str:
    """A new ledger database, a copy of one migrated once per process (``CREATE DATABASE
    ... TEMPLATE``: a fraction of a second, where running the migrations takes seconds)."""
    from govops.ledger.migrate import upgrade

    server = make_url(_server_url())
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not _template:
                template = f"govops_template_{uuid.uuid4().hex[:8]}"
                conn.execute(text(f'CREATE DATABASE "{template}"'))
                upgrade(server.set(database=template).render_as_string(hide_password=False))
                _template.append(template)
            name = f"{prefix}_{uuid.uuid4().hex[:8]}"
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_template[0]}"'))
    finally:
        admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def _drop_the_template() -> Iterator[None]:
    yield
    if _template:
        drop_database(make_url(_server_url()).set(database=_template[0]).render_as_string(hide_password=False))


@pytest.fixture(scope="module")
def ledger_url() -> Iterator[str]:
    """A ledger database of the test module's own, dropped after it. Per module, not per
    session: a worker runs modules of any kind one after the other, and their DAG runs share
    run ids (``manual__<logical date>``), which the ledger's rows are found by."""
    url = new_ledger_database("govops_test")
    yield url
    drop_database(url)


@pytest.fixture
def fresh_ledger() -> Iterator[Engine]:
    """A database of its own for one test (settlement periods may not overlap)."""
    yield from own_ledger()


def own_ledger() -> Iterator[Engine]:
    """A new migrated ledger database, dropped afterwards (for fixtures of any scope)."""
    url = new_ledger_database("govops_fresh")
    engine = create_engine(url)
    yield engine
    engine.dispose()
    drop_database(url)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Engine]:
    engine = create_engine(ledger_url)
    yield engine
    engine.dispose()


@pytest.fixture
def isolated_env(ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the ledger at the test database and the lake at a temporary directory."""
    lake = tmp_path / "lake"
    lake.mkdir()
    monkeypatch.setenv("GOVOPS_DATABASE_URL", ledger_url)
    monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_DB", ledger_url)
    monkeypatch.setenv("GOVOPS_LAKE_ROOT", lake.as_uri())
    return lake


@pytest.fixture(scope="session")
def source_url() -> str:
    return settings.connection_url(settings.SOURCE_CONN_ID)


def pytest_report_header() -> list[str]:
    return [f"govops home: {settings.home()}", f"JAVA_HOME: {os.environ.get('JAVA_HOME')}"]


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One in-process Spark session for every test that only needs a session (not a
    spark-submit job): a JVM start costs seconds, so the test files share it."""
    import logging

    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("govops-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.log.level", "WARN").getOrCreate())  # fmt: skip
    yield session
    session.stop()
    # py4j logs its gateway's close when Python exits, after pytest closed the stream
    logging.getLogger("py4j.clientserver").setLevel(logging.WARNING)
