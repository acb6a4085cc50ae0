"""The ops plugin's listener under real Airflow (``dag.test()``), with no DAG file of the
project changed: a task that fails on every try (with a retry) opens one event order, a
re-run of the same interval that fails again updates it, and a run that succeeds resolves
it. The probe DAG is in tests/dags/probe/, not in dags/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
LOGICAL = datetime(2026, 11, 3, tzinfo=UTC)


def probe_dag():  # -> DAG
    """The probe DAG, written to the metadata database as a DAG of the dags-folder bundle (as
    the DAG processor would), so dag.test() runs it without it being in dags/."""
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    folder = Path(__file__).parent / "probe"
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    return bag.dags["ops_listener_probe"]


def test_listener_opens_updates_and_resolves_one_order(isolated_env: Path, ledger_url: str) -> None:
    dag = probe_dag()
    engine = create_engine(ledger_url)

    def rows() -> list[tuple]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                """SELECT task_id, state, kind, occurrences, links ? 'log' FROM govops.event_order
                   WHERE dag_id = 'ops_listener_probe' ORDER BY id"""))]  # fmt: skip

    try:
        first = dag.test(logical_date=LOGICAL, run_after=LOGICAL, run_conf={"fail": True})
        assert str(first.state) == "failed"
        # Two tries, one final failure: one order (the retry is not one; the failed run adds none).
        assert rows() == [("flaky", "open", "failed", 1, True)]
        again = dag.test(logical_date=LOGICAL, run_after=LOGICAL, run_conf={"fail": True})
        assert str(again.state) == "failed"
        assert rows() == [("flaky", "open", "failed", 2, True)]
        ok = dag.test(logical_date=LOGICAL, run_after=LOGICAL, run_conf={"fail": False})
        assert str(ok.state) == "success"
        assert rows() == [("flaky", "resolved", "failed", 2, True)]
        with engine.connect() as conn:
            order = conn.execute(text("SELECT * FROM govops.event_order WHERE dag_id = 'ops_listener_probe'")).one()
        assert "RuntimeError: the probe fails on purpose" in order.last_error
        assert order.resolution.startswith("resolved by itself: ops_listener_probe run")
    finally:
        engine.dispose()


def test_listener_meters_a_first_scheduled_success_once(isolated_env: Path, ledger_url: str) -> None:
    """on_dag_run_success with the DagRun Airflow passes: a scheduled run of a registered
    job meters it once; a manual run never does."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from govops.ops import DEMO_WORK_ORDER, listener
    from govops.ops.registry import DagDescription, sync_registry
    from govops.settlement.workorders import ensure_demo_work_order

    engine = create_engine(ledger_url)
    day = datetime(2026, 11, 21, tzinfo=UTC)
    run = probe_dag().test(logical_date=day, run_after=day, run_conf={"fail": False})
    try:
        ensure_demo_work_order(engine, DEMO_WORK_ORDER, "05", on=day.date())
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM govops.scheduled_job WHERE dag_id = 'ops_listener_probe'"))
            sync_registry(conn, [DagDescription("ops_listener_probe", "0 0 * * *")], observed_at=day, source="test")
        with create_session() as session:
            dag_run = session.scalars(select(DagRun).where(DagRun.dag_id == "ops_listener_probe",
                                                           DagRun.run_id == run.run_id)).one()  # fmt: skip
            assert listener.dag_run_success(dag_run) is None  # manual: not a scheduled job's run
            dag_run.run_type = "scheduled"
            metered = [listener.dag_run_success(dag_run) for _ in range(3)]
            session.rollback()
        assert metered[0] is not None and metered[1:] == [None, None]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT work_order_id, quantity, attributes ->> 'first_run_id' FROM "
                                     "govops.usage_event WHERE dag_id = 'ops_listener_probe'")).all() == [
                (DEMO_WORK_ORDER, 1, run.run_id)]  # fmt: skip
    finally:
        engine.dispose()


def test_the_registry_dag_runs_from_the_dag_folder(isolated_env: Path, ledger_url: str) -> None:
    from govops.dag_runs import run_dag
    from govops.ops import DEMO_WORK_ORDER
    from govops.settlement.workorders import ensure_demo_work_order

    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, DEMO_WORK_ORDER, "05", on=LOGICAL.date())
    try:
        result = run_dag("ops_job_registry", conf={"source": "dag_folder"}, logical_date=LOGICAL)
        assert result.state == "success", result.task_states
        with engine.connect() as conn:
            jobs = dict(conn.execute(text("SELECT dag_id, schedule FROM govops.scheduled_job")).all())
        assert jobs["pipeline_frontdb_persons"] == "0 0 * * *" and jobs["ops_job_registry"] == "*/5 * * * *"
    finally:
        engine.dispose()
