"""Where things are: project paths, the lake root, databases and jars.

Every setting comes from an environment variable with a local default, so the same code
runs on a laptop (``file://`` lake, embedded PostgreSQL) and in production (``hdfs://`` lake,
a managed PostgreSQL given as an Airflow connection).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

LEDGER_CONN_ID = "govops_db"
SOURCE_CONN_ID = "frontdb_default"
SPARK_CONN_ID = "spark_default"


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the variable to set."""


def repo_root() -> Path:
    """The checkout this package lives in (plugins/govops -> repo)."""
    env = os.environ.get("GOVOPS_REPO")
    if env:
        return Path(env).resolve()
    return PACKAGE_DIR.parent.parent


def home() -> Path:
    """Project-local state: embedded database, lake, manifests, jars, build artifacts."""
    return Path(os.environ.get("GOVOPS_HOME", repo_root() / ".local")).resolve()


def lake_root() -> str:
    """Root URI of the data lake: ``file:///...`` locally, ``hdfs://...`` in production."""
    root = os.environ.get("GOVOPS_LAKE_ROOT") or (home() / "lake").as_uri()
    if "://" not in root:
        raise ConfigError(f"GOVOPS_LAKE_ROOT must be a URI such as file:///data/lake, got {root!r}")
    return root.rstrip("/")


def landing_root() -> str:
    """Root URI of the landing area where front-end machines drop files (relative spec paths)."""
    return (os.environ.get("GOVOPS_LANDING_ROOT") or (home() / "landing").as_uri()).rstrip("/")


def spark_jobs_dir() -> Path:
    return Path(os.environ.get("GOVOPS_SPARK_JOBS_DIR", repo_root() / "spark_jobs")).resolve()


def jdbc_jars() -> list[str]:
    """JDBC driver jars handed to spark-submit ``--jars``.

    ``GOVOPS_JDBC_JARS`` (comma-separated) wins; otherwise the jar ``./dev`` unpacked from
    Debian's libpostgresql-jdbc-java, or the system one. On a cluster that ships the driver
    itself, set ``GOVOPS_JDBC_JARS=`` (empty) to pass none.
    """
    env = os.environ.get("GOVOPS_JDBC_JARS")
    if env is not None:
        return [j for j in env.split(",") if j]
    for candidate in (home() / "jars" / "postgresql.jar", Path("/usr/share/java/postgresql.jar")):
        if candidate.exists():
            return [str(candidate)]
    raise ConfigError(
        "no PostgreSQL JDBC driver found: run ./dev (it unpacks Debian's "
        "libpostgresql-jdbc-java into .local/jars) or set GOVOPS_JDBC_JARS"
    )


def _airflow_connection_uri(conn_id: str) -> str | None:
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # plain Python or a Spark executor: no Airflow
        return None
    try:
        return BaseHook.get_connection(conn_id).get_uri()
    except Exception:  # an undefined connection raises several types
        return None


def _sqlalchemy_url(uri: str) -> str:
    # Airflow writes postgres://; SQLAlchemy wants postgresql://
    return "postgresql://" + uri[len("postgres://"):] if uri.startswith("postgres://") else uri


# A configured URL in the environment wins over the Airflow connection of the same role.
URL_ENV = {LEDGER_CONN_ID: "GOVOPS_DATABASE_URL", SOURCE_CONN_ID: "GOVOPS_SOURCE_DATABASE_URL"}


def connection_url(conn_id: str) -> str:
    """SQLAlchemy URL of a database: its GOVOPS_*_URL variable, else the Airflow connection.

    ``govops_db`` is the ledger; ``frontdb_default`` the departments' front-end database
    (前置库). ``./dev`` sets both to the embedded server only when neither is configured.
    """
    env_var = URL_ENV.get(conn_id)
    uri = (os.environ.get(env_var) if env_var else None) or _airflow_connection_uri(conn_id)
    if not uri:
        hint = f"set {env_var} or " if env_var else "define "
        raise ConfigError(
            f"no database for {conn_id!r}: {hint}the Airflow connection {conn_id!r} "
            "(./dev starts an embedded PostgreSQL when nothing is configured)"
        )
    return _sqlalchemy_url(uri)
