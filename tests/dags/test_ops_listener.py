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
        assert rows() == [("flaky", "open", "failure", 1, True)]
        again = dag.test(logical_date=LOGICAL, run_after=LOGICAL, run_conf={"fail": True})
        assert str(again.state) == "failed"
        assert rows() == [("flaky", "open", "failure", 2, True)]
        ok = dag.test(logical_date=LOGICAL, run_after=LOGICAL, run_conf={"fail": False})
        assert str(ok.state) == "success"
        assert rows() == [("flaky", "resolved", "failure", 2, True)]
        with engine.connect() as conn:
            order = conn.execute(text("SELECT * FROM govops.event_order WHERE dag_id = 'ops_listener_probe'")).one()
        assert "RuntimeError: the probe fails on purpose" in order.last_error
        assert order.resolution.startswith("resolved by itself: ops_listener_probe run")
    finally:
        engine.dispose()
