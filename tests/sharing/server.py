"""The sharing API server as a real process for the tests: a lake, sets and callers of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]


class ApiServer:
    def __init__(self, ledger_url: str, lake: Path, apis: Path, log: Path) -> None:
        self.ledger_url, self.lake, self.apis, self.log = ledger_url, lake, apis, log
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, "GOVOPS_DATABASE_URL": self.ledger_url, "GOVOPS_LAKE_ROOT": self.lake.as_uri(),
               "GOVOPS_APIS_DIR": str(self.apis), "GOVOPS_API_KEY_CACHE_SECONDS": "0",
               "GOVOPS_API_STATE_SECONDS": "0"}  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "govops.sharing", "serve", "--port", str(self.port)],
                                         env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the API server did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def copy_sample_set(apis: Path, **replace: str) -> None:
    """include/apis/legal_persons.yaml into ``apis``, with text replaced."""
    text = (REPO / "include" / "apis" / "legal_persons.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    (apis / "legal_persons.yaml").write_text(text, encoding="utf-8")


def catalog_entry(engine: Engine, dataset: str) -> None:
    """A data catalog entry (as the collection pipelines write them) for a set's ``catalog``."""
    with engine.begin() as conn:
        conn.execute(text("""INSERT INTO govops.data_catalog (dataset, name, provider_department, source_system,
                                 database_type, source_object, schema, update_frequency, share_type, open_type,
                                 classification, pipeline, first_run_id)
                             VALUES (:d, '法人登记信息', '区市场监管局', 'frontdb', 'PostgreSQL', 'legal_persons',
                                     '[]', '每日', '无条件共享', '有条件开放', '基础', 'test', 'r0')
                             ON CONFLICT (dataset) DO NOTHING"""), {"d": dataset})  # fmt: skip
