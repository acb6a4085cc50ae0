"""spark_jobs/extract.py as a real spark-submit program against real PostgreSQL: a
partitioned JDBC full load, its retry, and a kill in the middle of the write."""

from __future__ import annotations

import json
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


CHANGES = "jobtest_incr.changes"


def incremental_args(lake: Path, run_id: str, **extra: object) -> dict[str, object]:
    lake_root = lake.as_uri()
    return {
        "dag-id": "incr", "run-id": run_id, "task-id": "extract", "work-order-id": "WO-T", "lake-root": lake_root,
        "manifest": manifests.manifest_uri(lake_root, "incr", run_id, "extract", -1),
        "spec": PipelineSpec.model_validate({
            "pipeline": "jobtest_changes", "description": "d", "service_item": "04", "department": "区公安分局",
            "work_order": "WO-T", "source": {"kind": "jdbc", "table": CHANGES, "partition_column": "id",
                                             "num_partitions": 2},
            "target": {"dataset": "frontdb/jobtest/changes"}, "mode": "incremental",
            "watermark": {"column": "updated_at"}, "cleansing": {"required": ["name"], "dedupe_keys": ["code"]},
        }).model_dump_json(),
        **{k: v for k, v in extra.items() if v is not None},
    }  # fmt: skip


def run_incremental(lake: Path, source_url: str, run_id: str, **extra: object) -> tuple[dict, list[dict], list]:
    args = incremental_args(lake, run_id, **extra)
    result = spark_submit.run("extract", args, jdbc_url=source_url)
    manifest = manifests.read(str(args["manifest"]))
    assert result.returncode == 0, manifest.get("error") or result.stderr[-3000:]
    rejects = pq.ParquetDataset(manifest["outputs"][1]["uri"].removeprefix("file://")).read().to_pylist()
    found = sorted((r["source_location"], r["reason"]) for r in rejects)
    ids = pq.ParquetDataset(manifest["outputs"][0]["uri"].removeprefix("file://")).read(columns=["id"])
    return manifest, found, sorted(ids.column("id").to_pylist())


def test_incremental_rejects_null_watermarks_and_duplicates_once(tmp_path: Path, source_url: str) -> None:
    """Items 8-11 of issue 15 on a real table: NULL watermarks rejected once, a valid row
    after an invalid duplicate loads, the committed position is the highest value read
    (rejects included), a re-run reads its range again, and rejects name table and key."""
    engine = create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(text(
            f"""DROP SCHEMA IF EXISTS jobtest_incr CASCADE; CREATE SCHEMA jobtest_incr;
                CREATE TABLE {CHANGES} (id int PRIMARY KEY, code text, name text, updated_at timestamp);
                INSERT INTO {CHANGES} VALUES
                  (1, 'a', 'A', '2026-07-01 01:00'), (2, 'b', NULL, '2026-07-01 02:00'),
                  (3, 'c', 'C', NULL),                                    -- no watermark
                  (4, 'x', NULL, '2026-07-01 03:00'), (5, 'x', 'X', '2026-07-01 04:00'),  -- invalid, then valid
                  (6, 'f', NULL, '2026-07-01 05:00')                      -- a reject after the last good row"""
        ))  # fmt: skip
    where = f"{CHANGES}#id="
    null = "updated_at (watermark) is null"
    first, rejected, ids = run_incremental(tmp_path, source_url, "run-1")
    assert first["counts"] == {"read": 6, "written": 2, "rejected": 4}
    assert ids == [1, 5]
    assert rejected == [(f"{where}2", "missing name"), (f"{where}3", null), (f"{where}4", "missing name"),
                        (f"{where}6", "missing name")]  # fmt: skip
    mark = first["outputs"][0]["watermark"]
    assert mark == "2026-07-01 05:00:00"  # the reject's, not the last good row's

    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {CHANGES} VALUES (7, 'g', 'G', NULL), (8, 'h', 'H', '2026-07-02 01:00')"))
    earlier = json.dumps([first["outputs"][1]["uri"]])
    second, rejected, ids = run_incremental(tmp_path, source_url, "run-2", **{"watermark-from": mark,
                                                                              "null-rejects": earlier})  # fmt: skip
    assert second["counts"] == {"read": 2, "written": 1, "rejected": 1}  # id 6 and id 3 are not read again
    assert ids == [8] and rejected == [(f"{where}7", null)]

    # Re-running the first run: its range again, the same counts (id 7 was rejected by run 2).
    again, rejected, ids = run_incremental(tmp_path, source_url, "run-1", **{
        "watermark-to": mark, "null-rejects": json.dumps([second["outputs"][1]["uri"]])})  # fmt: skip
    assert again["counts"] == first["counts"] and ids == [1, 5]
    assert [r[0] for r in rejected] == [f"{where}{i}" for i in (2, 3, 4, 6)]
    engine.dispose()
