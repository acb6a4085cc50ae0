"""The job registry of item 05 on real PostgreSQL, read from DAG folders by a real DagBag:
changes recorded once each, and a new scheduled job metered once across re-parses,
re-deploys, a renamed file, re-runs, and removal and re-adding."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from govops import settings
from govops.ops import SERVICE_ITEM
from govops.ops.job_sync import apply
from govops.ops.registry import ScheduledRun, meter_first_success, sync_registry
from govops.ops.sources import DagFolderSource
from govops.settlement.workorders import WorkOrderError, ensure_demo_work_order

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)

DAG_FILE = '''
from datetime import datetime
from airflow.sdk import DAG, Param, task

with DAG(dag_id="{dag_id}", schedule={schedule!r}, start_date=datetime(2026, 1, 1), catchup=False,
         tags={tags!r}, params={{"work_order_id": Param({wo!r}, type="string")}}):
    @task
    def work() -> None:
        pass

    work()
'''


def write_dag(folder: Path, file: str, dag_id: str, schedule: str | None, wo: str,
              tags: list[str] | None = None) -> None:
    (folder / file).write_text(DAG_FILE.format(dag_id=dag_id, schedule=schedule, wo=wo, tags=tags or ["item:04"]))


def sync(engine: Engine, folder: Path, at: datetime) -> list[tuple[str, str]]:
    deployment = DagFolderSource(folder).read([])
    with engine.begin() as conn:
        changes = sync_registry(conn, deployment.dags, observed_at=at, source="dag_folder",
                                broken_files=deployment.broken_files)  # fmt: skip
    return [(c.dag_id, c.change) for c in changes]


def meter(engine: Engine, dag_id: str, run_id: str, at: datetime) -> int | None:
    with engine.begin() as conn:
        return meter_first_success(conn, ScheduledRun(dag_id, run_id, at, at), default_work_order="WO-T-05")


def item05_usage(engine: Engine) -> list[tuple[str, str, int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            """SELECT dag_id, work_order_id, quantity, attributes ->> 'first_run_id' FROM govops.usage_event
               WHERE service_item_code = :i ORDER BY dag_id"""), {"i": SERVICE_ITEM})]  # fmt: skip


def test_changes_and_metering_once(fresh_ledger: Engine, tmp_path: Path) -> None:
    e = fresh_ledger
    ensure_demo_work_order(e, "WO-T-05", "05", on=date(2026, 11, 1))
    ensure_demo_work_order(e, "WO-T-05B", "05", on=date(2026, 11, 1))
    ensure_demo_work_order(e, "WO-T-04", "04", on=date(2026, 11, 1))
    folder = tmp_path / "dags"
    folder.mkdir()
    write_dag(folder, "a.py", "job_a", "@daily", "WO-T-05B")  # names an item-05 work order of its own
    write_dag(folder, "b.py", "job_b", "0 3 * * *", "WO-T-04")  # names its item-04 one: the default is used
    write_dag(folder, "c.py", "job_manual", None, "WO-T-04")  # no schedule: not a job
    write_dag(folder, "d.py", "job_ops", "@hourly", "WO-T-05", tags=["ops"])  # the platform's own: never metered

    assert sync(e, folder, T0) == [("job_a", "new"), ("job_b", "new"), ("job_ops", "new")]
    assert sync(e, folder, T0 + timedelta(minutes=5)) == []  # re-parse: nothing changed
    # Re-deploy under another file name: the same job (the DAG id is the job).
    (folder / "a.py").rename(folder / "a_renamed.py")
    assert sync(e, folder, T0 + timedelta(minutes=10)) == []

    assert meter(e, "job_a", "scheduled__2026-11-02T00:00:00+00:00", T0) is not None
    assert meter(e, "job_b", "scheduled__2026-11-02T03:00:00+00:00", T0) is not None
    assert meter(e, "job_ops", "scheduled__2026-11-02T08:00:00+00:00", T0) is None
    assert meter(e, "job_manual", "manual__x", T0) is None  # not in the registry
    # Re-runs and later scheduled runs, and another observer with another default: nothing more.
    assert meter(e, "job_a", "scheduled__2026-11-02T00:00:00+00:00", T0 + timedelta(hours=1)) is None
    assert meter(e, "job_a", "scheduled__2026-11-03T00:00:00+00:00", T0 + timedelta(days=1)) is None
    with e.begin() as conn:
        assert meter_first_success(conn, ScheduledRun("job_b", "scheduled__later", T0, T0),
                                   default_work_order="WO-T-05B") is None  # fmt: skip

    # Schedule changed, removed, re-added, file broken: changes, never a new job or a new meter.
    write_dag(folder, "b.py", "job_b", "0 4 * * *", "WO-T-04")
    assert sync(e, folder, T0 + timedelta(hours=2)) == [("job_b", "schedule_changed")]
    (folder / "a_renamed.py").unlink()
    assert sync(e, folder, T0 + timedelta(hours=3)) == [("job_a", "removed")]
    write_dag(folder, "a2.py", "job_a", "@daily", "WO-T-05B")
    assert sync(e, folder, T0 + timedelta(hours=4)) == [("job_a", "re_added")]
    assert meter(e, "job_a", "scheduled__2026-11-05T00:00:00+00:00", T0 + timedelta(days=3)) is None
    (folder / "b.py").write_text((folder / "b.py").read_text() + "\nthis is not python(")
    assert sync(e, folder, T0 + timedelta(hours=5)) == []  # broken, not removed

    assert item05_usage(e) == [
        ("job_a", "WO-T-05B", 1, "scheduled__2026-11-02T00:00:00+00:00"),
        ("job_b", "WO-T-05", 1, "scheduled__2026-11-02T03:00:00+00:00"),
    ]
    with e.connect() as conn:
        record = conn.execute(text(
            "SELECT dag_id, change, old_value, new_value FROM govops.scheduled_job_change ORDER BY id")).all()
        jobs = {r.dag_id: r for r in conn.execute(text("SELECT * FROM govops.scheduled_job"))}
    assert [tuple(r) for r in record] == [
        ("job_a", "new", None, "0 0 * * *"), ("job_b", "new", None, "0 3 * * *"), ("job_ops", "new", None, "0 * * * *"),
        ("job_b", "schedule_changed", "0 3 * * *", "0 4 * * *"), ("job_a", "removed", "0 0 * * *", None),
        ("job_a", "re_added", None, "0 0 * * *"),
    ]  # fmt: skip
    for statement in ("UPDATE govops.scheduled_job_change SET change = 'new'",  # the change record is append-only
                      "DELETE FROM govops.scheduled_job_change", "TRUNCATE govops.scheduled_job_change"):
        with pytest.raises(DBAPIError, match="append-only"), e.begin() as conn:
            conn.execute(text(statement))
    assert jobs["job_a"].removed_at is None and jobs["job_a"].fileloc.endswith("a2.py")
    assert (jobs["job_a"].first_seen_at, jobs["job_a"].service_item_code) == (T0, "04")
    assert not jobs["job_ops"].billable and jobs["job_ops"].metered_usage_event_id is None


def test_metering_needs_an_open_item05_work_order(fresh_ledger: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    write_dag(folder, "a.py", "job_a", "@daily", "WO-NONE")
    sync(fresh_ledger, folder, T0)
    with pytest.raises(WorkOrderError, match="'WO-T-05' is not an item-05 work order open for runs"):
        meter(fresh_ledger, "job_a", "scheduled__1", T0)
    assert item05_usage(fresh_ledger) == []


@pytest.mark.airflow
def test_the_deployed_dags_from_the_dag_folder(fresh_ledger: Engine) -> None:
    """The project's own DAG folder, as ops_job_registry reads it without an api-server."""
    deployment = DagFolderSource(settings.repo_root() / "dags").read([])
    scheduled = {d.dag_id for d in deployment.dags if d.schedule is not None}
    with fresh_ledger.begin() as conn:
        lines = apply(conn, deployment, source="dag_folder", default_work_order="WO-T-05", observed_at=T0)
    assert sorted(lines) == sorted(f"{d}: new (- -> {s.schedule})" for s in deployment.dags
                                   if (d := s.dag_id) in scheduled)  # fmt: skip
    with fresh_ledger.connect() as conn:
        jobs = {r.dag_id: r for r in conn.execute(text("SELECT * FROM govops.scheduled_job"))}
    assert set(jobs) == scheduled and {"pipeline_frontdb_persons", "ops_job_registry"} <= scheduled
    persons = jobs["pipeline_frontdb_persons"]
    assert (persons.schedule, persons.department, persons.service_item_code, persons.work_order_id,
            persons.owner, persons.billable) == (
        "0 0 * * *", "区公安分局", "04", "WO-DEMO-0001", "govops", True)  # fmt: skip
    assert not jobs["ops_job_registry"].billable and not jobs["settlement_quarterly"].billable
