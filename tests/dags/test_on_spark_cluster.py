"""The jobs unchanged on a Spark standalone cluster: a master and two one-core workers from
the pinned pyspark wheel (tests/cluster.py), ``spark_default`` pointed at it in client
mode, and one DAG of each job kind run through it with the data and figures of its local
test: extract, check_quality, verify_spatial, mask_dataset.

Each job's application must have run on the cluster: its manifest names the master, the
master lists the application finished, both workers ran an executor of it, and its
executors fetched the ``--py-files`` zip. The workers and executors do not see the checkout (tests/cluster.py):
they import ``govops`` from the zip and read nothing that only exists on the driver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govops.dag_runs import run_dag
from govops.spark.package import build_zip
from tests import cluster as standalone
from tests.conftest import own_ledger
from tests.dags import test_batch_pipeline as extraction
from tests.dags import test_quality_check_dag as quality
from tests.dags import test_security_masking_dag as security
from tests.dags import test_spatial_verification as spatial

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
HIDE_CHECKOUT = standalone.can_hide_checkout()


@pytest.fixture(scope="module")
def ledger_url() -> Iterator[str]:
    """A ledger of this module's own: the local DAG tests run the same DAG runs (same logical
    dates) in the session's ledger, and their usage and extraction state must not mix."""
    for engine in own_ledger():
        yield engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[standalone.Cluster]:
    started = standalone.start(tmp_path_factory.mktemp("spark-standalone"), hide_checkout=HIDE_CHECKOUT)
    try:
        yield started
    finally:
        standalone.stop(started)
    assert started.pids() == [], "cluster processes left running"


@pytest.fixture
def on_cluster(cluster: standalone.Cluster, monkeypatch: pytest.MonkeyPatch) -> standalone.Cluster:
    conn = {"conn_type": "spark", "host": cluster.url, "extra": {"deploy-mode": "client"}}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # the driver, where the executors reach it
    return cluster


def assert_ran_on_cluster(cluster: standalone.Cluster, lake: Path, dag_id: str, jobs: int = 1) -> list[str]:
    """The run's Spark applications ran on the cluster, with an executor on each worker that
    fetched the package zip; their ids."""
    manifests = [json.loads(p.read_text()) for p in sorted((lake / "_manifests" / dag_id).rglob("*.json"))]
    assert len(manifests) == jobs and all(m["status"] == "succeeded" for m in manifests)
    assert {m["spark"]["master"] for m in manifests} == {cluster.url}
    ids = [m["app_id"] for m in manifests]
    for _ in range(20):  # the master hears of the driver's end asynchronously
        apps = cluster.applications()
        if all(apps.get(i, {}).get("state") == "FINISHED" for i in ids):
            break
        time.sleep(0.5)
    executors = cluster.executors()
    for m in manifests:
        app = apps[m["app_id"]]
        assert app["state"] == "FINISHED" and app["name"].startswith(f"govops:{m['job']}:{dag_id}:")
        assert sorted(executors[m["app_id"]]) == ["worker-0", "worker-1"]
        # An executor fetches the zip into its work folder (<worker>/<app>/<executor>/) with its
        # first task; a small job's tasks may all go to one of the two.
        fetched = [p.name for work in cluster.worker_dirs for p in (work / m["app_id"]).glob("*/govops-*.zip")]
        assert fetched and set(fetched) == {build_zip().name}
    return ids


def test_checkout_is_hidden_from_the_workers(cluster: standalone.Cluster) -> None:
    if not HIDE_CHECKOUT:
        pytest.skip("no mount namespace (unshare): the workers see the checkout")
    for worker in cluster.workers:
        root = Path(f"/proc/{worker.process.pid}/root")
        for folder in cluster.hidden:
            assert not any((root / folder.relative_to("/")).iterdir()), folder
        assert (root / "etc").is_dir()  # the rest of the machine is there
    assert {p.name for p in cluster.hidden} >= {"plugins", "include", "spark_jobs", ".local"}


def test_extract(on_cluster: standalone.Cluster, isolated_env: Path, ledger_url: str, source_url: str) -> None:
    source_rows = extraction.load_source(source_url)
    extraction.work_order(ledger_url, "WO-CLUSTER")
    result = run_dag(extraction.DAG_ID, conf={"work_order_id": "WO-CLUSTER"},
                     logical_date=datetime(2026, 6, 1, tzinfo=UTC))  # fmt: skip
    assert result.state == "success", result.task_states
    extraction.assert_extracted(isolated_env, ledger_url, result.run_id, source_rows, "WO-CLUSTER")
    assert_ran_on_cluster(on_cluster, isolated_env, extraction.DAG_ID)


def test_check_quality(on_cluster: standalone.Cluster, isolated_env: Path, ledger_url: str,
                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    conf, persons = quality.defective_batch(isolated_env, ledger_url, monkeypatch)
    result = run_dag("quality_check", conf=conf, logical_date=datetime(2026, 8, 1, tzinfo=UTC))
    # The check and its outputs succeed; the gate stops the batch, as the local test expects.
    assert result.task_states["check"] == "success" and result.task_states["publish"] == "success"
    assert result.task_states["gate"] == "failed"
    quality.assert_checked(isolated_env, ledger_url, persons)
    assert_ran_on_cluster(on_cluster, isolated_env, "quality_check")


def test_verify_spatial(on_cluster: standalone.Cluster, isolated_env: Path, ledger_url: str) -> None:
    _, conf, expected = spatial.verification_input(isolated_env, ledger_url)
    result = run_dag("spatial_verification", conf=conf, logical_date=datetime(2026, 8, 1, tzinfo=UTC))
    assert result.state == "success", result.task_states
    spatial.assert_verified(isolated_env, ledger_url, expected)
    assert_ran_on_cluster(on_cluster, isolated_env, "spatial_verification")


def test_mask_dataset(on_cluster: standalone.Cluster, isolated_env: Path, ledger_url: str) -> None:
    persons = security.masking_input(isolated_env, ledger_url)
    result = run_dag("security_masking", logical_date=datetime(2026, 11, 2, tzinfo=UTC))
    assert result.state == "success", result.task_states
    security.assert_masked(isolated_env, ledger_url, persons)
    assert_ran_on_cluster(on_cluster, isolated_env, "security_masking")
