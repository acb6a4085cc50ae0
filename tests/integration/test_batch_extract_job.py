"""spark_jobs/extract.py as a real spark-submit program against real PostgreSQL: a
partitioned JDBC full load, its retry, and a kill in the middle of the write."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from govops.ledger.usage import TaskRef, meter_manifest
from govops.pipelines.spec import PipelineSpec
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark import manifest as manifests

from . import spark_submit

pytestmark = pytest.mark.integration
TABLE = "jobtest.people"
ROWS = 300_000


@pytest.fixture(scope="module")
def source_table(source_url: str) -> str:
    engine = create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS jobtest CASCADE; CREATE SCHEMA jobtest"))
        conn.execute(
            text(
                f"CREATE TABLE {TABLE} AS SELECT g AS id, 'name-' || g AS name, (g % 97)::int AS age, "
                f"now() AS updated_at FROM generate_series(1, {ROWS}) g"
            )
        )
    engine.dispose()
    return TABLE


def job_args(lake: Path, run_id: str, try_number: int = 1) -> dict[str, object]:
    lake_root = lake.as_uri()
    return {
        "dag-id": "jobtest",
        "run-id": run_id,
        "task-id": "extract",
        "try-number": try_number,
        "work-order-id": "WO-T",
        "lake-root": lake_root,
        "manifest": manifests.manifest_uri(lake_root, "jobtest", run_id, "extract", -1),
        "spec": PipelineSpec.model_validate({
            "pipeline": "jobtest_people", "description": "d", "service_item": "04", "department": "区公安分局",
            "work_order": "WO-T", "source": {"kind": "jdbc", "table": TABLE, "partition_column": "id",
                                             "num_partitions": 3},
            "target": {"dataset": "frontdb/jobtest/people"},
        }).model_dump_json(),
        "first-load": "true",
    }  # fmt: skip


def published_rows(lake: Path) -> int:
    return pq.ParquetDataset(lake / "raw/frontdb/jobtest/people").read(columns=["id"]).num_rows


def test_extract_writes_reconciled_output_and_manifest(tmp_path: Path, source_table: str, source_url: str) -> None:
    args = job_args(tmp_path, "run-1")
    result = spark_submit.run("extract", args, jdbc_url=source_url)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = manifests.read(str(args["manifest"]))
    manifests.validate(manifest, expected_run={"run_id": "run-1", "try_number": 1}, uri="m")
    assert manifest["counts"] == {"read": ROWS, "written": ROWS, "rejected": 0}
    assert manifest["metering"] == [
        {"service_item": "04", "unit": "table", "quantity": 1, "records": ROWS, "data_source": TABLE}
    ]
    output = manifest["outputs"][0]
    assert output["uri"] == f"{tmp_path.as_uri()}/raw/frontdb/jobtest/people"
    assert output["rows"] == ROWS and output["files"] >= 3
    assert published_rows(tmp_path) == ROWS
    ids = pq.ParquetDataset(tmp_path / "raw/frontdb/jobtest/people").read(columns=["id"]).column("id")
    assert len(set(ids.to_pylist())) == ROWS  # the partitioned read neither lost nor repeated a row
    assert not (tmp_path / "_staging").exists() or not any((tmp_path / "_staging").rglob("*.parquet"))

    # A retry of the same task overwrites, it does not append: same rows, same checksum.
    again = spark_submit.run("extract", job_args(tmp_path, "run-1", try_number=2), jdbc_url=source_url)
    assert again.returncode == 0, again.stderr[-3000:]
    second = manifests.read(str(args["manifest"]))
    assert second["run"]["try_number"] == 2
    assert second["outputs"][0]["checksum"] == output["checksum"]
    assert published_rows(tmp_path) == ROWS


def test_killed_run_leaves_the_published_dataset_whole(
    tmp_path: Path, source_table: str, source_url: str, ledger
) -> None:
    first = spark_submit.run("extract", job_args(tmp_path, "run-old"), jdbc_url=source_url)
    assert first.returncode == 0, first.stderr[-3000:]
    marker = tmp_path / "raw/frontdb/jobtest/people/_GOVOPS_COMMIT.json"
    assert '"run_id": "run-old"' in marker.read_text()

    args = job_args(tmp_path, "run-killed")
    cmd, env = spark_submit.command("extract", args, jdbc_url=source_url)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    staging = tmp_path / "_staging/jobtest/run-killed/extract/raw/frontdb/jobtest/people"
    deadline = time.monotonic() + 300
    while not staging.exists():
        assert proc.poll() is None, "the job finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    assert '"run_id": "run-old"' in marker.read_text()  # the old version is still published
    assert published_rows(tmp_path) == ROWS
    with pytest.raises(manifests.ManifestError, match="no manifest"):
        manifests.read(str(args["manifest"]))

    # The retry clears the killed attempt's staging and publishes exactly one copy.
    retry = spark_submit.run("extract", job_args(tmp_path, "run-killed", try_number=2), jdbc_url=source_url)
    assert retry.returncode == 0, retry.stderr[-3000:]
    assert '"run_id": "run-killed"' in marker.read_text()
    assert published_rows(tmp_path) == ROWS
    assert not staging.exists()

    # Metering the retry's manifest, and again as a later retry would: one ledger row.
    ensure_demo_work_order(ledger, "WO-T", "04", on=date(2026, 6, 1))  # usage needs its work order
    manifest = manifests.read(str(args["manifest"]))
    for try_number in (2, 3):
        task = TaskRef("jobtest", "run-killed", "extract", -1, try_number=try_number)
        meter_manifest(ledger, manifest, task, work_order_id="WO-T", manifest_uri=str(args["manifest"]))
    with ledger.connect() as conn:
        rows = conn.execute(
            text("SELECT quantity, records FROM govops.usage_event WHERE run_id = 'run-killed'")
        ).all()
    assert [tuple(r) for r in rows] == [(1, ROWS)]
