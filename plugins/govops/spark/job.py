"""Runtime of a ``spark-submit`` program: common parameters, the session, the manifest.

A job module defines its own arguments on :func:`parser` and a body taking a
:class:`JobContext`; :func:`run` does the rest and writes the manifest (also on failure,
with the error, before exiting non-zero).
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from govops.errors import is_refusal
from govops.spark.lake import HadoopFS, StagedOutput
from govops.spark.manifest import MANIFEST_VERSION, run_key

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def parser(description: str) -> argparse.ArgumentParser:
    """The parameters every job takes; jobs add their own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dag-id", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--task-id", required=True)
    p.add_argument("--map-index", type=int, default=-1)
    p.add_argument("--try-number", type=int, default=1)
    p.add_argument("--work-order-id", default=None)
    p.add_argument("--lake-root", required=True, help="file:///... or hdfs://...")
    p.add_argument("--manifest", required=True, help="URI the manifest is written to")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    return p


@dataclass
class JobContext:
    name: str
    args: argparse.Namespace
    spark: SparkSession
    fs: HadoopFS
    options: dict[str, str]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"read": 0, "written": 0, "rejected": 0})
    metering: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def run(self) -> dict[str, Any]:
        a = self.args
        return {
            "dag_id": a.dag_id,
            "run_id": a.run_id,
            "task_id": a.task_id,
            "map_index": a.map_index,
            "try_number": a.try_number,
            "work_order_id": a.work_order_id,
        }

    @property
    def lake_root(self) -> str:
        return self.args.lake_root.rstrip("/")

    def staged_output(self, zone: str, dataset: str) -> StagedOutput:
        a = self.args
        out = StagedOutput(self.fs, self.lake_root, run_key(a.dag_id, a.run_id, a.task_id, a.map_index), zone, dataset)
        out.prepare()
        return out

    def timed(self, name: str) -> _Timer:
        return _Timer(self.timings, name)


class _Timer:
    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.perf_counter() - self.start, 3)


CHECKSUM_ALGORITHM = "sum-xxhash64-v1"


def checksum_columns(df: DataFrame, columns: list[Any], where: Any = None) -> tuple[Any, Any]:
    """Aggregates for an order-independent content checksum and a row count of the rows of
    ``df`` (those matching the Column ``where``, if given); columns are names or Columns.

    The checksum is the sum of the rows' xxhash64 modulo 2**64, summed as two 32-bit halves
    in longs (exact up to 2**31 rows, and far cheaper than a decimal sum per row). Used with
    ``DataFrame.observe`` so the figures come from the same pass that writes.
    """
    from pyspark.sql import functions as F

    row_hash = F.xxhash64(*[F.col(c) if isinstance(c, str) else c for c in columns])
    rows = F.count(F.lit(1))
    if where is not None:
        row_hash, rows = F.when(where, row_hash), F.count_if(where)
    high = F.sum(F.shiftrightunsigned(row_hash, 32)).cast("decimal(38,0)")
    low = F.sum(row_hash.bitwiseAND(F.lit(0xFFFFFFFF))).cast("decimal(38,0)")
    hash_sum = F.coalesce(high * F.lit(1 << 32).cast("decimal(38,0)") + low, F.lit(0).cast("decimal(38,0)"))
    return rows.alias("rows"), hash_sum.alias("hash_sum")


def checksum_value(hash_sum: Any) -> str:
    return f"{int(hash_sum) % (1 << 64):016x}"


def _local_executors_have_govops() -> bool:
    """Whether the executors run on this machine (a local master) and its Python has this
    package installed, outside the --py-files zip: then their Python workers can start
    from govops.runtime.spark_daemon, which imports the installed, compiled pyspark instead
    of compiling Spark's pyspark.zip at every start (half a second per job)."""
    import os
    import shutil
    import sys
    from importlib.machinery import PathFinder

    from pyspark import SparkConf, SparkContext

    workers = shutil.which(os.environ.get("PYSPARK_PYTHON") or sys.executable)
    if not workers or os.path.abspath(workers) != os.path.abspath(sys.executable):
        return False  # the workers run another Python than this driver
    SparkContext._ensure_initialized()  # the JVM spark-submit started: its conf names the master
    if not SparkConf().get("spark.master", "").startswith("local"):
        return False
    return PathFinder.find_spec("govops", [p for p in sys.path if not p.endswith(".zip")]) is not None


def run(name: str, arg_parser: argparse.ArgumentParser, body: Callable[[JobContext], None]) -> None:
    from pyspark.sql import SparkSession

    args = arg_parser.parse_args()
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            arg_parser.error(f"--option {item!r} is not KEY=VALUE")
        options[key] = value
    builder = (
        SparkSession.builder.appName(f"govops:{name}:{args.dag_id}:{args.task_id}")
        .config("spark.log.level", options.get("log_level", "WARN"))
        # Python workers talk to their executor over a Unix socket: over TCP every Python
        # task ends with a ~40 ms stall (delayed ACK), measured with PySpark 4.2.
        .config("spark.python.unix.domain.socket.enabled", "true")
    )
    if _local_executors_have_govops():
        builder = builder.config("spark.python.daemon.module", "govops.runtime.spark_daemon")
    spark = builder.getOrCreate()
    ctx = JobContext(name=name, args=args, spark=spark, fs=HadoopFS(spark), options=options)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    error: str | None = None
    failure: dict[str, Any] = {}
    try:
        body(ctx)
    except BaseException as exc:
        error = traceback.format_exc(limit=20)
        # The job's own error, for the Airflow exception and govops.task_failure; a refusal
        # (a CodedError) is not retried.
        failure = {"error_message": f"{type(exc).__name__}: {exc}"[:4000], "retryable": not is_refusal(exc)}
        raise
    finally:
        ctx.timings["total_s"] = round(time.perf_counter() - clock, 3)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "job": name,
            "status": "failed" if error else "succeeded",
            "error": error,
            **failure,
            "run": ctx.run,
            "app_id": spark.sparkContext.applicationId,
            "spark": {"version": spark.version, "master": spark.sparkContext.master},
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "options": options,
            "inputs": ctx.inputs,
            "outputs": ctx.outputs,
            "counts": ctx.counts,
            "metering": ctx.metering,
            "timings": ctx.timings,
        }
        try:
            ctx.fs.write_text(args.manifest, json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
        finally:
            spark.stop()
