"""The job registry's REST API v2 source against a real ``airflow api-server`` process (JWT
from ``/auth/token``, ``/api/v2/dags``, DAG details, import errors, dagRuns): it reads the
same deployment as the DAG folder, and a job's first successful scheduled run is metered
once. The monitoring pass (``govops.ops.health``) reads the same API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from govops import settings
from govops.ops.job_sync import apply
from govops.ops.sources import DagFolderSource, RestApiSource
from govops.settlement.workorders import ensure_demo_work_order
from tests.dags.test_ops_listener import probe_dag
from tests.servers import airflow_api_server

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    with airflow_api_server(tmp_path_factory.mktemp("api"), {"ops": "admin"}) as (base, passwords):
        yield base, "ops", passwords["ops"]


def rerunnable() -> None:
    """The probe's runs that an earlier session made scheduled ones are manual again: each
    test sees only its own scheduled run, and dag.test() re-runs its manual run."""
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(text("UPDATE dag_run SET run_type = 'manual' WHERE dag_id = 'ops_listener_probe' "
                             "AND run_type = 'scheduled'"))  # fmt: skip


def test_rest_source_reads_the_deployment_and_meters_once(api_server: tuple[str, str, str], fresh_ledger: Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.utils.session import create_session

    monkeypatch.setenv("GOVOPS_DATABASE_URL", fresh_ledger.url.render_as_string(hide_password=False))
    # A successful run of the probe DAG, made a scheduled one (dag.test() only makes manual runs).
    day = datetime(2026, 11, 20, tzinfo=UTC)
    rerunnable()
    run = probe_dag().test(logical_date=day, run_after=day, run_conf={"fail": False})
    assert str(run.state) == "success"
    with create_session() as session:
        session.execute(text("UPDATE dag_run SET run_type = 'scheduled' WHERE dag_id = :d AND run_id = :r"),
                        {"d": "ops_listener_probe", "r": run.run_id})  # fmt: skip

    source = RestApiSource(*api_server)
    deployment = source.read(["ops_listener_probe", "pipeline_frontdb_persons"])
    by_id = {d.dag_id: d for d in deployment.dags}
    folder = {d.dag_id: d for d in DagFolderSource(settings.repo_root() / "dags").read([]).dags}
    for dag_id, local in folder.items():  # the same jobs and attributes as the DAG files say
        if local.schedule is not None:
            assert by_id[dag_id].__dict__ | {"paused": None} == local.__dict__, dag_id
    assert by_id["ops_listener_probe"].work_order_id == "WO-PROBE"
    assert by_id["pipeline_frontdb_persons"].paused is not None  # only the API knows
    assert list(deployment.first_successes) == ["ops_listener_probe"]
    assert deployment.first_successes["ops_listener_probe"].run_id == run.run_id

    ensure_demo_work_order(fresh_ledger, "WO-REST-05", "05", on=date(2026, 11, 1))
    with fresh_ledger.begin() as conn:
        lines = apply(conn, deployment, source=source.name, default_work_order="WO-REST-05")
    assert f"ops_listener_probe: metered 1 个 (item 05) for its first scheduled run {run.run_id}" in lines
    with fresh_ledger.begin() as conn:  # the next pass: nothing new, nothing metered again
        assert apply(conn, source.read([]), source=source.name, default_work_order="WO-REST-05") == []
    with fresh_ledger.connect() as conn:
        assert conn.execute(text("SELECT dag_id, work_order_id, quantity FROM govops.usage_event")).all() == [
            ("ops_listener_probe", "WO-REST-05", 1)]




def test_health_pass_reads_the_rest_api(api_server: tuple[str, str, str], fresh_ledger: Engine) -> None:
    """The monitoring pass through the real api-server: a probe run left running for hours
    (its task stuck, the run late) and an import error open one order each; a second pass
    opens none; once the run finished and the file imports, the next pass resolves them."""
    import uuid
    from datetime import timedelta

    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    from govops.ops.health import check

    day = datetime(2026, 11, 23, tzinfo=UTC)
    rerunnable()
    run = probe_dag().test(logical_date=day, run_after=day, run_conf={"fail": False})
    broken = f"/tmp/govops_h1_{uuid.uuid4().hex[:8]}.py"
    now = datetime.now(UTC)
    where = {"d": "ops_listener_probe", "r": run.run_id}
    with create_session() as session:
        session.execute(text("""UPDATE dag_run SET state = 'running', run_type = 'scheduled', end_date = NULL,
                                    queued_at = :q, start_date = :q WHERE dag_id = :d AND run_id = :r"""),
                        {**where, "q": now - timedelta(hours=7)})  # fmt: skip
        session.execute(text("""UPDATE task_instance SET state = 'running', end_date = NULL, duration = NULL,
                                    start_date = :s WHERE dag_id = :d AND run_id = :r"""),
                        {**where, "s": now - timedelta(hours=7)})  # fmt: skip
        session.add(ParseImportError(filename=broken, bundle_name="dags-folder", timestamp=now,
                                     stacktrace="SyntaxError: invalid syntax"))  # fmt: skip

    def mine() -> list[tuple]:
        with fresh_ledger.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                """SELECT kind, state, task_id FROM govops.event_order
                   WHERE dag_id = 'ops_listener_probe' OR dedup_key = :k ORDER BY kind"""),
                {"k": f"import_error|dags-folder:{broken}"})]  # fmt: skip

    source = RestApiSource(*api_server)
    try:
        for _ in range(2):
            with fresh_ledger.begin() as conn:
                check(conn, source)
            assert mine() == [("import_error", "open", None), ("late", "open", None), ("stuck", "open", "flaky")]
    finally:
        with create_session() as session:
            session.execute(text("""UPDATE dag_run SET state = 'success', end_date = :e
                                     WHERE dag_id = :d AND run_id = :r"""), {**where, "e": now})  # fmt: skip
            session.execute(text("""UPDATE task_instance SET state = 'success', end_date = :e
                                     WHERE dag_id = :d AND run_id = :r"""), {**where, "e": now})  # fmt: skip
            session.execute(text("DELETE FROM import_error WHERE filename = :f"), {"f": broken})
    with fresh_ledger.begin() as conn:
        check(conn, source)
    assert mine() == [("import_error", "resolved", None), ("late", "resolved", None), ("stuck", "resolved", "flaky")]


def test_ops_reports_read_the_months_runs_through_the_rest_api(
    api_server: tuple[str, str, str], fresh_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monthly summary's DAG runs come from the api-server of the connection
    govops_airflow_api: exactly the runs due in the month (run_after, in the contract's time
    zone) that Airflow's own database holds, with their states."""
    from urllib.parse import quote

    from airflow.utils.session import create_session

    from govops.ops.report_render import report_to
    from govops.ops.reports import Month

    day = datetime(2026, 10, 7, tzinfo=UTC)
    run = probe_dag().test(logical_date=day, run_after=day, run_conf={"fail": False})
    base, user, password = api_server
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_AIRFLOW_API", base.replace("http://", f"http://{credentials}@"))
    month = Month.of(date(2026, 10, 1))
    with create_session() as session:
        expected = session.execute(text(
            """SELECT dag_id, run_id, state FROM dag_run WHERE run_after >= :s AND run_after < :e"""),
            {"s": month.start, "e": month.end}).all()  # fmt: skip
    states = [s for _, _, s in expected]
    assert ("ops_listener_probe", run.run_id, "success") in [tuple(r) for r in expected]

    lines = report_to(fresh_ledger, month.first, tmp_path)
    ok, failed = states.count("success"), states.count("failed")
    rate = f"{ok / (ok + failed):.2%}" if ok + failed else "–"
    assert f"; {len(expected)} runs, success rate {rate};" in lines[0], lines
    page = (tmp_path / "monthly.html").read_text(encoding="utf-8")
    assert f"Source: REST API v2 {base}." in page
    probe_runs = sum(d == "ops_listener_probe" for d, _, _ in expected)
    assert f"<td>ops_listener_probe</td><td class=n>{probe_runs}</td>" in page
