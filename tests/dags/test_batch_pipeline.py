"""A full-load batch pipeline (item 04) under real Airflow (dag.test), real Spark and real
PostgreSQL: metered once per table, re-runs meter nothing twice, failures are recorded,
and a bad work order is refused before any work."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from govops.dag_runs import run_dag
from govops.sample_data import load_sample
from govops.settlement.workorders import ensure_demo_work_order
from tests.dags.lineage import assert_manifest_lineage, openlineage_events

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
DAG_ID = "pipeline_frontdb_persons"
TABLE = "public_security.persons"


def load_source(source_url: str) -> dict[str, int]:
    """The sample front-end database the pipeline extracts from: rows per table."""
    return load_sample(source_url, seed=7, persons=400)


@pytest.fixture(scope="module")
def source_rows(source_url: str) -> dict[str, int]:
    return load_source(source_url)


def usage(ledger_url: str, run_id: str) -> list[tuple]:
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT data_source, work_order_id, service_item_code, unit, quantity, records, map_index "
                "FROM govops.usage_event WHERE dag_id = :d AND run_id = :r ORDER BY data_source"
            ),
            {"d": DAG_ID, "r": run_id},
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def work_order(ledger_url: str, work_order_id: str) -> None:
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, work_order_id, on=date(2026, 6, 1))
    engine.dispose()


def assert_extracted(lake: Path, ledger_url: str, run_id: str, source_rows: dict[str, int], work_order_id: str) -> None:
    """The run's figures: every row of the table published, metered one table."""
    published = lake / "raw/frontdb/public_security/persons"
    assert pq.ParquetDataset(published).read(columns=["id"]).num_rows == source_rows[TABLE]
    assert [r[:6] for r in usage(ledger_url, run_id)] == [(TABLE, work_order_id, "04", "table", 1, source_rows[TABLE])]


def test_full_load_meters_the_table_once(isolated_env: Path, ledger_url: str, source_rows) -> None:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    work_order(ledger_url, "WO-TEST-1")
    first = run_dag(DAG_ID, conf={"work_order_id": "WO-TEST-1"}, logical_date=when)
    assert first.state == "success", first.task_states
    assert sorted(first.task_states) == ["commit", "extract", "prepare"]
    assert_extracted(isolated_env, ledger_url, first.run_id, source_rows, "WO-TEST-1")
    published = isolated_env / "raw/frontdb/public_security/persons"
    expected = [(TABLE, "WO-TEST-1", "04", "table", 1, source_rows[TABLE])]

    # Re-running the same run (as clearing it in the UI does) runs every task again,
    # rewrites the lake and meters nothing twice.
    manifest_file = next((isolated_env / "_manifests" / DAG_ID).rglob("extract.json"))
    first_start = json.loads(manifest_file.read_text())["started_at"]
    second = run_dag(DAG_ID, conf={"work_order_id": "WO-TEST-1"}, logical_date=when)
    assert second.run_id == first.run_id and second.state == "success"
    assert json.loads(manifest_file.read_text())["started_at"] > first_start  # the job really ran again
    assert [r[:6] for r in usage(ledger_url, first.run_id)] == expected
    assert pq.ParquetDataset(published).read(columns=["id"]).num_rows == source_rows[TABLE]

    # A later full load of the same table is not a new table: its records, quantity 0. Its
    # extract task's OpenLineage event names the datasets of the job's manifest.
    with openlineage_events(isolated_env.parent / "openlineage.jsonl") as events:
        third = run_dag(DAG_ID, conf={"work_order_id": "WO-TEST-1"}, logical_date=datetime(2026, 6, 5, tzinfo=UTC))
    assert third.state == "success", third.task_states
    assert [r[4:6] for r in usage(ledger_url, third.run_id)] == [(0, source_rows[TABLE])]
    assert_manifest_lineage(events, isolated_env, DAG_ID, third.run_id, "extract", TABLE)


def test_failed_attempts_are_recorded_and_meter_nothing(
    isolated_env: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    work_order(ledger_url, "WO-TEST-2")
    # The ledger database has no source tables: every attempt of the extraction fails.
    monkeypatch.setenv("GOVOPS_SOURCE_DATABASE_URL", ledger_url)
    monkeypatch.setenv("AIRFLOW_CONN_FRONTDB_DEFAULT", ledger_url)
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    result = run_dag(DAG_ID, conf={"work_order_id": "WO-TEST-2"}, logical_date=datetime(2026, 6, 2, tzinfo=UTC))
    assert result.state == "failed"
    assert result.task_states["extract"] == "failed"
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        failures = conn.execute(
            text(
                "SELECT try_number, final, work_order_id, error FROM govops.task_failure "
                "WHERE run_id = :r AND task_id = 'extract' ORDER BY try_number"
            ),
            {"r": result.run_id},
        ).all()
    engine.dispose()
    # Not a refusal (a database error may pass): retried.
    assert [tuple(f[:3]) for f in failures] == [(1, False, "WO-TEST-2"), (2, False, "WO-TEST-2"),
                                                (3, True, "WO-TEST-2")]  # fmt: skip
    # The job's own error, from its manifest, not only the spark-submit command line.
    assert all(f.error.startswith("AirflowException: Spark job extract failed: ") for f in failures)
    assert all('relation "public_security.persons" does not exist' in f.error for f in failures)
    assert usage(ledger_url, result.run_id) == []


def test_a_run_against_an_unknown_work_order_is_refused(
    isolated_env: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    result = run_dag(DAG_ID, conf={"work_order_id": "WO-NOBODY"}, logical_date=datetime(2026, 6, 3, tzinfo=UTC))
    assert result.state == "failed" and result.task_states["prepare"] == "failed"
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        failures = conn.execute(
            text("SELECT try_number, final, error FROM govops.task_failure WHERE run_id = :r AND task_id = 'prepare'"),
            {"r": result.run_id},
        ).all()
    engine.dispose()
    # A refusal fails at once: one attempt, the last, no retries.
    [(try_number, final, error)] = failures
    assert (try_number, final) == (1, True)
    assert error.startswith("AirflowFailException: WORK_ORDER_REFUSED: work order 'WO-NOBODY' is unknown")
    assert usage(ledger_url, result.run_id) == []
