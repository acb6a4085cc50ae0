"""One pass of the job registry: read the deployment from a source, bring the registry in
step, and meter the jobs whose first scheduled run succeeded (the ops_job_registry DAG and
``python -m govops.ops jobs sync``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from govops import settings
from govops.ops.registry import meter_first_success, sync_registry, unmetered_jobs
from govops.ops.sources import DagFolderSource, Deployment, RestApiSource


def default_source() -> str:
    """The REST API when its connection is defined, else the DAG folder."""
    from govops.ops.sources import API_CONN_ID

    return "rest_api" if settings._airflow_connection_uri(API_CONN_ID) else "dag_folder"


def source_of(name: str) -> DagFolderSource | RestApiSource:
    if name == "rest_api":
        return RestApiSource.from_connection()
    if name == "dag_folder":
        return DagFolderSource(settings.repo_root() / "dags")
    raise ValueError(f"unknown registry source {name!r}: rest_api or dag_folder")


def apply(conn: Connection, deployment: Deployment, *, source: str, default_work_order: str,
          observed_at: datetime | None = None) -> list[str]:
    """Sync and meter; returns one line per change and per job metered."""
    at = observed_at or datetime.now(UTC)
    lines = [
        f"{c.dag_id}: {c.change}" + (f" ({c.old_value or '-'} -> {c.new_value or '-'})"
                                     if c.old_value or c.new_value else "")
        for c in sync_registry(conn, deployment.dags, observed_at=at, source=source,
                               broken_files=deployment.broken_files)
    ]  # fmt: skip
    for dag_id, run in sorted(deployment.first_successes.items()):
        if meter_first_success(conn, run, default_work_order=default_work_order) is not None:
            lines.append(f"{dag_id}: metered 1 个 (item 05) for its first scheduled run {run.run_id}")
    return lines


def run_sync(conn: Connection, source: str, *, default_work_order: str) -> list[str]:
    reader = source_of(source)
    return apply(conn, reader.read(unmetered_jobs(conn)), source=reader.name, default_work_order=default_work_order)
