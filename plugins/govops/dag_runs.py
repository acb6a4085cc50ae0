"""Run a project DAG in-process with ``dag.test()`` (the demo, the tests, the benchmark).

The single place that knows how this Airflow version loads DAGs and runs them, so the
callers do not change when Airflow does.
"""

from __future__ import annotations

import os
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


def sync_dags() -> None:
    """Write the DAG folder to the metadata database as the dag-processor does (the DAGs, their
    schedules and the assets they reference, activated)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    # The dag-processor skips a DAG serialized in the last [core]
    # min_serialized_dag_update_interval seconds (30); here the DAGs must be the ones just
    # parsed (their assets name this lake), whenever they were last written.
    key = "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"
    saved = os.environ.get(key)
    os.environ[key] = "0"
    try:
        for bundle in manager.get_all_dag_bundles():
            bundle.initialize()
            bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
            sync_bag_to_db(bag, bundle.name, bundle.version)
    finally:
        if saved is None:
            del os.environ[key]
        else:
            os.environ[key] = saved


def unpause(*dag_ids: str) -> None:
    """As ``airflow dags unpause``: only an unpaused DAG is queued by an asset event."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(dag_ids)).values(is_paused=False))


def run_asset_triggered(dag_id: str) -> DagRunResult | None:
    """Have the scheduler turn the asset events queued for ``dag_id`` into its asset-triggered
    run (the run's ``triggering_asset_events``), then run that run to completion in-process
    the way ``dag.test()`` runs one. None when the scheduler sees no asset-triggered run due."""
    import logging

    from airflow.dag_processing.dagbag import DagBag
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models import DagRun, TaskInstance
    from airflow.models.dag import DagModel
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    runner = SchedulerJobRunner(job=Job(), num_runs=1)
    with create_session() as session:
        _, triggered = DagModel.dags_needing_dagruns(session)
        if dag_id not in triggered:
            return None
        model = session.get(DagModel, dag_id)
        fileloc = model.fileloc
        runner._create_dag_runs_asset_triggered(dag_models=[model], session=session)
    dag = DagBag(dag_folder=fileloc).dags[dag_id]  # only its own file: the tasks to run
    with create_session() as session:
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id,
                                                  DagRun.run_type == DagRunType.ASSET_TRIGGERED)
                             .order_by(DagRun.id.desc()).limit(1)).one()  # fmt: skip
        dr.dag = runner._get_current_dag(dag_id=dag_id, session=session)
        dr.state = DagRunState.RUNNING
        session.commit()
        while dr.state == DagRunState.RUNNING:  # dag.test()'s loop, over this run
            session.expire_all()
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            ready = [ti for ti in dr.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED]
            for ti in ready:
                try:
                    _run_task(ti=ti, task=dag.task_dict[ti.task_id])
                except Exception:  # the task's state says it; the loop goes on, as in dag.test()
                    logging.getLogger(__name__).exception("task failed: %s", ti)
        run_id, state = dr.run_id, str(dr.state)
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id))
        states = {ti.task_id: str(ti.state) for ti in tis}
    return DagRunResult(dag_id=dag_id, run_id=run_id, state=state, task_states=states)
