"""The governance chain under real Airflow, Spark and PostgreSQL, run by data: a pipeline
publishes a raw dataset as an Asset; the scheduler's own steps turn that asset event into
the run of the quality check scheduled on it, whose passing batch is promoted, then
labeled, then masked into the sharing zone, each step an asset-triggered run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from govops import chain
from govops.dag_runs import run_asset_triggered, run_dag, sync_dags, unpause
from govops.sample_data import SampleConfig, build_frames
from govops.sample_data.generator import DefectCounts
from govops.settlement.workorders import ensure_demo_work_order
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
RAW = "raw/frontdb/public_security/persons"
SPEC = """pipeline: chain_persons
description: 治理链 人口信息 入湖
service_item: "04"
department: 区公安分局
work_order: WO-CHAIN-04
source: {kind: parquet, path: persons/*.parquet}
target: {dataset: frontdb/public_security/persons}
"""
CHAIN = ("quality_check__public_security_persons_ingestion", "security_labeling__frontdb_public_security_persons",
         "security_masking__public_security_persons")  # fmt: skip


def test_a_published_dataset_runs_the_chain_to_the_sharing_zone(
    isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, landing, specs = isolated_env, tmp_path / "landing", tmp_path / "pipelines"
    clean = DefectCounts(**{k: 0 for k in DefectCounts.__dataclass_fields__})
    persons = build_frames(SampleConfig(seed=11, persons=120, defects=clean)).persons
    (landing / "persons").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(persons, preserve_index=False), landing / "persons" / "part-0.parquet")
    specs.mkdir()
    (specs / "chain_persons.yaml").write_text(SPEC, encoding="utf-8")
    monkeypatch.setenv("GOVOPS_PIPELINES_DIR", str(specs))
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    engine = create_engine(ledger_url)
    for order, item, unit in (("WO-CHAIN-04", "04", "table"), ("WO-DEMO-QUALITY", "07", "table"),
                              ("WO-DEMO-LABEL", "06", "record"), ("WO-DEMO-MASK", "20", "record")):  # fmt: skip
        ensure_demo_work_order(engine, order, item, on=date.today(), unit=unit)
    engine.dispose()
    sync_dags()  # as the dag-processor would; an asset event only queues an unpaused DAG
    unpause(*CHAIN)

    published = run_dag("pipeline_chain_persons", logical_date=datetime(2026, 9, 1, tzinfo=UTC))
    assert published.state == "success", published.task_states
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        [(extra, name, group)] = session.execute(
            select(AssetEvent.extra, AssetModel.name, AssetModel.group)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == f"{lake.as_uri()}/{RAW}",
                   AssetEvent.source_run_id == published.run_id)).all()  # fmt: skip
    assert name == f"{lake.as_uri()}/{RAW}" and group == "raw"
    assert extra["dataset"] == RAW and extra["rows"] == len(persons) and len(extra["version"]) == 64

    # The quality check is scheduled on that asset: its event makes the scheduler start it.
    checked = run_asset_triggered(CHAIN[0])
    assert checked is not None and checked.state == "success", checked or scheduler_view(CHAIN[0])
    assert checked.run_id.startswith("asset_triggered__")
    assert pq.read_table(lake / "clean/frontdb/public_security/persons").num_rows == len(persons)
    assert rows(ledger_url, "SELECT status, rows_checked FROM govops.quality_check_run") == [("pass", len(persons))]
    assert run_asset_triggered(CHAIN[0]) is None  # the event is consumed: no second run

    labeled = run_asset_triggered(CHAIN[1])
    assert labeled is not None and labeled.state == "success", labeled
    masked = run_asset_triggered(CHAIN[2])
    assert masked is not None and masked.state == "success", masked

    shared = pq.read_table(lake / "sharing/public_security/persons").to_pandas()
    assert len(shared) == len(persons)
    assert not set(shared["id_number"]) & set(persons["id_number"])  # no ID number in clear
    assert not set(shared["phone"]) & set(persons["phone"]) and set(shared["address"]) == {"上海市青浦区"}
    assert rows(ledger_url, "SELECT dataset FROM govops.security_labeling_run") == [(chain.Link("s", RAW).clean,)]
    assert rows(ledger_url, """SELECT service_item_code, quantity FROM govops.usage_event
                               WHERE dag_id = ANY(:d) ORDER BY service_item_code""", d=list(CHAIN)) == [
        ("06", len(persons)), ("07", 1), ("20", len(persons))]  # fmt: skip


def scheduler_view(dag_id: str) -> dict:
    """What the scheduler sees of a DAG that an asset event did not start (for the failure)."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        model = session.get(DagModel, dag_id)
        return {
            "flags": {k: getattr(model, k) for k in ("is_paused", "is_stale", "has_import_errors",
                                                      "exceeds_max_non_backfill", "bundle_name", "fileloc")},
            "queued": [a.asset.uri for a in session.scalars(select(AssetDagRunQueue)
                                                            .where(AssetDagRunQueue.target_dag_id == dag_id))],
            "runs": [(r.run_id, str(r.state)) for r in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id))],
            "serialized": [(d.dag_version_id, str(d.dag.timetable.asset_condition)) for d in
                           SerializedDagModel.get_latest_serialized_dags(dag_ids=[dag_id], session=session)],
        }  # fmt: skip
