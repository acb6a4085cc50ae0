"""Stream extraction (实时数据抽取 item 02): a source into the lake with Structured Streaming.

    spark-submit --py-files govops.zip spark_jobs/extract_stream.py <contract arguments> \
        --spec '<the pipeline spec as JSON>' [--metered-through N] [--stream-id ID] \
        [--trigger continuous --trigger-interval '1 second' --run-seconds S]

Sources: JSON lines that front-end machines drop into a landing directory, incremental
capture of a PostgreSQL table by a growing offset column (govops.pipelines.capture), or
Kafka (needs Spark's Kafka connector on the cluster). By default the job runs the new data
as micro-batches and stops (``availableNow``, for Airflow's short schedule); with
``--trigger continuous`` it keeps a ``processingTime`` trigger for ``--run-seconds`` (0: until
stopped) for latencies of seconds.

Each micro-batch (foreachBatch) is cleansed like the batch job (govops.pipelines.cleansing),
written to ``<zone>/<dataset>/batch=<id>`` and ``rejects/<dataset>/batch=<id>`` through
staging, checked input = written + rejected from the observed metrics of the same pass,
and then recorded in ``_streams/<pipeline>/batches/<id>.json``. The checkpoint under
``_checkpoints/<pipeline>`` makes Spark replay an unfinished batch with the same offsets,
and the replay replaces its own partitions: exactly-once output.

The manifest meters every recorded batch above ``--metered-through`` (the highest batch
the ledger holds, from the DAG's prepare), including batches that a killed run committed
but never metered: exactly-once metering. Its counts are the sums of those batches.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

from govops.pipelines import stream
from govops.pipelines.cleansing import CORRUPT, LOCATION, cleanse, typed
from govops.pipelines.readers import resolve
from govops.pipelines.spec import PipelineSpec, parse_spec
from govops.spark import job
from govops.spark.jdbc import PASSWORD_ENV
from govops.spark.lake import StagedOutput

KAFKA_PACKAGE = "org.apache.spark:spark-sql-kafka-0-10_2.13"
# Tests only: kill this process at a point of a batch, e.g. "1:after_data" (see BatchWriter._hook).
KILL_ENV = "GOVOPS_STREAM_KILL_AT"


class KafkaConnectorMissing(RuntimeError):
    pass


def _opt_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "", "None") else None


def source_frame(ctx: job.JobContext, spec: PipelineSpec) -> Any:
    """The streaming DataFrame: text columns for JSON (cast per batch), typed for a table;
    each row with its source location."""
    from pyspark.sql import functions as F

    a, s = ctx.args, spec.source
    if s.kind == "jsonl_stream":
        columns = s.columns or {}
        ctx.spark.conf.set("spark.sql.legacy.javaCharsets", "true")  # GBK and other Java charsets
        reader = (
            ctx.spark.readStream.schema(", ".join(f"`{n}` string" for n in columns) + f", `{CORRUPT}` string")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("lineSep", "\n")
            .option("encoding", s.encoding)
            # Spark skips files more than maxFileAge (default 7 days) older than the newest one:
            # a late drop with an old modification time must still be read.
            .option("maxFileAge", "3650d")
        )
        if s.max_files_per_batch:
            reader = reader.option("maxFilesPerTrigger", s.max_files_per_batch)
        return reader.json(resolve(s.path, a.landing_root)).withColumn(LOCATION, F.col("_metadata.file_path"))
    if s.kind == "jdbc_capture":
        from govops.pipelines import capture

        dsn = capture.conninfo(a.jdbc_url, a.user)
        password = os.environ.get(PASSWORD_ENV) or ""
        columns = capture.table_columns(dsn, password, s.table, s.columns)
        ctx.spark.dataSource.register(capture.PgCapture)
        reader = ctx.spark.readStream.format(capture.NAME).options(
            dsn=dsn, password=password, table=s.table, offset_column=s.offset_column, columns=json.dumps(columns),
            partitions=str(ctx.spark.sparkContext.defaultParallelism),
        )  # fmt: skip
        if s.max_records_per_batch:
            reader = reader.option("max_rows", str(s.max_records_per_batch))
        df = reader.load()
        location = F.concat(F.lit(f"{s.table}#{s.offset_column}="), F.col(s.offset_column).cast("string"))
        return df.withColumn(LOCATION, location)
    return kafka_frame(ctx, spec)


def kafka_frame(ctx: job.JobContext, spec: PipelineSpec) -> Any:
    from pyspark.errors import AnalysisException

    s = spec.source
    reader = (
        ctx.spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", s.bootstrap_servers)
        .option("subscribe", s.topic)
        .option("startingOffsets", "earliest")
        .options(**s.kafka_options)
    )
    if s.max_records_per_batch:
        reader = reader.option("maxOffsetsPerTrigger", str(s.max_records_per_batch))
    try:
        raw = reader.load()
    except AnalysisException as exc:
        if "kafka" not in str(exc).lower():
            raise
        raise KafkaConnectorMissing(
            f"{spec.pipeline}: source kind kafka needs Spark's Kafka connector ({KAFKA_PACKAGE}:{ctx.spark.version} "
            "and its kafka-clients dependency), which this Spark does not have: put the jars on the cluster's "
            "classpath (spark.jars in spark-defaults.conf), or use kind jsonl_stream or jdbc_capture. "
            f"Spark said: {str(exc).splitlines()[0]}"
        ) from None
    return kafka_records(raw, spec)


def kafka_records(raw: Any, spec: PipelineSpec) -> Any:
    """Kafka messages (value: a JSON record) as text columns, with the corrupt-record column
    and the message's topic, partition and offset as its location."""
    from pyspark.sql import functions as F

    columns = spec.source.columns or {}
    schema = ", ".join(f"`{n}` string" for n in columns) + f", `{CORRUPT}` string"
    parsed = F.from_json(F.col("value").cast("string"), schema,
                         {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})  # fmt: skip
    location = F.format_string("kafka:%s/%d@%d", F.col("topic"), F.col("partition"), F.col("offset"))
    return raw.select(parsed.alias("r"), location.alias(LOCATION)).select("r.*", LOCATION)


class Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = round(now - self.last, 3), now


class BatchWriter:
    """The foreachBatch function: one micro-batch into the lake, whole or not at all."""

    def __init__(self, ctx: job.JobContext, spec: PipelineSpec) -> None:
        self.ctx, self.spec = ctx, spec
        self.records = stream.records_uri(ctx.lake_root, spec.pipeline)
        self.checkpoint = stream.checkpoint_uri(ctx.lake_root, spec.pipeline)
        self.ran: list[int] = []

    def __call__(self, batch: Any, batch_id: int) -> None:
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        ctx, spec = self.ctx, self.spec
        started = time.perf_counter()
        seen = Observation(f"input_{batch_id}")
        measures = [F.count(F.lit(1)).alias("rows")]
        if spec.source.kind == "jsonl_stream":
            measures.append(F.array_sort(F.collect_set(LOCATION)).alias("files"))
        if spec.source.kind == "jdbc_capture":
            column = F.col(spec.source.offset_column)
            measures += [F.min(column).cast("string").alias("first"), F.max(column).cast("string").alias("last")]
        cached = batch.observe(seen, *measures).persist()  # read once for the output, rejects and reasons
        frame, cast_reasons = cached, []
        if spec.source.kind != "jdbc_capture":
            frame, cast_reasons = typed(cached, spec.source.columns or {})
        good, rejected = cleanse(frame, spec, cast_reasons)
        columns = [c for c in good.columns if c != LOCATION]
        key = f"_stream/{spec.pipeline}"
        data = StagedOutput(ctx.fs, ctx.lake_root, key, spec.target.zone, f"{spec.target.dataset}/batch={batch_id}")
        rejects = StagedOutput(ctx.fs, ctx.lake_root, key, "rejects", f"{spec.target.dataset}/batch={batch_id}")
        data.prepare()
        rejects.prepare()
        written_obs, rejected_obs = Observation(f"written_{batch_id}"), Observation(f"rejected_{batch_id}")
        clock = Clock()
        good.drop(LOCATION).observe(written_obs, *job.checksum_columns(good, columns)).write.mode(
            "overwrite"
        ).parquet(data.staging)
        clock.lap("data_s")
        # Rejects are kept in memory while written, then counted per reason without cleansing again.
        kept = rejected.persist()
        kept.observe(rejected_obs, F.count(F.lit(1)).alias("rows")).write.mode("overwrite").parquet(rejects.staging)
        reasons = {r["reason"]: r["n"] for r in kept.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()}
        clock.lap("rejects_s")
        read, stats = seen.get, written_obs.get
        counts = {"input": int(read["rows"]), "written": int(stats["rows"]), "rejected": int(rejected_obs.get["rows"])}
        if counts["input"] != counts["written"] + counts["rejected"] or sum(reasons.values()) != counts["rejected"]:
            raise RuntimeError(f"{spec.pipeline} batch {batch_id}: counts do not reconcile: input {counts['input']}, "
                               f"written {counts['written']}, rejected {counts['rejected']} {reasons}")  # fmt: skip
        self._hook(batch_id, "after_write")
        marker = {"run": ctx.run, "batch_id": batch_id, "rows": counts["written"]}
        data.commit(marker)
        rejects.commit({**marker, "rows": counts["rejected"]})
        clock.lap("publish_s")
        self._hook(batch_id, "after_data")
        record = {
            "batch_id": batch_id, "pipeline": spec.pipeline, **counts, "reasons": reasons,
            "checksum_sum": str(stats["hash_sum"] or 0), "columns": columns,
            "schema": {n: t for n, t in good.dtypes if n != LOCATION},
            "offsets": self._offsets(batch_id), "files": read.get("files"),
            "offset_range": [read["first"], read["last"]] if "first" in read else None,
            "data_uri": data.target, "rejects_uri": rejects.target, "run": ctx.run,
            "seconds": round(time.perf_counter() - started, 3), "timings": clock.laps,
            "committed_at": datetime.now(UTC).isoformat(),
        }  # fmt: skip
        ctx.fs.write_text(f"{self.records}/{stream.record_name(batch_id)}", json.dumps(record, ensure_ascii=False))
        cached.unpersist()
        kept.unpersist()
        self.ran.append(batch_id)
        self._hook(batch_id, "after_record")

    def _offsets(self, batch_id: int) -> Any:
        """The batch's end offsets from the checkpoint's offset log (written before the batch)."""
        lines = self.ctx.fs.read_text(f"{self.checkpoint}/offsets/{batch_id}").splitlines()
        return [json.loads(x) if x and x != "-" else None for x in lines[2:]]

    def _hook(self, batch_id: int, point: str) -> None:
        # A kill -9 at a chosen point, for the tests of exactly-once output and metering.
        if os.environ.get(KILL_ENV) == f"{batch_id}:{point}":
            os.kill(os.getpid(), signal.SIGKILL)


def run_query(ctx: job.JobContext, spec: PipelineSpec) -> tuple[BatchWriter, dict[int, dict[str, Any]], str]:
    """Run the stream; returns the writer, the progress of each batch it ran, and the query id."""
    from pyspark.sql import functions as F

    a = ctx.args
    df = source_frame(ctx, spec).observe("govops_stream_input", F.count(F.lit(1)).alias("rows"))
    writer = BatchWriter(ctx, spec)
    start = (
        df.writeStream.queryName(f"govops_{spec.pipeline}")
        .option("checkpointLocation", writer.checkpoint)
        .foreachBatch(writer)
    )
    continuous = a.trigger == "continuous"
    start = start.trigger(processingTime=a.trigger_interval) if continuous else start.trigger(availableNow=True)
    stop = {"asked": False}

    def ask_stop(*_: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_stop)
    query = start.start()
    progress: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + a.run_seconds if continuous and a.run_seconds > 0 else None
    while query.isActive:
        query.awaitTermination(0.5)
        for p in query.recentProgress:
            progress[p.batchId] = {"rows": p.numInputRows, "observed": p.observedMetrics}
        out_of_time = deadline is not None and time.monotonic() > deadline
        if (stop["asked"] or out_of_time) and not query.status["isTriggerActive"]:
            query.stop()  # between batches: nothing to replay
    if query.exception() is not None:
        raise RuntimeError(f"{spec.pipeline}: the stream failed: {query.exception()}")
    for p in query.recentProgress:
        progress[p.batchId] = {"rows": p.numInputRows, "observed": p.observedMetrics}
    return writer, progress, query.id


def extract_stream(ctx: job.JobContext) -> None:
    a = ctx.args
    spec = parse_spec(a.spec)
    checkpoint = stream.checkpoint_uri(ctx.lake_root, spec.pipeline)
    records_dir = stream.records_uri(ctx.lake_root, spec.pipeline)
    found = stream.checkpoint_stream_id(ctx.fs, checkpoint)
    if a.stream_id and found != a.stream_id:
        raise RuntimeError(f"{checkpoint}: the checkpoint is stream {found}, prepare saw {a.stream_id}: "
                           "it was replaced since; run again")  # fmt: skip
    if found is None and ctx.fs.list_names(records_dir):
        raise RuntimeError(
            f"{checkpoint} is missing but {records_dir} holds batches: without the checkpoint the stream would "
            "start over and write those batches again. Restore the checkpoint, or remove the dataset, its rejects "
            f"and {records_dir.rsplit('/', 1)[0]} to extract everything anew."
        )
    metered_through, meter_through = _opt_int(a.metered_through), _opt_int(a.meter_through)
    metered_through = -1 if metered_through is None else metered_through
    progress: dict[int, dict[str, Any]] = {}
    ran: list[int] = []
    with ctx.timed("stream_s"):
        if meter_through is None:  # a re-run of a metered run only reports its batches again
            writer, progress, found = run_query(ctx, spec)
            ran = writer.ran
    records = [json.loads(ctx.fs.read_text(f"{records_dir}/{name}")) for name in ctx.fs.list_names(records_dir)
               if name.endswith(".json") and int(name.split(".")[0]) > metered_through
               and (meter_through is None or int(name.split(".")[0]) <= meter_through)]  # fmt: skip
    ids = [r["batch_id"] for r in records]
    last = meter_through if meter_through is not None else max(ids, default=-1)
    expected = list(range(metered_through + 1, last + 1))
    if ids != expected:
        raise RuntimeError(f"{records_dir}: batch records {ids} above {metered_through}, expected {expected}")
    for batch_id in ran:  # the stream's own figures agree with what each batch recorded
        seen = progress.get(batch_id)
        record = next(r for r in records if r["batch_id"] == batch_id) if batch_id > metered_through else None
        if seen is None or record is None:
            continue
        observed = seen["observed"].get("govops_stream_input")
        if seen["rows"] != record["input"] or (observed is not None and observed["rows"] != record["input"]):
            raise RuntimeError(f"{spec.pipeline} batch {batch_id}: the query's progress counted {seen['rows']} "
                               f"input rows (observed {observed}), the batch recorded {record['input']}")  # fmt: skip
    finish_manifest(ctx, spec, records, found, ran)


def finish_manifest(
    ctx: job.JobContext, spec: PipelineSpec, records: list[dict[str, Any]], stream_id: str | None, ran: list[int]
) -> None:
    read = sum(r["input"] for r in records)
    written = sum(r["written"] for r in records)
    rejected = sum(r["rejected"] for r in records)
    reasons: dict[str, int] = {}
    for r in records:
        for reason, n in r["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    ctx.counts.update(read=read, written=written, rejected=rejected)
    target = f"{ctx.lake_root}/{spec.target.zone}/{spec.target.dataset}"
    first, last = (records[0]["batch_id"], records[-1]["batch_id"]) if records else (None, None)
    latest = records[-1] if records else {}
    source = spec.source
    where = getattr(source, "table", None) or getattr(source, "topic", None) or source.path
    uri = {"jdbc_capture": ctx.args.jdbc_url, "kafka": f"kafka://{source.bootstrap_servers}/{source.topic}"}.get(
        source.kind, resolve(source.path or "", ctx.args.landing_root)
    )
    ctx.inputs.append({"kind": source.kind, "uri": uri, "table": getattr(source, "table", None), "rows": read})
    ctx.outputs.append({
        "uri": target, "zone": spec.target.zone, "dataset": spec.target.dataset, "format": "parquet",
        "rows": written, "partitions": [f"batch={r['batch_id']}" for r in records],
        "columns": latest.get("columns"), "schema": latest.get("schema"),
        "checksum": {"algorithm": job.CHECKSUM_ALGORITHM,
                     "value": job.checksum_value(sum(int(r["checksum_sum"]) for r in records))},
        "watermark": f"batch={last}" if records else None,
    })  # fmt: skip
    ctx.outputs.append({"uri": f"{ctx.lake_root}/rejects/{spec.target.dataset}", "zone": "rejects", "rows": rejected,
                        "reasons": reasons})  # fmt: skip
    ctx.outputs[0]["stream"] = {
        "stream_id": stream_id, "checkpoint": stream.checkpoint_uri(ctx.lake_root, spec.pipeline),
        "batch_from": first, "batch_to": last, "batches_run_here": ran,
        "offsets": latest.get("offsets"),
        "trigger": "continuous" if ctx.args.trigger == "continuous" else "availableNow",
    }  # fmt: skip
    if records:
        # One event for all batches above the ledger's mark; the range goes with it, so the
        # next run's prepare knows where metering stopped.
        ctx.metering.append({
            "service_item": "02", "unit": "record", "quantity": written, "records": written, "data_source": where,
            "attributes": {"stream_id": stream_id, "stream_batch_from": first, "stream_batch_to": last,
                           "stream_batches": len(records), "read": read, "rejected": rejected},
        })  # fmt: skip


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--spec", required=True, help="the pipeline spec as JSON")
    p.add_argument("--jdbc-url", default=None)
    p.add_argument("--user", default=None)
    p.add_argument("--landing-root", default=None, help="where relative file paths of the spec are read")
    p.add_argument("--metered-through", default=None, help="the highest batch the ledger holds (-1: none)")
    p.add_argument("--meter-through", default=None, help="re-run of a metered run: report batches up to this one")
    p.add_argument("--stream-id", default=None, help="the checkpoint's query id prepare saw (empty: none)")
    p.add_argument("--trigger", choices=("available-now", "continuous"), default="available-now",
                   help="available-now: the new data, then stop; continuous: a processingTime trigger")  # fmt: skip
    p.add_argument("--trigger-interval", default="1 second", help="with --trigger continuous")
    p.add_argument("--run-seconds", type=float, default=0,
                   help="with --trigger continuous: stop after this long (0: until stopped)")  # fmt: skip
    job.run("extract_stream", p, extract_stream)


if __name__ == "__main__":
    main()
