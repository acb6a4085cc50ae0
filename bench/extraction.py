"""Batch extraction at scale: an N-row source table (default 5,000,000) in the front-end
database, in one run:

- PostgreSQL's own ``COPY (SELECT * FROM table) TO STDOUT`` of the table, read to the end
  by a client (psycopg): the anchor;
- the extract Spark job (spark_jobs/extract.py, the batch pipelines' job) reading the same
  table over JDBC with partitioned parallel reads and writing Parquet to a lake, with
  1 and with 2 cores: rows/s on the job's own time (without the JVM start-up) and on the
  whole spark-submit, and the ratio to COPY (goal: at least 0.5x);
- two baselines in a fresh JVM with the same cores (bench/spark_copy.py), each with the
  job's ratio to it: a plain hand-written ``spark.read.jdbc(...).write.parquet(...)`` of the
  table with the same partitions and fetch size (goal: the job at least 0.75x of it), and
  Spark's own Parquet-to-Parquet copy of the job's output, no database, no cleansing, no
  checks, the ceiling of any Spark job writing those rows here (goal: at least 0.7x).

The table is built once with generate_series and kept (bench.persons_<N>) for later runs.
The database server shares the machine's cores with Spark, as it does with COPY.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import spark_submit
from govops import settings
from govops.pipelines.spec import JdbcSource  # its default fetch size is the job's here

SCHEMA = "bench"


def ensure_table(url: str, rows: int) -> str:
    """bench.persons_<rows>: realistic person rows (id, name, ID number, dates, phone,
    address, timestamps), about 150 bytes each."""
    table = f"{SCHEMA}.persons_{rows}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        exists = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar()
        if exists and conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == rows:
            engine.dispose()
            return table
        started = time.perf_counter()
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(
            text(
                f"""CREATE TABLE {table} AS
                    SELECT g::bigint AS id,
                           (ARRAY['张','王','李','赵','陈','刘','杨','黄'])[1 + g % 8] || '某' || (g % 9973) AS name,
                           '310118' || to_char(DATE '1950-01-01' + (g % 25000)::int, 'YYYYMMDD')
                               || lpad((g % 1000)::text, 3, '0') || (g % 10) AS id_number,
                           (g % 2)::smallint AS gender,
                           DATE '1950-01-01' + (g % 25000)::int AS birth_date,
                           '13' || lpad((g * 7919 % 1000000000)::text, 9, '0') AS phone,
                           '上海市青浦区' || (ARRAY['朱家角镇','练塘镇','金泽镇','赵巷镇','徐泾镇','华新镇',
                               '重固镇','白鹤镇'])[1 + g % 8] || (g % 997) || '弄' || (g % 61) || '号' AS address,
                           (1000 + g % 500)::numeric(12, 2) AS monthly_income,
                           TIMESTAMPTZ '2026-01-01 00:00+08' + g * INTERVAL '1 second' AS updated_at
                      FROM generate_series(1::bigint, :rows) g"""
            ),
            {"rows": rows},
        )
        conn.execute(text(f"ALTER TABLE {table} ADD PRIMARY KEY (id)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {table}"))
        size = conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar()
    engine.dispose()
    print(f"source table: {table}, {rows:,} rows, {size / 1e6:,.0f} MB, built in {time.perf_counter() - started:.1f}s")
    return table


def copy_out(url: str, table: str) -> tuple[int, int, float]:
    """COPY (SELECT * FROM table) TO STDOUT read to the end: (rows, bytes, seconds)."""
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    rows = size = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        with cur.copy(f"COPY (SELECT * FROM {table}) TO STDOUT") as copy:
            for block in copy:
                rows += bytes(block).count(b"\n")
                size += len(block)
        seconds = time.perf_counter() - started
    return rows, size, seconds


def run_extract(url: str, table: str, lake: Path, cores: int, partitions: int) -> dict:
    """The extract job as the operator runs it (spark-submit, local[cores]); its manifest
    with the whole command's wall time added."""
    from govops.spark import jdbc
    from govops.spark import manifest as manifests
    from govops.spark.package import build_zip

    name = f"jdbc-{cores}core"
    spec = {
        "pipeline": "bench_jdbc", "description": "bench", "service_item": "04", "department": "bench",
        "work_order": "WO-BENCH", "target": {"dataset": f"bench/{name.replace('-', '_')}"},
        "source": {"kind": "jdbc", "table": table, "partition_column": "id", "num_partitions": partitions},
    }  # fmt: skip
    source = jdbc.from_database_url(url)
    uri = manifests.manifest_uri(lake.as_uri(), "bench", name, "extract", -1)
    cmd = ["spark-submit", "--master", f"local[{cores}]", "--conf", "spark.ui.enabled=false",
           "--driver-memory", "4g", "--jars", ",".join(settings.jdbc_jars()), "--py-files", str(build_zip()),
           str(settings.spark_jobs_dir() / "extract.py"), "--dag-id", "bench", "--run-id", name,
           "--task-id", "extract", "--lake-root", lake.as_uri(), "--manifest", uri, "--spec", json.dumps(spec),
           "--jdbc-url", source.url, "--first-load", "true"]  # fmt: skip
    if source.user:
        cmd += ["--user", source.user]
    env = {**os.environ, jdbc.PASSWORD_ENV: source.password or ""}
    return spark_submit(cmd, uri, env)


def baseline(args: list[str], cores: int, env: dict[str, str] | None = None) -> float:
    """Seconds of one of bench/spark_copy.py's baselines (after its session started)."""
    cmd = ["spark-submit", "--master", f"local[{cores}]", "--conf", "spark.ui.enabled=false", "--driver-memory", "4g",
           "--jars", ",".join(settings.jdbc_jars()), str(Path(__file__).with_name("spark_copy.py")), *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def bench_extraction(rows: int, partitions: int) -> None:
    url = settings.connection_url(settings.SOURCE_CONN_ID)
    table = ensure_table(url, rows)
    copied, size, copy_s = copy_out(url, table)
    if copied != rows:
        raise SystemExit(f"COPY returned {copied:,} rows, the table has {rows:,}")
    copy_rate = rows / copy_s
    print(f"COPY (SELECT * FROM {table}) TO STDOUT: {rows:,} rows, {size / 1e6:,.0f} MB in {copy_s:.1f}s "
          f"= {copy_rate:,.0f} rows/s")  # fmt: skip
    lake = settings.home() / "bench-extraction-lake"
    per_core = {}
    for cores in (1, 2):
        shutil.rmtree(lake, ignore_errors=True)
        lake.mkdir(parents=True)
        m = run_extract(url, table, lake, cores, partitions)
        if m["counts"]["written"] != rows or m["counts"]["read"] != rows:
            raise SystemExit(f"extract with {cores} cores: counts {m['counts']}, expected {rows:,} rows")
        job_s, t = m["timings"]["total_s"], m["timings"]
        per_core[cores] = rows / job_s
        out = m["outputs"][0]
        print(f"extract job, local[{cores}], {partitions} JDBC partitions: {rows:,} rows in {job_s:.1f}s job time "
              f"= {rows / job_s:,.0f} rows/s ({rows / job_s / copy_rate:.2f}x COPY); whole spark-submit "
              f"{m['wall_s']:.1f}s = {rows / m['wall_s']:,.0f} rows/s ({rows / m['wall_s'] / copy_rate:.2f}x COPY); "
              f"{out['bytes'] / 1e6:,.0f} MB Parquet; timings {t}")  # fmt: skip
        from govops.spark import jdbc

        source = jdbc.from_database_url(url)
        plain_s = baseline(["jdbc", source.url, source.user or "", table, "id", str(partitions),
                            str(JdbcSource.model_fields["fetch_size"].default), f"{lake.as_uri()}/plain"], cores,
                           {**os.environ, jdbc.PASSWORD_ENV: source.password or ""})  # fmt: skip
        copy_s = baseline(["parquet", out["uri"], f"{lake.as_uri()}/copy"], cores)
        print(f"  plain spark.read.jdbc(...).write.parquet(...) of the table, the same {partitions} partitions and "
              f"fetch size, fresh JVM: {plain_s:.1f}s = {rows / plain_s:,.0f} rows/s; the extract job at "
              f"{plain_s / job_s:.2f}x of it (goal: at least 0.75x)")  # fmt: skip
        print(f"  Spark's own Parquet-to-Parquet copy of those rows, local[{cores}], fresh JVM: {copy_s:.1f}s = "
              f"{rows / copy_s:,.0f} rows/s ({rows / copy_s / copy_rate:.2f}x COPY), the most a Spark job writing "
              f"them can do here; the extract job at {copy_s / job_s:.2f}x of it (goal: at least 0.7x)")  # fmt: skip
    print(f"extract scaling 1 -> 2 cores: {per_core[2] / per_core[1]:.2f}x")
    shutil.rmtree(lake, ignore_errors=True)
