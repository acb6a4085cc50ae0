"""Stream extraction (item 02) under real Airflow, Spark Structured Streaming and
PostgreSQL: JSON lines dropped in two rounds are each read once, with every malformed line
rejected with its file; rows inserted into a source table between runs are captured once;
killed jobs leave no duplicate rows and no record metered twice; a re-run of a metered run
meters nothing new; the continuous mode picks up a file within seconds; a kafka source
without Spark's connector fails with a message naming it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import create_engine, text

from govops.dag_runs import run_dag
from govops.pipelines import stream
from govops.pipelines.spec import SpecError, load_spec
from govops.sample_data import SampleConfig, generate
from govops.settings import repo_root
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark import manifest as manifests
from tests.db import rows
from tests.integration import spark_submit

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
SPECS = repo_root() / "include" / "pipelines"
WORK_ORDER = "WO-DEMO-STREAM"
EVENTS = "raw/landing/service_events"
RUNS = "dag_id = :d AND run_id = ANY(CAST(:runs AS text[]))"  # the ledger is the session's: a test's own runs


def work_order(ledger_url: str) -> None:
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, WORK_ORDER, "02", on=date(2026, 6, 1))
    engine.dispose()


def event_files(tmp_path: Path, seed: int, events: int, per_file: int) -> tuple[list[Path], list[str]]:
    """The sample's event files (not yet in the landing area) and its malformed lines."""
    _, report = generate(SampleConfig(seed=seed, persons=300, events=events, events_per_file=per_file),
                         tmp_path / "sample")  # fmt: skip
    [bad] = [d.ids for d in report.defects if d.kind == "malformed_event_lines"]
    return sorted((tmp_path / "sample" / "events").glob("*.jsonl")), bad


def drop(files: list[Path], landing: Path) -> None:
    """As a front-end machine drops a file: written under a hidden name, then renamed."""
    folder = landing / "events"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f".{f.name}.part")
        (folder / f".{f.name}.part").rename(folder / f.name)


def source_lines(files: list[Path]) -> tuple[list[str], list[tuple[str, str]]]:
    """(event ids of the well-formed lines, (file, line) of the malformed ones)."""
    ids, bad = [], []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                ids.append(json.loads(line)["event_id"])
            except json.JSONDecodeError:
                bad.append((f.name, line))
    return ids, bad


def spec_dir(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> Path:
    """A copy of a bundled spec with some source fields changed, as the only pipeline."""
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    spec = yaml.safe_load((SPECS / f"{name}.yaml").read_text(encoding="utf-8"))
    spec["source"].update(changes)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("GOVOPS_PIPELINES_DIR", str(folder))
    return folder


def test_stream_specs_validate(tmp_path: Path) -> None:
    for name in ("landing_events_stream", "frontdb_events_capture"):
        assert load_spec(SPECS / f"{name}.yaml").source.kind in ("jsonl_stream", "jdbc_capture")
    head = "pipeline: s_bad\ndescription: d\nservice_item: '02'\ndepartment: x\nwork_order: W\nmode: stream\n"
    cases = {
        "source: {kind: jsonl_stream, path: events/}": "source.jsonl_stream: Value error, jsonl_stream sources "
        "need columns",
        "source: {kind: jdbc_capture, table: a.b, offset_column: id, path: x}": "path is only used with kind "
        "jsonl_stream",
        "source: {kind: kafka, bootstrap_servers: 'b:9092', topic: t, columns: {a: string}, "
        "kafka_options: {subscribe: other}}": "kafka_options may not set subscribe",
        "source: {kind: jdbc_capture, table: 'a.b; drop', offset_column: id}": "is not schema.table",
    }
    for source, message in cases.items():
        (tmp_path / "s_bad.yaml").write_text(head + source + "\ntarget: {dataset: a/b}\n", encoding="utf-8")
        with pytest.raises(SpecError, match=message.replace("(", r"\(")):
            load_spec(tmp_path / "s_bad.yaml")


def test_jsonl_stream_reads_each_drop_once(
    isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, bad = event_files(tmp_path, seed=21, events=600, per_file=200)
    assert [f.name for f in files] == ["events-0001.jsonl", "events-0002.jsonl", "events-0003.jsonl"]
    assert Counter(b.split(":")[0] for b in bad) == {"events-0002.jsonl": 2, "events-0003.jsonl": 2}
    landing = tmp_path / "landing"
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    work_order(ledger_url)
    dag = "pipeline_landing_events_stream"

    drop(files[:2], landing)
    first = run_dag(dag, logical_date=datetime(2026, 8, 1, tzinfo=UTC))
    assert first.state == "success", first.task_states
    drop(files[2:], landing)
    second = run_dag(dag, logical_date=datetime(2026, 8, 1, 0, 5, tzinfo=UTC))
    assert second.state == "success", second.task_states
    idle = run_dag(dag, logical_date=datetime(2026, 8, 1, 0, 10, tzinfo=UTC))  # nothing new
    assert idle.state == "success", idle.task_states

    runs = [first.run_id, second.run_id, idle.run_id]
    log = rows(ledger_url, "SELECT run_id, read, written, rejected, rejected_by_reason, watermark_to "
               f"FROM govops.extraction_run WHERE {RUNS} ORDER BY id", d=dag, runs=runs)  # fmt: skip
    assert log == [
        (first.run_id, 400, 398, 2, {"malformed record": 2}, "batch=0"),
        (second.run_id, 200, 198, 2, {"malformed record": 2}, "batch=1"),
        (idle.run_id, 0, 0, 0, {}, "batch=1"),
    ]
    metered = rows(ledger_url, "SELECT run_id, service_item_code, unit, quantity, records, work_order_id, data_source, "
                   "attributes->>'stream_batch_from', attributes->>'stream_batch_to' FROM govops.usage_event "
                   f"WHERE {RUNS} ORDER BY id", d=dag, runs=runs)  # fmt: skip
    assert metered == [
        (first.run_id, "02", "record", 398, 398, WORK_ORDER, "events/", "0", "0"),
        (second.run_id, "02", "record", 198, 198, WORK_ORDER, "events/", "1", "1"),
    ]
    ids, malformed = source_lines(files)
    written = pq.ParquetDataset(isolated_env / EVENTS).read(columns=["event_id", "batch"]).to_pylist()
    assert sorted(r["event_id"] for r in written) == sorted(ids) and len(ids) == 596
    assert Counter(r["batch"] for r in written) == {0: 398, 1: 198}
    rejects = pq.ParquetDataset(isolated_env / "rejects/landing/service_events").read().to_pylist()
    assert sorted((r["source_location"].rsplit("/", 1)[1], json.loads(r["record"])["_corrupt_record"])
                  for r in rejects) == sorted(malformed)  # fmt: skip
    assert {r["reason"] for r in rejects} == {"malformed record"}


@pytest.fixture
def capture_table(source_url: str) -> Any:
    """A front-end table of this test's own (the shared sample tables are reloaded by others)."""
    table = f"stream_test.registrations_{uuid.uuid4().hex[:8]}"
    engine = create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS stream_test"))
        conn.execute(text(f"CREATE TABLE {table} (id bigint PRIMARY KEY, uscc varchar(32), name varchar(200), "
                          "legal_representative varchar(64), established_on date, capital numeric(14,2), "
                          "updated_at timestamptz NOT NULL)"))  # fmt: skip
    yield engine, table
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))
    engine.dispose()


def insert(engine: Any, table: str, ids: range, nameless: set[int]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(f"""INSERT INTO {table} SELECT g, '91310118MA1' || lpad(g::text, 6, '0') || 'X',
                         CASE WHEN g = ANY(CAST(:nameless AS int[])) THEN NULL ELSE ' 公司' || g || ' ' END,
                         '法人' || g, DATE '2020-01-01' + g, g * 1000.5, now()
                       FROM generate_series(CAST(:a AS int), CAST(:b AS int)) g"""),
            {"a": ids.start, "b": ids.stop - 1, "nameless": sorted(nameless)},
        )


def test_jdbc_capture_takes_new_rows_once(
    isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture_table: Any
) -> None:
    engine, table = capture_table
    insert(engine, table, range(1, 501), {7, 70, 350})
    spec_dir(tmp_path, "frontdb_events_capture", monkeypatch, table=table, max_records_per_batch=200)
    work_order(ledger_url)
    dag = "pipeline_frontdb_events_capture"
    first = run_dag(dag, logical_date=datetime(2026, 8, 2, tzinfo=UTC))
    assert first.state == "success", first.task_states
    insert(engine, table, range(501, 551), {510})
    second = run_dag(dag, logical_date=datetime(2026, 8, 2, 0, 5, tzinfo=UTC))
    assert second.state == "success", second.task_states

    runs = [first.run_id, second.run_id]
    log = rows(ledger_url, f"SELECT read, written, rejected, rejected_by_reason FROM govops.extraction_run "
               f"WHERE {RUNS} ORDER BY id", d=dag, runs=runs)  # fmt: skip
    assert log == [(500, 497, 3, {"missing name": 3}), (50, 49, 1, {"missing name": 1})]
    assert rows(ledger_url, "SELECT quantity, data_source, attributes->>'stream_batch_from', "
                f"attributes->>'stream_batch_to' FROM govops.usage_event WHERE {RUNS} ORDER BY id",
                d=dag, runs=runs) == [(497, table, "0", "2"), (49, table, "3", "3")]  # fmt: skip
    dataset = isolated_env / "raw/frontdb/market_regulation/legal_persons_registrations"
    lake = pq.ParquetDataset(dataset).read().to_pylist()
    assert sorted(r["id"] for r in lake) == [i for i in range(1, 551) if i not in (7, 70, 350, 510)]
    assert Counter(r["batch"] for r in lake) == {0: 198, 1: 199, 2: 100, 3: 49}  # 200 rows a batch at most
    one = next(r for r in lake if r["id"] == 42)
    assert (one["name"], str(one["capital"]), str(one["established_on"])) == ("公司42", "42021.00", "2020-02-12")
    rejects = pq.ParquetDataset(isolated_env / "rejects/frontdb/market_regulation/legal_persons_registrations")
    assert sorted(r["source_location"] for r in rejects.read().to_pylist()) == sorted(
        f"{table}#id={i}" for i in (7, 70, 350, 510)
    )


def submit(lake: Path, spec_folder: Path, name: str, run_id: str, kill_at: str | None = None,
           **extra: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:  # fmt: skip
    """The job on its own, as a killed run's extract task ran it."""
    import os

    dag = f"pipeline_{name}"
    uri = manifests.manifest_uri(lake.as_uri(), dag, run_id, "extract", -1)
    cmd, env = spark_submit.command("extract_stream", {
        "dag-id": dag, "run-id": run_id, "task-id": "extract", "work-order-id": WORK_ORDER,
        "lake-root": lake.as_uri(), "manifest": uri, "spec": load_spec(spec_folder / f"{name}.yaml").model_dump_json(),
        "landing-root": os.environ["GOVOPS_LANDING_ROOT"], **extra,
    })  # fmt: skip
    if kill_at:
        env["GOVOPS_STREAM_KILL_AT"] = kill_at
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    try:
        return result, manifests.read(uri)
    except manifests.ManifestError:
        return result, None


def test_exactly_once_across_kills(
    isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, bad = event_files(tmp_path, seed=23, events=600, per_file=120)
    assert len(files) == 5 and len(bad) == 4
    landing = tmp_path / "landing"
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    folder = spec_dir(tmp_path, "landing_events_stream", monkeypatch, max_files_per_batch=1)  # a file a batch
    work_order(ledger_url)
    drop(files, landing)
    records = isolated_env / "_streams/landing_events_stream/batches"

    # Killed after batch 1's rows were published but before its record: batch 0 is whole.
    killed, manifest = submit(isolated_env, folder, "landing_events_stream", "manual__killed_1", "1:after_data")
    assert killed.returncode != 0 and manifest is None
    assert sorted(p.name for p in records.glob("*.json")) == ["000000000000.json"]
    assert (isolated_env / EVENTS / "batch=1").is_dir()
    # Killed after batch 3's record, before Spark committed the batch: replays 1, runs 2 and 3.
    killed, manifest = submit(isolated_env, folder, "landing_events_stream", "manual__killed_2", "3:after_record")
    assert killed.returncode != 0 and manifest is None
    assert len(list(records.glob("*.json"))) == 4

    # The next scheduled run replays batch 3, runs 4, and meters all five batches once.
    dag = "pipeline_landing_events_stream"
    first = run_dag(dag, logical_date=datetime(2026, 8, 3, tzinfo=UTC))
    assert first.state == "success", first.task_states
    ids, malformed = source_lines(files)
    lake = pq.ParquetDataset(isolated_env / EVENTS).read(columns=["event_id", "batch"]).to_pylist()
    assert len(lake) == len(ids) == 596 and sorted(r["event_id"] for r in lake) == sorted(ids)  # no duplicates
    rejects = pq.ParquetDataset(isolated_env / "rejects/landing/service_events").read().to_pylist()
    assert sorted((r["source_location"].rsplit("/", 1)[1], json.loads(r["record"])["_corrupt_record"])
                  for r in rejects) == sorted(malformed)  # fmt: skip
    assert sorted(Counter(r["batch"] for r in lake)) == [0, 1, 2, 3, 4]
    metered_sql = ("SELECT run_id, quantity, attributes->>'stream_batch_from', attributes->>'stream_batch_to' "
                   "FROM govops.usage_event WHERE attributes->>'stream_id' = :s ORDER BY id")  # fmt: skip
    sid = stream.stream_id(isolated_env.as_uri(), "landing_events_stream")  # this test's stream
    assert rows(ledger_url, metered_sql, s=sid) == [(first.run_id, 596, "0", "4")]
    manifest = manifests.read(manifests.manifest_uri(isolated_env.as_uri(), dag, first.run_id, "extract", -1))
    assert manifest["outputs"][0]["stream"]["batches_run_here"] == [3, 4]

    # Re-running the metered run reports its batches again (a no-op in the ledger) and takes
    # nothing new; the next run takes the new file.
    extra = tmp_path / "events-0006.jsonl"
    extra.write_text(files[0].read_text(encoding="utf-8").replace("EV0023", "EV0123"), encoding="utf-8")
    drop([extra], landing)
    again = run_dag(dag, logical_date=datetime(2026, 8, 3, tzinfo=UTC))
    assert again.state == "success" and again.run_id == first.run_id, again.task_states
    assert rows(ledger_url, metered_sql, s=sid) == [(first.run_id, 596, "0", "4")]
    second = run_dag(dag, logical_date=datetime(2026, 8, 3, 0, 5, tzinfo=UTC))
    assert second.state == "success", second.task_states
    extra_ids, extra_bad = source_lines([extra])
    assert rows(ledger_url, metered_sql, s=sid) == [(first.run_id, 596, "0", "4"),
                                                    (second.run_id, len(extra_ids), "5", "5")]  # fmt: skip
    lake = pq.ParquetDataset(isolated_env / EVENTS).read(columns=["event_id"]).column("event_id").to_pylist()
    assert sorted(lake) == sorted(ids + extra_ids)
    assert rows(ledger_url, "SELECT sum(quantity) FROM govops.usage_event WHERE attributes->>'stream_id' = :s",
                s=sid) == [(len(lake),)]  # fmt: skip
    totals = rows(ledger_url, f"SELECT sum(read), sum(written), sum(rejected) FROM govops.extraction_run "
                  f"WHERE {RUNS}", d=dag, runs=[first.run_id, second.run_id])  # fmt: skip
    assert totals == [(720, len(lake), len(bad) + len(extra_bad))]


def test_continuous_mode_picks_up_a_drop(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs until stopped (SIGTERM to the driver: it stops between batches and reports)."""
    import signal

    import psutil

    files, _ = event_files(tmp_path, seed=25, events=300, per_file=150)
    landing = tmp_path / "landing"
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    drop(files[:1], landing)
    records = isolated_env / "_streams/landing_events_stream/batches"
    dag, run_id = "pipeline_landing_events_stream", "manual__continuous"
    uri = manifests.manifest_uri(isolated_env.as_uri(), dag, run_id, "extract", -1)
    cmd, env = spark_submit.command("extract_stream", {
        "dag-id": dag, "run-id": run_id, "task-id": "extract", "lake-root": isolated_env.as_uri(), "manifest": uri,
        "spec": load_spec(SPECS / "landing_events_stream.yaml").model_dump_json(), "landing-root": landing.as_uri(),
        "trigger": "continuous", "trigger-interval": "500 milliseconds",
    })  # fmt: skip
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (records / "000000000000.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (records / "000000000000.json").exists(), "the first batch never committed"
        dropped = time.monotonic()
        drop(files[1:], landing)
        while not (records / "000000000001.json").exists() and time.monotonic() < dropped + 20:
            time.sleep(0.1)
        latency = time.monotonic() - dropped
        assert (records / "000000000001.json").exists(), "the dropped file was not picked up"
        assert latency < 20
        [driver] = [p for p in psutil.Process(job.pid).children(recursive=True) if p.name().startswith("python")
                    and any(a.endswith("extract_stream.py") for a in p.cmdline())]  # fmt: skip
        driver.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, stderr[-3000:]
    manifest = manifests.read(uri)
    assert manifest["counts"]["read"] == 300
    assert manifest["outputs"][0]["stream"]["trigger"] == "continuous"
    assert manifest["metering"][0]["attributes"]["stream_batch_to"] == 1
    assert json.loads((records / "000000000001.json").read_text())["files"][0].endswith(files[1].name)


def test_airflow_runs_a_stream_continuously_for_a_while(
    isolated_env: Path, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG param continuous_seconds keeps the query running with a processing-time
    trigger: a file dropped meanwhile is taken by the same run, metered once with it."""
    import threading

    files, bad = event_files(tmp_path, seed=26, events=300, per_file=150)
    landing = tmp_path / "landing"
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    work_order(ledger_url)
    drop(files[:1], landing)
    records = isolated_env / "_streams/landing_events_stream/batches"
    seen: dict[str, float] = {}

    def drop_after_the_first_batch() -> None:
        deadline = time.monotonic() + 120
        while not (records / "000000000000.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        seen["dropped"] = time.monotonic()
        drop(files[1:], landing)
        while not (records / "000000000001.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        seen["committed"] = time.monotonic()

    dropper = threading.Thread(target=drop_after_the_first_batch, daemon=True)
    dropper.start()
    dag = "pipeline_landing_events_stream"
    run = run_dag(dag, conf={"continuous_seconds": 25}, logical_date=datetime(2026, 9, 1, tzinfo=UTC))
    dropper.join(timeout=5)
    assert run.state == "success", run.task_states
    assert (records / "000000000001.json").exists(), "the file dropped during the run was not taken"
    assert seen["committed"] - seen["dropped"] < 15
    ids, malformed = source_lines(files)
    log = rows(ledger_url, "SELECT read, written, rejected, watermark_to FROM govops.extraction_run "
               f"WHERE {RUNS}", d=dag, runs=[run.run_id])  # fmt: skip
    assert log == [(300, len(ids), len(malformed), "batch=1")] and len(malformed) == len(bad)
    metered = rows(ledger_url, "SELECT quantity, attributes->>'stream_batch_from', attributes->>'stream_batch_to' "
                   f"FROM govops.usage_event WHERE {RUNS}", d=dag, runs=[run.run_id])  # fmt: skip
    assert metered == [(len(ids), "0", "1")]


def test_kafka_without_the_connector_fails_naming_it(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "bus_events_kafka.yaml").write_text(
        "pipeline: bus_events_kafka\ndescription: 事件总线\nservice_item: '02'\ndepartment: 区大数据中心\n"
        f"work_order: {WORK_ORDER}\nmode: stream\nsource: {{kind: kafka, bootstrap_servers: 'broker:9092', "
        "topic: service-events, columns: {event_id: string}}\ntarget: {dataset: bus/service_events}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", (tmp_path / "landing").as_uri())
    result, manifest = submit(isolated_env, folder, "bus_events_kafka", "manual__kafka")
    assert result.returncode != 0 and manifest is not None and manifest["status"] == "failed"
    assert ("bus_events_kafka: source kind kafka needs Spark's Kafka connector "
            "(org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0") in manifest["error"]  # fmt: skip
    assert "Failed to find data source: kafka" in manifest["error"]
