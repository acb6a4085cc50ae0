"""Spec-driven pipelines under real Airflow, Spark and PostgreSQL: a bad spec is reported
without breaking the others; incremental JDBC loads advance the watermark only on commit;
a CSV drop is cleansed with every reject kept and counted."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from govops.dag_runs import run_dag
from govops.sample_data import SampleConfig, generate, load_sample
from govops.settings import repo_root
from govops.settlement.workorders import ensure_demo_work_order

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
SPECS = repo_root() / "include" / "pipelines"


def test_a_bad_spec_is_reported_with_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    shutil.copy(SPECS / "frontdb_legal_persons.yaml", tmp_path)
    (tmp_path / "broken_source.yaml").write_text(
        "pipeline: broken_source\ndescription: d\nservice_item: '04'\ndepartment: x\nwork_order: W\n"
        "source: {kind: jdbc}\ntarget: {dataset: a/b}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("GOVOPS_PIPELINES_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(repo_root() / "dags"))
    assert bag.import_errors == {}
    assert "pipeline_frontdb_legal_persons" in bag.dag_ids and "pipeline_broken_source" not in bag.dag_ids
    [warning] = [w for ws in bag.captured_warnings.values() for w in ws]
    assert "broken_source.yaml: source.jdbc: Value error, give exactly one of table or query" in warning


def ledger_rows(url: str, sql: str, **params) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql), params)]
    engine.dispose()
    return rows


def test_incremental_jdbc_loads(isolated_env: Path, ledger_url: str, source_url: str, monkeypatch) -> None:
    rows = load_sample(source_url, seed=3, persons=300)["market_regulation.legal_persons"]
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-DEMO-0001", on=date(2026, 6, 1))
    engine.dispose()
    dag = "pipeline_frontdb_legal_persons"
    first = run_dag(dag, logical_date=datetime(2026, 7, 1, tzinfo=UTC))
    assert first.state == "success", first.task_states
    [(read, written, rejected, mark)] = ledger_rows(
        ledger_url, "SELECT read, written, rejected, watermark_to FROM govops.extraction_run WHERE run_id = :r",
        r=first.run_id,
    )
    assert (read, written + rejected) == (rows, rows) and rejected == 3  # the sample's 3 nameless companies
    assert mark.startswith("2026-10-") or mark.startswith("2026-11-")

    source = create_engine(source_url)
    with source.begin() as conn:
        conn.execute(text(
            """INSERT INTO market_regulation.legal_persons (id, uscc, name, updated_at)
               SELECT 100000 + g, '91310118MA1' || lpad(g::text, 6, '0') || 'X', '新公司' || g, now()
               FROM generate_series(1, 5) g"""
        ))  # fmt: skip
    second = run_dag(dag, logical_date=datetime(2026, 7, 2, tzinfo=UTC))
    assert second.state == "success", second.task_states
    assert ledger_rows(ledger_url, "SELECT read, written FROM govops.extraction_run WHERE run_id = :r",
                       r=second.run_id) == [(5, 5)]  # fmt: skip
    published = isolated_env / "raw/frontdb/market_regulation/legal_persons_incremental"
    assert pq.ParquetDataset(published).read(columns=["id"]).num_rows == written + 5
    metered = ledger_rows(
        ledger_url,
        "SELECT quantity, records FROM govops.usage_event WHERE dag_id = :d ORDER BY id", d=dag,
    )
    assert metered == [(1, written), (0, 5)]  # a table is billed once; later loads keep their records

    # A run killed after its job published a load but before the commit (simulated: the job
    # run on its own, as the killed run's extract task did) leaves a load partition that the
    # next run removes and reads again: no duplicate rows, and nothing metered twice.
    from govops.pipelines.spec import load_spec
    from govops.spark import manifest as manifests
    from tests.integration import spark_submit

    with source.begin() as conn:
        conn.execute(text("UPDATE market_regulation.legal_persons SET updated_at = now() WHERE id <= 3"))
    [(mark,)] = ledger_rows(ledger_url, "SELECT watermark FROM govops.extraction_state WHERE pipeline = :p",
                            p="frontdb_legal_persons")  # fmt: skip
    spec = load_spec(SPECS / "frontdb_legal_persons.yaml")
    lake_root = isolated_env.as_uri()
    killed = spark_submit.run("extract", {
        "dag-id": dag, "run-id": "manual__killed", "task-id": "extract", "work-order-id": "WO-DEMO-0001",
        "lake-root": lake_root, "manifest": manifests.manifest_uri(lake_root, dag, "manual__killed", "extract", -1),
        "spec": spec.model_dump_json(), "watermark-from": mark,
    }, jdbc_url=source_url)  # fmt: skip
    assert killed.returncode == 0, killed.stderr[-2000:]
    assert (published / "load=manual__killed").is_dir()
    third = run_dag(dag, logical_date=datetime(2026, 7, 3, tzinfo=UTC))  # the next data interval
    assert third.state == "success", third.task_states
    assert not (published / "load=manual__killed").exists()
    ids = pq.ParquetDataset(published).read(columns=["id"]).column("id").to_pylist()
    assert len(ids) == written + 5 + 3 and len(set(ids)) == written + 5  # ids 1-3: a new version each
    metered = ledger_rows(ledger_url, "SELECT run_id, quantity, records FROM govops.usage_event WHERE dag_id = :d "
                          "AND run_id IN ('manual__killed', :r)", d=dag, r=third.run_id)  # fmt: skip
    assert metered == [(third.run_id, 0, 3)]

    # Re-running the committed second run reads its own range again: its 5 rows, metered as
    # before, and the watermark stays where the third run put it.
    [(mark3,)] = ledger_rows(ledger_url, "SELECT watermark FROM govops.extraction_state WHERE pipeline = :p",
                             p="frontdb_legal_persons")  # fmt: skip
    again = run_dag(dag, logical_date=datetime(2026, 7, 2, tzinfo=UTC))
    assert again.state == "success", again.task_states
    assert ledger_rows(ledger_url, "SELECT read, written FROM govops.extraction_run WHERE run_id = :r",
                       r=second.run_id) == [(5, 5)]  # fmt: skip
    assert ledger_rows(ledger_url, "SELECT quantity, records FROM govops.usage_event WHERE dag_id = :d AND "
                       "run_id = :r", d=dag, r=second.run_id) == [(0, 5)]  # fmt: skip
    assert ledger_rows(ledger_url, "SELECT watermark FROM govops.extraction_state WHERE pipeline = :p",
                       p="frontdb_legal_persons") == [(mark3,)]  # fmt: skip
    assert pq.ParquetDataset(published).read(columns=["id"]).num_rows == written + 5 + 3

    # A failing load leaves the watermark where the last commit put it.
    [(before,)] = ledger_rows(ledger_url, "SELECT watermark FROM govops.extraction_state WHERE pipeline = :p",
                              p="frontdb_legal_persons")  # fmt: skip
    monkeypatch.setenv("GOVOPS_SOURCE_DATABASE_URL", ledger_url)
    monkeypatch.setenv("AIRFLOW_CONN_FRONTDB_DEFAULT", ledger_url)
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    failed = run_dag(dag, logical_date=datetime(2026, 7, 4, tzinfo=UTC))
    assert failed.state == "failed" and failed.task_states["extract"] == "failed"
    assert ledger_rows(ledger_url, "SELECT watermark FROM govops.extraction_state WHERE pipeline = :p",
                       p="frontdb_legal_persons") == [(before,)]  # fmt: skip
    source.dispose()


def test_csv_collection_keeps_every_reject(isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch) -> None:
    landing = tmp_path / "landing"
    _, report = generate(SampleConfig(seed=9, persons=400), landing)
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-DEMO-COLLECT", "01", on=date(2026, 6, 1))
    ensure_demo_work_order(engine, "WO-DEMO-REFRESH", "01", on=date(2026, 6, 1), difficulty=Decimal("0.1"))
    engine.dispose()
    result = run_dag("pipeline_landing_persons_export", logical_date=datetime(2026, 7, 5, tzinfo=UTC))
    assert result.state == "success", result.task_states
    [(read, written, rejected, reasons)] = ledger_rows(
        ledger_url,
        "SELECT read, written, rejected, rejected_by_reason FROM govops.extraction_run WHERE run_id = :r "
        "AND pipeline = 'landing_persons_export'",
        r=result.run_id,
    )
    assert read == 405 and read == written + rejected
    assert reasons == {
        "malformed record": report.count("malformed_csv_rows"),
        "missing name": report.count("missing_name"),
        "duplicate of an earlier row with the same id_number": report.count("duplicate_person"),
    }
    rejects = pq.ParquetDataset(isolated_env / "rejects/landing/public_security/persons").read().to_pylist()
    assert len(rejects) == rejected and all(r["source_location"].endswith("persons.csv") for r in rejects)
    assert ledger_rows(ledger_url, "SELECT service_item_code, unit, quantity, work_order_id, "
                       "attributes->>'onboarding' FROM govops.usage_event WHERE run_id = :r",
                       r=result.run_id) == [("01", "record", written, "WO-DEMO-COLLECT", "new")]  # fmt: skip
    [(name, dept, share, schema, first_run, refreshes)] = ledger_rows(
        ledger_url, "SELECT name, provider_department, share_type, schema, first_run_id, refreshes "
        "FROM govops.data_catalog WHERE dataset = 'raw/landing/public_security/persons'",
    )  # fmt: skip
    assert (name, dept, share, first_run, refreshes) == ("人口基本信息", "区公安分局", "有条件共享", result.run_id, 0)
    assert {c["name"]: (c["type"], c["description"]) for c in schema}["birth_date"] == ("date", "出生日期")

    # The next collection of the same dataset is a refresh (保鲜): its own work order, priced apart.
    again = run_dag("pipeline_landing_persons_export", logical_date=datetime(2026, 7, 6, tzinfo=UTC))
    assert again.state == "success", again.task_states
    assert ledger_rows(ledger_url, "SELECT work_order_id, attributes->>'onboarding', quantity FROM govops.usage_event "
                       "WHERE run_id = :r", r=again.run_id) == [("WO-DEMO-REFRESH", "refresh", written)]  # fmt: skip
    assert ledger_rows(ledger_url, "SELECT onboarding, work_order_id FROM govops.extraction_run WHERE run_id = :r",
                       r=again.run_id) == [("refresh", "WO-DEMO-REFRESH")]  # fmt: skip
    assert ledger_rows(ledger_url, "SELECT first_run_id, refreshes FROM govops.data_catalog") == [(result.run_id, 1)]

    # The first interval again under a new run id (`airflow dags test` with the same logical
    # date): the same delivery, not billed again, neither as new collection nor as a refresh.
    from govops.dag_runs import load_dag

    when = datetime(2026, 7, 5, tzinfo=UTC)
    rerun = load_dag("pipeline_landing_persons_export").test(run_after=when + timedelta(hours=3), logical_date=when)
    assert str(rerun.state) == "success" and rerun.run_id != result.run_id
    assert ledger_rows(ledger_url, "SELECT work_order_id, attributes->>'onboarding', attributes->>'rerun_of', "
                       "quantity, records FROM govops.usage_event WHERE run_id = :r", r=rerun.run_id) == [
        ("WO-DEMO-COLLECT", "new", result.run_id, 0, written)]  # fmt: skip
    assert ledger_rows(ledger_url, "SELECT rerun_of, read, written FROM govops.extraction_run WHERE run_id = :r",
                       r=rerun.run_id) == [(result.run_id, read, written)]  # fmt: skip
    assert ledger_rows(ledger_url, "SELECT first_run_id, refreshes FROM govops.data_catalog") == [(result.run_id, 1)]

    # Schema drift is a refusal: the extract fails at once (one attempt, no retries), and
    # the job's own error is in the task's exception and its failure record.
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    drifted = tmp_path / "drifted"
    (drifted / "exports").mkdir(parents=True)
    (drifted / "exports/persons.csv").write_text("id,name,phone\n1,甲,139\n", encoding="utf-8")
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", drifted.as_uri())
    failed = run_dag("pipeline_landing_persons_export", logical_date=datetime(2026, 7, 7, tzinfo=UTC))
    assert failed.state == "failed" and failed.task_states["extract"] == "failed"
    [(try_number, final, error)] = ledger_rows(
        ledger_url, "SELECT try_number, final, error FROM govops.task_failure WHERE run_id = :r", r=failed.run_id)
    assert (try_number, final) == (1, True)
    assert error.startswith("AirflowFailException: Spark job extract failed: SchemaDriftError: SCHEMA_DRIFT: ")
    assert "exports/persons.csv: schema drift: missing column 'gender'" in error


def test_monthly_summary_and_exports(isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch) -> None:
    """The summary adds up the month's committed runs per source; exports list the inventory."""
    from zoneinfo import ZoneInfo

    import openpyxl

    from govops.pipelines.__main__ import main as cli

    landing = tmp_path / "landing"
    _, report = generate(SampleConfig(seed=11, persons=200), landing)
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-DEMO-COLLECT", "01", on=date(2026, 6, 1))
    ensure_demo_work_order(engine, "WO-DEMO-REFRESH", "01", on=date(2026, 6, 1), difficulty=Decimal("0.1"))
    with engine.begin() as conn:  # a clean month for this test's figures
        conn.execute(text("DELETE FROM govops.extraction_run"))
    engine.dispose()
    for day in (8, 9):
        result = run_dag("pipeline_landing_persons_export", logical_date=datetime(2026, 7, day, tzinfo=UTC))
        assert result.state == "success", result.task_states
    today = datetime.now(ZoneInfo("Asia/Shanghai"))
    month = today.strftime("%Y-%m")
    # A run at its schedule (02:00 on the 1st) without the month param sums up the month before it.
    next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    at = datetime(next_month.year, next_month.month, 1, 2, tzinfo=UTC)
    summary = run_dag("extraction_monthly_summary", logical_date=at)
    assert summary.state == "success", summary.task_states
    folder = isolated_env / "reports/extraction" / month
    assert sorted(p.name for p in folder.iterdir()) == ["catalog.xlsx", "inventory.xlsx", "runs.xlsx", "summary.html"]

    read = 2 * 205  # 200 persons and 5 injected duplicates, twice
    missing = 2 * report.count("missing_name")
    duplicates = 2 * report.count("duplicate_person")
    page = (folder / "summary.html").read_text(encoding="utf-8")
    row = page[page.index("<td><a href='#landing_persons_export'>") :].split("</tr>")[0]
    cells = [c.split("<")[0] for c in row.split("<td class=n>")[1:]]
    assert cells[:2] == ["2", f"{read:,}"]
    assert cells[-2:] == [f"{1 - missing / read:.2%}", f"{1 - duplicates / read:.2%}"]
    assert page.count("<svg") == 3  # volumes, and for the one active source its days and its reasons

    inventory = openpyxl.load_workbook(folder / "inventory.xlsx").active
    header, *rows = [list(r) for r in inventory.iter_rows(values_only=True)]
    found = {r[header.index("pipeline")]: r for r in rows}
    assert found["landing_persons_export"][header.index("database_type")] == "file (csv)"
    out = tmp_path / "runs.csv"
    cli(["export", "runs", "--out", str(out)])
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == 1 + 2
