"""The Airflow plugin listener (``plugins/govops_ops_plugin.py``): failures open event
orders, successes resolve them (a finished run also resolves its ``late`` order), and a
job's first successful scheduled run meters it, with no change to any DAG file.

Task hooks run in the task's process (the task runner, also under ``dag.test()``); DAG-run
hooks in the scheduler (or ``dag.test()``). None of them reads Airflow's metadata
database: they write only the ledger. A hook never raises: a broken ledger must not hide
the task's own outcome (the failure is logged, and ``govops.task_failure`` still has it).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from airflow.listeners import hookimpl
from sqlalchemy import Engine, create_engine

from govops.ops.deadlines import late_key
from govops.ops.event_orders import Failure, record_failure, resolve_by_success, resolve_keys

log = logging.getLogger(__name__)
_engines: dict[str, Engine] = {}


def _engine() -> Engine:
    """One engine per ledger URL per process (a task process sees one; tests switch URLs)."""
    from govops import settings

    url = settings.connection_url(settings.LEDGER_CONN_ID)
    if url not in _engines:
        _engines[url] = create_engine(url, pool_size=1, max_overflow=2)
    return _engines[url]


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _run_of(task_instance: Any) -> tuple[Any, dict[str, Any]]:
    """The DAG run and the params of a task instance: the runtime one (task runner) has its
    template context; the ORM one (a state set through the API) its ``dag_run``."""
    if hasattr(task_instance, "get_template_context"):
        context = task_instance.get_template_context()
        return context["dag_run"], dict(context.get("params") or {})
    dag_run = task_instance.dag_run
    return dag_run, dict(dag_run.conf or {})


def _links(task_instance: Any, dag_run: Any) -> dict[str, str]:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
    run = f"{base}/dags/{task_instance.dag_id}/runs/{dag_run.run_id}"
    links = {"dag_run": run, "task": f"{run}/tasks/{task_instance.task_id}"}
    log_url = getattr(task_instance, "log_url", None)
    if log_url:
        links["log"] = log_url
    try:
        from govops import settings
        from govops.spark.manifest import manifest_uri

        uri = manifest_uri(settings.lake_root(), task_instance.dag_id, dag_run.run_id, task_instance.task_id,
                           task_instance.map_index if task_instance.map_index is not None else -1)  # fmt: skip
        if not uri.startswith("file://") or os.path.exists(uri.removeprefix("file://")):
            links["manifest"] = uri
    except Exception:  # a task without a lake configured has no manifest
        pass
    return links


def describe(error: str | BaseException | None) -> str:
    """The error as the event order keeps it: ``Type: message`` (what ``classify`` reads)."""
    if error is None or isinstance(error, str):
        return error or ""
    return f"{type(error).__name__}: {error}"


def task_failure(task_instance: Any, error: str | BaseException | None) -> tuple[str, bool] | None:
    """A final failure opens (or updates) the key's event order; a retry opens nothing."""
    if _state(task_instance.state) != "failed":
        return None  # up_for_retry: the next attempt may succeed
    dag_run, params = _run_of(task_instance)
    failure = Failure(
        dag_id=task_instance.dag_id, run_id=dag_run.run_id, task_id=task_instance.task_id,
        occurred_at=task_instance.end_date or datetime.now(UTC), error=describe(error),
        map_index=task_instance.map_index if task_instance.map_index is not None else -1,
        try_number=task_instance.try_number, data_interval_start=dag_run.data_interval_start,
        data_interval_end=dag_run.data_interval_end, logical_date=dag_run.logical_date,
        work_order_id=params.get("work_order_id"), operator=getattr(task_instance.task, "owner", "") or "",
        links=_links(task_instance, dag_run),
    )  # fmt: skip
    with _engine().begin() as conn:
        return record_failure(conn, failure)


def task_success(task_instance: Any) -> list[str]:
    dag_run, _ = _run_of(task_instance)
    with _engine().begin() as conn:
        return resolve_by_success(
            conn, task_instance.dag_id, task_instance.task_id, dag_run.run_id, dag_run.data_interval_start,
            dag_run.data_interval_end, dag_run.logical_date, task_instance.end_date or datetime.now(UTC),
        )  # fmt: skip


def _resolve_late(conn: Any, dag_run: Any, at: datetime) -> list[str]:
    """The run finished: its ``late`` order (a missed deadline) is over."""
    key = late_key(dag_run.dag_id, dag_run.run_id, dag_run.data_interval_start, dag_run.data_interval_end,
                   dag_run.logical_date)  # fmt: skip
    return resolve_keys(conn, [key], at, f"resolved by itself: run {dag_run.run_id} finished ({_state(dag_run.state)})")


def dag_run_failure(dag_run: Any, msg: str) -> tuple[str, bool] | None:
    failure = Failure(
        dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id="", occurred_at=dag_run.end_date or datetime.now(UTC),
        error=msg or "the DAG run failed", data_interval_start=dag_run.data_interval_start,
        data_interval_end=dag_run.data_interval_end, logical_date=dag_run.logical_date,
        work_order_id=(dag_run.conf or {}).get("work_order_id"),
    )  # fmt: skip
    with _engine().begin() as conn:
        _resolve_late(conn, dag_run, failure.occurred_at)
        return record_failure(conn, failure, run_level=True)


def dag_run_success(dag_run: Any) -> int | None:
    """A scheduled run's success: the run-level order resolves, and the job's first such
    run is metered (item 05) if the registry knows the job."""
    from govops.ops.registry import ScheduledRun, meter_first_success

    at = dag_run.end_date or datetime.now(UTC)
    with _engine().begin() as conn:
        resolve_by_success(conn, dag_run.dag_id, "", dag_run.run_id, dag_run.data_interval_start,
                           dag_run.data_interval_end, dag_run.logical_date, at)  # fmt: skip
        _resolve_late(conn, dag_run, at)
    if _state(dag_run.run_type) != "scheduled":
        return None
    from govops.ops import DEMO_WORK_ORDER

    with _engine().begin() as conn:
        return meter_first_success(
            conn, ScheduledRun(dag_run.dag_id, dag_run.run_id, at, dag_run.logical_date),
            default_work_order=os.environ.get("GOVOPS_SCHEDULING_WORK_ORDER", DEMO_WORK_ORDER),
        )


def _guard(what: str, call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception:
        log.exception("govops ops listener: %s failed", what)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: str | BaseException | None) -> None:
    _guard("event order of a failed task", task_failure, task_instance, error)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _guard("resolving event orders", task_success, task_instance)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _guard("event order of a failed DAG run", dag_run_failure, dag_run, msg)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _guard("DAG run success", dag_run_success, dag_run)
