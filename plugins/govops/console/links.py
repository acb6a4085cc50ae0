"""The operator extra link 报告与数据文档 on every task instance: the console's list of what
that task produced (``govops.console.artifacts``), or a disabled link when it recorded
nothing. A global link: Airflow calls it in the api-server when the UI asks for a task
instance's links, so it reads the ledger and the task's XCom there, never in a task."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink
from sqlalchemy.exc import SQLAlchemyError

from govops.console import URL_PREFIX
from govops.settings import ConfigError

log = logging.getLogger(__name__)


def task_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The console path (under its URL prefix) of a task instance's artifacts."""
    path = "/".join(quote(part, safe="") for part in (dag_id, run_id, task_id))
    return f"/tasks/{path}" + (f"?map_index={map_index}" if map_index >= 0 else "")


class ConsoleReportsLink(BaseOperatorLink):
    name = "报告与数据文档"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.api_fastapi.app import API_ROOT_PATH

        from govops.console import artifacts
        from govops.console.db import reading

        try:
            with reading() as conn:
                found = artifacts.of_task(conn, ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
        except (ConfigError, SQLAlchemyError) as exc:
            # The UI asks for every task's links at once: a ledger it cannot reach disables
            # this link (logged), not the links of every task of every DAG.
            log.warning("govops console: no reports link for %s: %s", ti_key, exc)
            return ""
        if not found:
            return ""  # Airflow shows the link disabled
        path = task_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
        return f"{API_ROOT_PATH.rstrip('/')}{URL_PREFIX}{path}"
