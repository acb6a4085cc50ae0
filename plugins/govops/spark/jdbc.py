"""Turn a database URL into what Spark's JDBC reader needs, keeping the password out of
the command line (it travels in an environment variable instead)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import make_url

PASSWORD_ENV = "GOVOPS_JDBC_PASSWORD"


@dataclass(frozen=True)
class JdbcSource:
    url: str  # jdbc:postgresql://host:port/db, no credentials
    user: str | None
    password: str | None


def from_database_url(database_url: str) -> JdbcSource:
    url = make_url(database_url)
    if not url.drivername.startswith("postgres"):
        raise ValueError(f"only PostgreSQL sources are supported by this job, got {url.drivername!r}")
    if not url.host:
        raise ValueError(f"{url.render_as_string(hide_password=True)}: JDBC needs a TCP host, not a Unix socket")
    port = url.port or 5432
    return JdbcSource(
        url=f"jdbc:postgresql://{url.host}:{port}/{url.database}", user=url.username, password=url.password
    )
