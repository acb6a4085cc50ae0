"""Declarative extraction (批数据抽取 item 04, 采集接入 item 01): one source into the lake.

    spark-submit --py-files govops.zip spark_jobs/extract.py <contract arguments> \
        --spec '<the pipeline spec as JSON>' [--watermark-from VALUE] [--watermark-to VALUE] [--first-load]

Sources: a JDBC table or query (partitioned parallel reads), or CSV / JSON-lines / XML /
XLSX / Parquet files (govops.pipelines.readers). Cleansing from the spec
(govops.pipelines.cleansing): trim, required columns, lengths, casts, date formats, dedupe.
A row that fails cleansing is not dropped: it goes to <lake>/rejects/<dataset>/<run key>
with its reason and its source location, and read = written + rejected is checked before
anything is published. Full loads replace the dataset; incremental loads add one
partition per run (load=<run key>), so a re-run replaces its own partition. The manifest
reports the highest watermark value read; Airflow commits it only after this run is
published and metered.
"""

from __future__ import annotations

import json
import os

from govops.pipelines.cleansing import (
    LOCATION,
    REASON,
    cleansed,
    flag,
    good_rows,
    null_watermark_reason,
    rejected_rows,
)
from govops.pipelines.readers import read_files
from govops.pipelines.spec import PipelineSpec, parse_spec
from govops.spark import job
from govops.spark.jdbc import PASSWORD_ENV
from govops.spark.manifest import _safe, run_key


def read_jdbc(ctx: job.JobContext, spec: PipelineSpec):  # -> DataFrame
    from pyspark.sql import functions as F

    a, source = ctx.args, spec.source

    def reader():  # a DataFrameReader keeps its options: start afresh for each read
        # prepareThreshold=-1: the driver asks for binary rows from the first query, which
        # spares parsing text numbers and timestamps (about 10% faster reads).
        r = ctx.spark.read.format("jdbc").options(
            url=a.jdbc_url, driver="org.postgresql.Driver", fetchsize=str(source.fetch_size), prepareThreshold="-1"
        )
        if a.user:
            r = r.option("user", a.user)
        if os.environ.get(PASSWORD_ENV):
            r = r.option("password", os.environ[PASSWORD_ENV])
        return r

    relation = f"({source.query}) AS q" if source.query else source.table
    keys = key_columns(ctx, spec)
    # Rows with a NULL watermark are rejected (cleansing) by the first run that reads them.
    # With a key to tell them apart, every run reads them and skips those a committed run
    # already rejected (their source_location); without one, only a run with no lower
    # bound (the first load and its re-runs) reads them.
    null_rejects = json.loads(a.null_rejects or "[]") if keys else []
    if spec.mode == "incremental" and (a.watermark_from or a.watermark_to):
        column = spec.watermark.column
        bounds = [f"{column} {op} '{value.replace(chr(39), chr(39) * 2)}'"
                  for op, value in ((">", a.watermark_from), ("<=", a.watermark_to)) if value]  # fmt: skip
        where = " AND ".join(bounds)
        if keys or not a.watermark_from:
            where = f"({where}) OR {column} IS NULL"
        relation = f"(SELECT * FROM {relation} WHERE {where}) AS w"
    df = None
    if source.partition_column and source.num_partitions > 1:
        column = source.partition_column
        lo, hi = query_row(ctx, f"SELECT min({column})::text, max({column})::text FROM {relation}")
        if lo is not None:
            df = (
                reader()
                .option("dbtable", relation)
                .options(partitionColumn=column, lowerBound=lo, upperBound=hi, numPartitions=str(source.num_partitions))
                .load()
            )  # fmt: skip
    if df is None:
        df = reader().option("dbtable", relation).load()
    df = df.withColumn(LOCATION, jdbc_location(source.table or "query", keys))
    if null_rejects and spec.watermark:
        column = spec.watermark.column
        seen = (ctx.spark.read.parquet(*null_rejects).where(F.col("reason") == null_watermark_reason(column))
                .select(F.col("source_location").alias("__seen")).distinct())  # fmt: skip
        df = df.join(F.broadcast(seen), (F.col(LOCATION) == F.col("__seen")) & F.col(column).isNull(), "left_anti")
    return df


def key_columns(ctx: job.JobContext, spec: PipelineSpec) -> list[str]:
    """The columns that name a source row in its reject's location: the partition column,
    else the dedupe keys, else the table's primary key (none for a query without either)."""
    source = spec.source
    if source.partition_column:
        return [source.partition_column]
    if spec.cleansing.dedupe_keys:
        return list(spec.cleansing.dedupe_keys)
    if source.table is None:
        return []
    [pk] = query_row(ctx, "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) "
                          "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                          f"WHERE i.indrelid = '{source.table}'::regclass AND i.indisprimary") or [None]  # fmt: skip
    return pk.split(",") if pk else []


def jdbc_location(table: str, keys: list[str]):  # -> Column
    """``<table>#<key>=<value>[,<key>=<value>]``, as the stream capture locates its rows."""
    from pyspark.sql import functions as F

    if not keys:
        return F.lit(table)
    pairs = [F.concat(F.lit(f"{k}="), F.coalesce(F.col(k).cast("string"), F.lit("null"))) for k in keys]
    return F.concat(F.lit(f"{table}#"), F.concat_ws(",", *pairs))


def query_row(ctx: job.JobContext, sql: str) -> list[str | None]:
    """The first row of a small query, as text, on a JDBC connection of the driver's JVM (a
    Spark read would cost a Spark job). DriverRegistry makes a driver from --jars visible to
    DriverManager, as Spark's own JDBC reader does."""
    a, jvm = ctx.args, ctx.spark._jvm
    jvm.org.apache.spark.sql.execution.datasources.jdbc.DriverRegistry.register("org.postgresql.Driver")
    props = jvm.java.util.Properties()
    if a.user:
        props.setProperty("user", a.user)
    if os.environ.get(PASSWORD_ENV):
        props.setProperty("password", os.environ[PASSWORD_ENV])
    conn = jvm.java.sql.DriverManager.getConnection(a.jdbc_url, props)
    try:
        result = conn.createStatement().executeQuery(sql)
        if not result.next():
            return []
        return [result.getString(i + 1) for i in range(result.getMetaData().getColumnCount())]
    finally:
        conn.close()


def extract(ctx: job.JobContext) -> None:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    a = ctx.args
    spec = parse_spec(a.spec)
    key = run_key(a.dag_id, a.run_id, a.task_id, a.map_index)
    # One partition per run: a re-run of the run replaces it (pipelines/factory.py relies on the name).
    # A re-run of an interval under a new run id replaces the partition of the run it repeats.
    load = _safe(a.load_id or a.run_id)
    dataset = spec.target.dataset if spec.mode == "full" else f"{spec.target.dataset}/load={load}"
    out = ctx.staged_output(spec.target.zone, dataset)
    rejects = ctx.staged_output("rejects", f"{spec.target.dataset}/{key.replace('/', '__')}")

    with ctx.timed("plan_s"):  # JDBC: the partition bounds; files: listing, schema checks
        if spec.source.kind == "jdbc":
            source, cast_reasons = read_jdbc(ctx, spec), []
        else:
            source, cast_reasons = read_files(ctx, spec.source, a.landing_root)
    flagged = flag(source, spec, cast_reasons)
    # One pass reads the source, writes the good rows and observes (one metrics node, before
    # the split) the rows read and rejected and the good rows' count, checksum and
    # watermark; no cache of the whole source. Rejects are few: a second pass writes them
    # only when the first counted some.
    columns = good_rows(flagged, spec).drop(LOCATION).columns
    final = cleansed(spec)
    good_row = F.col(REASON).isNull()
    written_rows, hash_sum = job.checksum_columns(flagged, [final.get(c, c) for c in columns], where=good_row)
    measures = [F.count(F.lit(1)).alias("read"), F.count_if(~good_row).alias("rejected"), written_rows, hash_sum]
    if spec.watermark:
        # The highest value read, rejects included: the committed position, so that no later
        # run reads this run's rejects again, and the range a re-run of this run reads.
        # The rejects pass reads no further either.
        read_max = F.max(F.col(spec.watermark.column))
        measures += [read_max.cast("string").alias("watermark"), read_max.alias("watermark_read")]
    seen = Observation("extract")
    good = good_rows(flagged.observe(seen, *measures), spec).drop(LOCATION)
    with ctx.timed("read_write_s"):
        good.withColumn("_govops_run_id", F.lit(a.run_id)).write.mode("overwrite").parquet(out.staging)
    stats = seen.get
    read_rows, counted_rejects = int(stats["read"]), int(stats["rejected"])
    with ctx.timed("rejects_s"):
        if spec.watermark and stats["watermark_read"] is not None:
            column = F.col(spec.watermark.column)
            upto = (column <= F.lit(stats["watermark_read"])) | column.isNull()
            rejected = rejected_rows(flag(source.where(upto), spec, cast_reasons))
        else:
            rejected = rejected_rows(flagged)
        (rejected if counted_rejects else rejected.limit(0)).write.mode("overwrite").parquet(rejects.staging)
    with ctx.timed("verify_s"):
        written = ctx.spark.read.parquet(out.staging).count()
        rejects_written = ctx.spark.read.parquet(rejects.staging).count()
    ctx.counts.update(read=read_rows, written=written, rejected=rejects_written)
    if rejects_written != counted_rejects:
        raise RuntimeError(
            f"{spec.pipeline}: the source changed during the run: the load counted {counted_rejects} rejects, "
            f"the rejects pass found {rejects_written}; re-run it"
        )
    if read_rows != written + rejects_written or written != int(stats["rows"]):
        raise RuntimeError(
            f"{spec.pipeline}: counts do not reconcile: read {read_rows}, written {written}, "
            f"rejected {rejects_written}"
        )
    reasons = {r["reason"]: r["n"] for r in ctx.spark.read.parquet(rejects.staging).groupBy("reason")
               .agg(F.count(F.lit(1)).alias("n")).collect()} if counted_rejects else {}  # fmt: skip
    checksum = job.checksum_value(stats["hash_sum"])
    with ctx.timed("commit_s"):
        out.commit({"run": ctx.run, "rows": written, "checksum": checksum})
        rejects.commit({"run": ctx.run, "rows": rejects_written})
    files, size = ctx.fs.size(out.target)
    source_uri = a.jdbc_url if spec.source.kind == "jdbc" else spec.source.path
    ctx.inputs.append({"kind": spec.source.kind, "uri": source_uri, "table": getattr(spec.source, "table", None),
                       "rows": read_rows})  # fmt: skip
    ctx.outputs.append({
        "uri": out.target, "zone": spec.target.zone, "dataset": dataset, "format": "parquet", "rows": written,
        "columns": columns, "schema": {n: t for n, t in good.dtypes if n != LOCATION},
        "checksum": {"algorithm": job.CHECKSUM_ALGORITHM, "value": checksum}, "files": files, "bytes": size,
        "watermark": stats["watermark"] if spec.watermark else None,
    })  # fmt: skip
    ctx.outputs.append({"uri": rejects.target, "zone": "rejects", "rows": rejects_written, "reasons": reasons})
    data_source = getattr(spec.source, "table", None) or spec.pipeline
    if spec.service_item == "04":
        # Item 04 bills new tables: a table counts once, on its first load; later
        # incremental loads keep their record counts at quantity 0.
        ctx.metering.append({"service_item": "04", "unit": "table", "quantity": 1 if a.first_load == "true" else 0,
                             "records": written, "data_source": data_source})  # fmt: skip
    else:
        # Item 01: new collection and refreshes (保鲜) go to work orders priced apart; the
        # event says which it was.
        ctx.metering.append({"service_item": "01", "unit": "record", "quantity": written, "records": written,
                             "data_source": data_source, "attributes": {"onboarding": a.onboarding}})  # fmt: skip


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--spec", required=True, help="the pipeline spec as JSON")
    p.add_argument("--jdbc-url", default=None)
    p.add_argument("--user", default=None)
    p.add_argument("--watermark-from", default=None)
    p.add_argument("--watermark-to", default=None, help="a re-run of a committed load: its upper bound")
    p.add_argument("--first-load", choices=("true", "false"), default="false")
    p.add_argument("--null-rejects", default=None,
                   help="JSON list: committed runs' rejects, whose NULL-watermark rows are not read again")  # fmt: skip
    p.add_argument("--load-id", default=None, help="incremental: the load partition's run (default: this run)")
    p.add_argument("--onboarding", choices=("new", "refresh"), default="new", help="item 01: new or refresh (保鲜)")
    p.add_argument("--landing-root", default=None, help="where relative file paths of the spec are read")
    job.run("extract", p, extract)


if __name__ == "__main__":
    main()
