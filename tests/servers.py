"""Servers the tests start as real processes: a free port, and Airflow's api-server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def airflow_api_server(folder: Path, users: dict[str, str], env: dict[str, str] | None = None,
                       ) -> Iterator[tuple[str, dict[str, str]]]:  # fmt: skip
    """``airflow api-server`` on a free port with the simple auth manager's ``users`` (name ->
    role): yields its base URL and the passwords it generated; stopped (its whole process
    group) afterwards. Its log is ``folder/api-server.log``."""
    port = free_port()
    env = {**os.environ, **(env or {}),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in users.items()),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(folder / "passwords.json")}  # fmt: skip
    log_path = folder / "api-server.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{base}/api/v2/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"airflow api-server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, json.loads((folder / "passwords.json").read_text())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
