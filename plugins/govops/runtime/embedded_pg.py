"""A PostgreSQL server the project runs itself when no database is configured.

The binaries come from the ``pgserver`` wheel (PostgreSQL 16, no system install needed).
Unlike ``pgserver.get_server`` (a Unix socket tied to the calling process), this server
listens on 127.0.0.1 so Spark's JDBC reader can reach it, and it outlives the command that
started it, so the demo, the tests and ``airflow standalone`` share one server.
``./dev pg-stop`` stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

# pgserver asks platformdirs for a runtime dir it never uses here; the warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

DATABASES = ("govops", "frontdb", "airflow")
DEFAULT_PORT = 55432


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: run it as pgserver's unprivileged user."""
    if os.geteuid() != 0:
        return None
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists("pgserver")
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
    return "pgserver"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _running(data_dir: Path, user: str | None) -> bool:
    result = subprocess.run(
        [_bin("pg_ctl"), "-D", str(data_dir), "status"], capture_output=True, user=user
    )
    return result.returncode == 0


def ensure_running(state_dir: Path) -> EmbeddedServer:
    """Initialise (once) and start (if stopped) the server under ``state_dir``."""
    data_dir = state_dir / "data"
    port_file = state_dir / "port"
    log_file = state_dir / "server.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    if user:
        import shutil

        from pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(state_dir)
        shutil.chown(state_dir, user, user)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [_bin("initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=UTF8",
             "--locale=C", "-U", "postgres"],
            check=True, capture_output=True, user=user,
        )
    if port_file.exists():
        port = int(port_file.read_text())
    else:
        port = int(os.environ.get("GOVOPS_PG_PORT", DEFAULT_PORT))
        while not _port_free(port):
            port += 1
        port_file.write_text(str(port))
    if not _running(data_dir, user):
        if not _port_free(port):
            raise RuntimeError(
                f"port {port} (from {port_file}) is taken by another program: "
                f"stop it or delete {port_file} to pick a new port"
            )
        result = subprocess.run(
            [_bin("pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60",
             "-o", f"-h 127.0.0.1 -p {port} -k {data_dir} -c max_connections=200", "start"],
            capture_output=True, text=True, user=user,
        )
        if result.returncode != 0:
            log = log_file.read_text() if log_file.exists() else ""
            raise RuntimeError(f"embedded PostgreSQL failed to start:\n{result.stderr}\n{log}")
    server = EmbeddedServer(data_dir=data_dir, port=port)
    _ensure_databases(server)
    return server


def _ensure_databases(server: EmbeddedServer) -> None:
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for name in DATABASES:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')


def stop(state_dir: Path) -> bool:
    data_dir = state_dir / "data"
    if not (data_dir / "PG_VERSION").exists():
        return False
    user = _run_as()
    if not _running(data_dir, user):
        return False
    subprocess.run(
        [_bin("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        check=True, capture_output=True, user=user,
    )
    return True
