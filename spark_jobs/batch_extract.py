"""Batch extraction (批数据抽取, service item 04): copy one source table into the lake.

    spark-submit --py-files govops.zip --jars postgresql.jar spark_jobs/batch_extract.py \
        --dag-id D --run-id R --task-id T --lake-root file:///lake --manifest URI \
        --jdbc-url jdbc:postgresql://host:5432/frontdb --source-table public_security.persons \
        --dataset frontdb/public_security/persons [--partition-column id --num-partitions 8]

The password comes from the environment variable GOVOPS_JDBC_PASSWORD. The table is read
in parallel slices of the partition column, written as Parquet to staging, counted and
checksummed in the same pass, reconciled, and swapped into <lake>/raw/<dataset>. Meters one
table (unit "table") with its record count.
"""

from __future__ import annotations

import os

from govops.spark import job
from govops.spark.jdbc import PASSWORD_ENV

ZONE = "raw"
RUN_COLUMN = "_govops_run_id"


def read_source(ctx: job.JobContext):  # -> DataFrame
    a = ctx.args

    def reader():  # a DataFrameReader keeps its options: start afresh for each read
        r = ctx.spark.read.format("jdbc").options(
            url=a.jdbc_url, driver="org.postgresql.Driver", fetchsize=str(a.fetch_size)
        )
        if a.user:
            r = r.option("user", a.user)
        if os.environ.get(PASSWORD_ENV):
            r = r.option("password", os.environ[PASSWORD_ENV])
        return r

    if a.partition_column and a.num_partitions > 1:
        column = a.partition_column
        query = f"SELECT min({column}) AS lo, max({column}) AS hi FROM {a.source_table}"
        bounds = reader().option("query", query).load().first()
        if bounds is not None and bounds["lo"] is not None:
            return (
                reader()
                .option("dbtable", a.source_table)
                .option("partitionColumn", column)
                .option("lowerBound", str(bounds["lo"]))
                .option("upperBound", str(bounds["hi"]))
                .option("numPartitions", str(a.num_partitions))
                .load()
            )
    return reader().option("dbtable", a.source_table).load()


def extract(ctx: job.JobContext) -> None:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    a = ctx.args
    out = ctx.staged_output(ZONE, a.dataset)
    source = read_source(ctx)
    columns = source.columns
    observation = Observation("source")
    observed = source.observe(observation, *job.checksum_columns(source, columns))
    with ctx.timed("read_write_s"):
        observed.withColumn(RUN_COLUMN, F.lit(a.run_id)).write.mode("overwrite").parquet(out.staging)
    read = observation.get
    rows_read, checksum = int(read["rows"]), job.checksum_value(read["hash_sum"])
    with ctx.timed("verify_s"):
        written = ctx.spark.read.parquet(out.staging).count()
    ctx.counts.update(read=rows_read, written=written, rejected=0)
    if rows_read != written:
        raise RuntimeError(f"{a.source_table}: read {rows_read} rows but {written} reached {out.staging}")
    files, size = ctx.fs.size(out.staging)
    with ctx.timed("commit_s"):
        out.commit({"run": ctx.run, "rows": written, "checksum": checksum})
    ctx.inputs.append({"kind": "jdbc", "uri": a.jdbc_url, "table": a.source_table, "rows": rows_read})
    ctx.outputs.append(
        {
            "uri": out.target,
            "zone": ZONE,
            "dataset": a.dataset,
            "format": "parquet",
            "rows": written,
            "files": files,
            "bytes": size,
            "columns": columns,
            "checksum": {"algorithm": job.CHECKSUM_ALGORITHM, "columns": columns, "value": checksum},
        }
    )
    ctx.metering.append(
        {"service_item": "04", "unit": "table", "quantity": 1, "records": written, "data_source": a.source_table}
    )


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--jdbc-url", required=True)
    p.add_argument("--user", default=None)
    p.add_argument("--source-table", required=True, help="schema.table")
    p.add_argument("--dataset", required=True, help="lake dataset path under the raw zone")
    p.add_argument("--partition-column", default=None)
    p.add_argument("--num-partitions", type=int, default=4)
    p.add_argument("--fetch-size", type=int, default=10_000)
    job.run("batch_extract", p, extract)


if __name__ == "__main__":
    main()
