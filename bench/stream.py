"""Stream extraction (item 02) figures, with the bundled landing_events_stream spec:

- throughput: N events (default 500,000) in files of 10,000 JSON lines, taken in by one
  ``availableNow`` run of spark_jobs/extract_stream.py (records/s on the job's stream time,
  which excludes JVM start-up; micro-batches of the spec's max_files_per_batch files);
- latency: the same job in continuous mode (processingTime trigger every 500 ms): a file of
  1,000 events is dropped into the landing directory, and the time until its batch record
  appears in the lake (rows and rejects published) is measured, several times.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path

from bench import spark_submit
from govops import settings

SPEC = "landing_events_stream"
DAG = f"pipeline_{SPEC}"


def command(lake: Path, landing: Path, run_id: str, *extra: str) -> tuple[list[str], str]:
    from govops.pipelines.spec import load_spec
    from govops.spark import manifest as manifests
    from govops.spark.package import build_zip

    spec = load_spec(settings.repo_root() / "include" / "pipelines" / f"{SPEC}.yaml")
    uri = manifests.manifest_uri(lake.as_uri(), DAG, run_id, "extract", -1)
    cmd = ["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--driver-memory", "2g",
           "--py-files", str(build_zip()), str(settings.spark_jobs_dir() / "extract_stream.py"),
           "--dag-id", DAG, "--run-id", run_id, "--task-id", "extract", "--lake-root", lake.as_uri(),
           "--manifest", uri, "--spec", spec.model_dump_json(), "--landing-root", landing.as_uri(), *extra]  # fmt: skip
    return cmd, uri


def drop(source: Path, folder: Path, name: str) -> float:
    """Drop a file as a front-end machine does (hidden name, then rename); the drop time."""
    shutil.copy(source, folder / f".{name}.part")
    (folder / f".{name}.part").rename(folder / name)
    return time.monotonic()


def bench_stream(events: int, drops: int = 8) -> dict:
    from govops.sample_data import SampleConfig, generate

    root = settings.home() / "bench-stream"
    shutil.rmtree(root, ignore_errors=True)
    landing, lake = root / "landing", root / "lake"
    lake.mkdir(parents=True)
    started = time.perf_counter()
    generate(SampleConfig(seed=7, persons=2000, events=events, events_per_file=10_000), landing)
    print(f"stream sample: {events:,} events in {len(list((landing / 'events').glob('*.jsonl')))} files, "
          f"written in {time.perf_counter() - started:.1f}s")

    m = spark_submit(*command(lake, landing, "bench_throughput"))
    stream_s, wall = m["timings"]["stream_s"], m["wall_s"]
    batches = len(m["outputs"][0]["partitions"])
    print(f"stream throughput (availableNow, local[2]): {m['counts']['read']:,} records in {batches} micro-batches, "
          f"{stream_s:.1f}s stream time = {m['counts']['read'] / stream_s:,.0f} records/s "
          f"({wall:.1f}s wall with JVM start-up); written {m['counts']['written']:,}, "
          f"rejected {m['counts']['rejected']:,}")  # fmt: skip

    # Latency: a fresh stream over a folder of its own, fed one file at a time.
    folder, lake2 = root / "landing2" / "events", root / "lake2"
    folder.mkdir(parents=True)
    one = sorted((landing / "events").glob("*.jsonl"))[0]
    small = root / "small.jsonl"
    small.write_text("".join(one.read_text(encoding="utf-8").splitlines(keepends=True)[:1000]), encoding="utf-8")
    drop(small, folder, "events-0000.jsonl")
    cmd, _ = command(lake2, root / "landing2", "bench_latency", "--trigger", "continuous", "--trigger-interval",
                       "500 milliseconds")  # fmt: skip
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = lake2 / "_streams" / SPEC / "batches"
    latencies, batch_s = [], []
    try:
        _wait(records / "000000000000.json", 180)
        for i in range(1, drops + 1):
            dropped = drop(small, folder, f"events-{i:04d}.jsonl")
            record = _wait(records / f"{i:012d}.json", 60)
            latencies.append(time.monotonic() - dropped)
            batch_s.append(json.loads(record.read_text())["seconds"])
            time.sleep(1)
    finally:
        _stop(job)
    print(f"stream latency (continuous, trigger 500 ms, 1,000-event files, {drops} drops): file landed -> batch "
          f"committed median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s; the micro-batch "
          f"itself median {statistics.median(batch_s):.2f}s")  # fmt: skip
    return {"records_per_s": m["counts"]["read"] / stream_s, "latency_median_s": statistics.median(latencies),
            "latency_max_s": max(latencies)}  # fmt: skip


def _wait(path: Path, seconds: float) -> Path:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear within {seconds}s")
        time.sleep(0.05)
    return path


def _stop(job: subprocess.Popen) -> None:
    """SIGTERM to the Python driver: the job stops between batches and writes its manifest."""
    import psutil

    for child in psutil.Process(job.pid).children(recursive=True):
        if child.name().startswith("python") and any(a.endswith("extract_stream.py") for a in child.cmdline()):
            child.send_signal(signal.SIGTERM)
    try:
        job.wait(timeout=120)
    except subprocess.TimeoutExpired:
        job.kill()
