"""Deadlines per service item (作业时限) and the Airflow Deadline Alerts that enforce them.

``include/catalog/job_deadlines.yaml`` gives each service item the minutes a scheduled run
may take from being queued to finishing. ``attach`` is the cluster policy
(``plugins/airflow_local_settings.py``, ``dag_policy``; on with ``GOVOPS_DEADLINE_ALERTS=1``,
see ``enabled``): every DAG with a schedule that has
no deadline of its own gets ``DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
interval=<its items' deadline>, callback=AsyncCallback(deadline_missed))``, so no DAG file
changes. When a run misses it, the scheduler queues ``deadline_missed`` on the triggerer,
which opens one event order of kind ``late`` for a scheduled (or asset-triggered) run.
The monitoring pass (``govops.ops.health``) checks the same deadline from the REST API
(also for a run the scheduler never started), under the same dedup key: one order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from govops.errors import CodedError
from govops.ops.event_orders import Problem, dedup_key

log = logging.getLogger(__name__)
DEADLINES_FILE = "include/catalog/job_deadlines.yaml"
# Runs the scheduler makes by itself: by time or by data (assets). A manual run has no deadline.
SCHEDULED_RUN_TYPES = frozenset({"scheduled", "asset_triggered"})


class DeadlineConfigError(CodedError, ValueError):
    code = "DEADLINE_CONFIG_INVALID"


@dataclass(frozen=True)
class Deadlines:
    default: timedelta
    items: dict[str, timedelta]

    def for_items(self, items: Iterable[str]) -> timedelta:
        """The longest deadline of the items a DAG delivers; the default for none."""
        found = [self.items.get(code, self.default) for code in items]
        return max(found) if found else self.default


def _minutes(value: Any, where: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DeadlineConfigError(f"{where}: a whole number of minutes > 0, not {value!r}")
    return timedelta(minutes=value)


def parse_deadlines(data: Any, source: str = DEADLINES_FILE) -> Deadlines:
    from govops.service_items import SERVICE_ITEMS

    if not isinstance(data, dict) or "default" not in data:
        raise DeadlineConfigError(f"{source}: a mapping with 'default' and 'items'")
    items = {}
    for code, minutes in (data.get("items") or {}).items():
        if str(code) not in SERVICE_ITEMS:
            raise DeadlineConfigError(f"{source}: items.{code}: unknown service item")
        items[str(code)] = _minutes(minutes, f"{source}: items.{code}")
    return Deadlines(default=_minutes(data["default"], f"{source}: default"), items=items)


@functools.cache
def load_deadlines(path: str | None = None) -> Deadlines:
    """Read once per process (the DAG processor parses often)."""
    import yaml

    from govops import settings

    file = Path(path) if path else settings.repo_root() / DEADLINES_FILE
    return parse_deadlines(yaml.safe_load(file.read_text(encoding="utf-8")), str(file))


def items_of(tags: Iterable[str]) -> list[str]:
    return sorted(t.removeprefix("item:") for t in tags if t.startswith("item:"))


def enabled() -> bool:
    """``GOVOPS_DEADLINE_ALERTS=1`` (the compose stack sets it). Off by default: ``dag.test()``
    and ``airflow dags test`` of Airflow 3.3.2 cannot finish a successful run of a DAG that
    has a Deadline Alert (``DagRun.update_state`` looks the alert definitions up as database
    ids), and the local runs and tests use them. The monitoring pass checks the same deadlines
    either way."""
    return os.environ.get("GOVOPS_DEADLINE_ALERTS", "").lower() in ("1", "true", "yes")


def attach(dag: Any) -> bool:
    """Cluster policy: give a scheduled DAG without a deadline of its own its items' one.
    Returns whether it attached one. Never raises (a broken file must not break every DAG)."""
    try:
        if not enabled() or dag.deadline or not getattr(dag.timetable, "can_be_scheduled", True):
            return False
        from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

        interval = load_deadlines().for_items(items_of(dag.tags or ()))
        minutes = int(interval.total_seconds() // 60)
        dag.deadline = DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=interval, name="govops_job_deadline",
            callback=AsyncCallback(deadline_missed, kwargs={"minutes": minutes}),
        )  # fmt: skip
        return True
    except Exception:
        log.exception("govops deadline policy: no deadline attached to %s", getattr(dag, "dag_id", dag))
        return False


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def late_key(dag_id: str, run_id: str, start: datetime | None, end: datetime | None, logical: datetime | None) -> str:
    """The run-level key of the run's interval, marked ``late``."""
    return dedup_key(dag_id, "", run_id, start, end, logical) + "|late"


def late_problem(dag_run: dict[str, Any], deadline_at: datetime, minutes: int, *, started: bool = True,
                 service_item_code: str | None = None) -> Problem:  # fmt: skip
    """The ``late`` problem of a DAG run as the REST API v2 (and a Deadline Alert's context)
    describes it: ``dag_id``, ``dag_run_id``, ``data_interval_start``/``_end``, ``logical_date``, ``conf``."""
    dag_id, run_id = dag_run["dag_id"], dag_run.get("dag_run_id") or ""
    start, end = _when(dag_run.get("data_interval_start")), _when(dag_run.get("data_interval_end"))
    logical = _when(dag_run.get("logical_date"))
    what = "未按时完成" if started else "未按时启动"
    return Problem(
        kind="late", key=late_key(dag_id, run_id, start, end, logical),
        title=f"作业超时{what}：{dag_id}", urgency="urgent", dag_id=dag_id, run_id=run_id or None,
        description=(f"scheduled run {run_id or '(not created)'} of {dag_id} was not "
                     f"{'finished' if started else 'started'} by its deadline {deadline_at.isoformat()} "
                     f"({minutes} min)"),
        occurred_at=deadline_at, data_interval_start=start, data_interval_end=end,
        work_order_id=(dag_run.get("conf") or {}).get("work_order_id"), service_item_code=service_item_code,
    )  # fmt: skip


def record_late(dag_run: dict[str, Any], deadline_time: Any, minutes: int) -> str | None:
    """The alert's work: one ``late`` order for a scheduled run (a repeated callback updates it)."""
    if str(dag_run.get("run_type")) not in SCHEDULED_RUN_TYPES:
        return None
    from sqlalchemy import create_engine

    from govops import settings
    from govops.ops.event_orders import record_problem

    deadline_at = _when(deadline_time)
    assert deadline_at is not None
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        with engine.begin() as conn:
            return record_problem(conn, late_problem(dag_run, deadline_at, minutes))[0]
    finally:
        engine.dispose()


async def deadline_missed(context: dict[str, Any], minutes: int) -> str | None:
    """The Deadline Alert's callback (runs on the triggerer): ``context`` is what the scheduler
    passes, ``{"dag_run": <the run as the REST API gives it>, "deadline": {"deadline_time": ...}}``."""
    return await asyncio.to_thread(record_late, context["dag_run"], context["deadline"]["deadline_time"], minutes)
