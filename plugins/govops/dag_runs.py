"""Run a project DAG in-process with ``dag.test()`` (the demo, the tests, the benchmark).

The single place that knows how this Airflow version loads DAGs and runs them, so the
callers do not change when Airflow does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from govops import settings


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]  # "task_id[map_index]" -> state


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings.repo_root() / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {settings.repo_root() / 'dags'}")
    return dag


def manual_run_id(logical_date: datetime) -> str:
    """The run id ``run_dag`` gives a run of ``logical_date`` (before the run exists)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    return DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=logical_date)


def run_dag(dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: datetime | None = None) -> DagRunResult:
    """Run one DAG run to completion. The same logical date means the same run id, so calling
    this twice re-runs that run (as clearing it in the UI would) rather than adding one."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = load_dag(dag_id)
    # Manual run ids derive from run_after: pin it to the logical date so a second call with
    # the same date finds the same run (and dag.test clears its task instances first).
    dr = dag.test(run_after=logical_date, logical_date=logical_date, run_conf=conf)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == dr.run_id)
        ).all()
        states = {
            f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state) for ti in tis
        }
    return DagRunResult(dag_id=dag_id, run_id=dr.run_id, state=str(dr.state), task_states=states)
