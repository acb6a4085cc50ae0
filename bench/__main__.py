"""Print performance figures of the spine (``./dev bench [--persons N] [--events N]``).

1. The batch pipelines at scale: wall time and rows/s of the three front-end database
   pipelines (include/pipelines/frontdb_*.yaml) over the sample data with N persons
   (default 1,000,000), each run with dag.test.
2. Ledger ingest rate: usage events per second through record_usage, batched, for new
   events and for the replay of the same events (the retry path).
3. Metering overhead: the time the commit tasks spent metering as a share of the
   pipelines' wall time (goal: at most 1%).
4. Settlement: settle a period over 1,000,000 ledger rows and 1,000 work orders, next to a
   plain SQL sum over the same rows (goal: under 30 s).
5. Spatial verification: N points (default 20,000,000) with 1 and 2 cores, next to
   geopandas.sjoin (bench/spatial.py).
6. Stream extraction: records/s of the JSON-lines stream job over N events (default
   500,000), and the latency from a file landing to its micro-batch committed in the lake
   in continuous mode (bench/stream.py).
7. Batch extraction: the extract job over JDBC on an N-row source table (default
   5,000,000) with 1 and 2 cores, next to PostgreSQL's COPY (SELECT ...) TO STDOUT of the
   same table, a plain spark.read.jdbc(...).write.parquet(...) and Spark's own Parquet copy
   (bench/extraction.py).
8. Quality checks: a 12-rule ingestion suite over N persons-like rows from Parquet (default
   5,000,000) with 1 and 2 cores: the check engine counts-only and with the full anomaly
   list, plain GX 1.x with its default result format and a hand-written Spark pass, with
   identical counts; and the check_quality job end to end (bench/quality.py).
9. Security services: on N persons-like rows (default 5,000,000) with 1 and 2 cores,
   labeling and each masking rule (partial, HMAC-SHA256 / SM3 pseudonyms, FF1, AES-GCM)
   rows/s next to pure-Python FF1, and archive / restore MB/s next to a plain file copy
   (bench/security.py).
10. Operations reports: the job-anomaly summary and the monthly summary of a month of N DAG
   runs (default 10,000) with 100,000 task instances and their ledger rows (goal: under
   30 s; bench/ops_reports.py).
11. Job health: one monitoring pass over N DAG runs (default 10,000) and 100,000 task
   instances as the REST API returns them (goal: under 10 s), and the listener's own work
   per task on a real ledger (goal: under 5 ms; bench/ops_health.py).
12. Sharing API: keyed lookups/s and p50 / p99 over HTTP with call records on, page 10,000
   against page 1, CSV export MB/s next to DuckDB's COPY TO, and the cost of call records,
   on N rows (default 10,000,000; bench/sharing.py, its own ledger govops_bench_sharing).
13. Application services: a grouped monthly analysis over N events (default 10,000,000),
   the project's DAG steps next to plain Spark SQL and DuckDB, and a dashboard page's size
   and load time (bench/analytics.py, its own ledger govops_bench_analytics).
14. Console: the usage page, a statement page and the metrics endpoint over N usage events
   (default 1,000,000) and 1,000 work orders, p50 / p95 over 20 requests (goals: pages under
   300 ms, metrics under 200 ms; bench/console.py, its own ledger govops_bench_console).

Uses its own ledger database (govops_bench) and lake (GOVOPS_HOME/bench-lake).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from bench import fresh_ledger
from govops import settings


def bench_ledger(url: str, n: int) -> None:
    from govops.ledger.usage import TaskRef, UsageEvent, record_usage
    from govops.settlement.workorders import ensure_demo_work_order

    now = datetime.now(UTC)
    events = [
        UsageEvent(
            task=TaskRef("bench", f"run-{i // 100}", "extract", i % 100),
            service_item_code="04",
            quantity=1,
            unit="table",
            records=1000 + i,
            work_order_id=f"WO-{i % 7}",
            data_source=f"schema.table_{i}",
            event_time=now - timedelta(seconds=i),
        )
        for i in range(n)
    ]
    engine = create_engine(url)
    for i in range(7):  # usage is metered against existing work orders
        ensure_demo_work_order(engine, f"WO-{i}", "04", on=now.date())
    started = time.perf_counter()
    inserted = record_usage(engine, events).inserted
    new_s = time.perf_counter() - started
    started = time.perf_counter()
    unchanged = record_usage(engine, events).unchanged
    replay_s = time.perf_counter() - started
    engine.dispose()
    print(f"ledger ingest: {inserted} new events in {new_s:.2f}s = {inserted / new_s:,.0f} events/s (batched)")
    print(f"ledger replay: {unchanged} known events in {replay_s:.2f}s = {unchanged / replay_s:,.0f} events/s (no-op)")


def bench_pipeline(persons: int) -> None:
    from govops.dag_runs import run_dag
    from govops.sample_data import load_sample

    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    started = time.perf_counter()
    rows = load_sample(settings.connection_url(settings.SOURCE_CONN_ID), seed=1, persons=persons)
    print(f"sample data: {sum(rows.values()):,} source rows {rows} generated and loaded in "
          f"{time.perf_counter() - started:.1f}s")

    lake = settings.home() / "bench-lake"
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    os.environ["GOVOPS_LAKE_ROOT"] = lake.as_uri()
    from govops.pipelines.spec import demo_work_orders, load_spec, spec_files
    from govops.settlement.workorders import ensure_demo_work_order

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    for order, item, difficulty in demo_work_orders([load_spec(p) for p in spec_files()]):
        ensure_demo_work_order(engine, order, item, on=datetime.now(UTC).date(), difficulty=difficulty)
    engine.dispose()
    dags = ["pipeline_frontdb_persons", "pipeline_frontdb_legal_persons", "pipeline_frontdb_addresses"]
    when = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    commits = []
    for dag_id in dags:
        result = run_dag(dag_id, logical_date=when)
        if result.state != "success":
            raise SystemExit(f"{dag_id} {result.state}: {result.task_states}")
        commits.append(_commit_result(dag_id, result.run_id))
    wall = time.perf_counter() - started

    from govops.spark import manifest as manifests

    found = sorted((lake / "_manifests").rglob("*.json"))
    docs = [manifests.read(p.as_uri()) for p in found]
    total = sum(d["counts"]["written"] for d in docs)
    job_s = sum(d["timings"]["total_s"] for d in docs)
    print(f"pipelines: {total:,} rows from {len(docs)} tables in {wall:.1f}s wall = {total / wall:,.0f} rows/s "
          f"(Spark job time {job_s:.1f}s; the rest is spark-submit JVM start-up and Airflow)")
    for d in docs:
        out = d["outputs"][0]
        print(f"  {out['dataset']}: {out['rows']:,} rows, {out['bytes'] / 1e6:.1f} MB, timings {d['timings']}")
    metering_s = sum(c["metering_s"] for c in commits)
    print(f"metering overhead: {metering_s:.3f}s of {wall:.1f}s = {100 * metering_s / wall:.3f}% of wall time")


def _commit_result(dag_id: str, run_id: str) -> dict:
    """What the commit task returned (its XCom): counts and the time spent metering."""
    import json

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                XComModel.task_id == "commit", XComModel.key == "return_value",
            )
        ).one()
    return json.loads(value) if isinstance(value, str) else value


def bench_settlement(url: str, rows: int, work_orders: int) -> None:
    from datetime import date
    from decimal import Decimal

    from govops.settlement import store, workorders
    from govops.settlement.catalog import load_catalog

    engine = create_engine(url)
    catalog = load_catalog()
    per_order = 10
    with engine.begin() as conn:
        for s in range(work_orders // per_order):
            so = f"SO-B{s:04d}"
            workorders.create_service_order(conn, workorders.ServiceOrder(id=so, name=so))
            for w in range(per_order):
                workorders.create_work_order(
                    conn,
                    workorders.WorkOrder(id=f"WO-B{s:04d}-{w}", service_order_id=so, service_item_code="01",
                                         order_date=date(2026, 1, 5), difficulty=Decimal("0.8")),
                    catalog,
                )  # fmt: skip
        conn.execute(text("UPDATE govops.work_order SET state = 'delivered' WHERE id LIKE 'WO-B%'"))
        conn.execute(
            text(
                """UPDATE govops.service_order SET state = 'accepted', quality_score = 80 + (random() * 20)::int,
                   accepted_on = DATE '2026-02-20', operator_opinion = 'ok', purchaser_opinion = 'ok'
                   WHERE id LIKE 'SO-B%'"""
            )
        )
        store.add_period(conn, "2026-P1", "bimonthly", date(2026, 1, 1), date(2026, 2, 28))
        store.record_assessment(conn, "2026-P1", Decimal("88"), Decimal("91"))
    started = time.perf_counter()
    with engine.begin() as conn:
        # Ledger rows straight from SQL: this measures settlement, not ingestion.
        conn.execute(
            text(
                """INSERT INTO govops.usage_event (service_item_code, quantity, unit, records, work_order_id,
                       data_source, period, dag_id, run_id, task_id, map_index, event_time)
                   SELECT '01', 1000 + g % 5000, 'record', 1000 + g % 5000,
                          'WO-B' || lpad(((g % :n) / 10)::text, 4, '0') || '-' || ((g % :n) % 10),
                          'src.t' || g, DATE '2026-02-01', 'bench_settle', 'run-' || (g / 1000), 'extract',
                          g % 1000, TIMESTAMPTZ '2026-02-10 10:00+08'
                     FROM generate_series(1, :rows) g"""
            ),
            {"rows": rows, "n": work_orders},
        )
        conn.execute(text("ANALYZE govops.usage_event"))
    print(f"settlement data: {rows:,} ledger rows over {work_orders:,} work orders loaded in "
          f"{time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    with engine.connect() as conn:
        total = conn.execute(text("SELECT sum(quantity) FROM govops.usage_event GROUP BY work_order_id")).all()
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    statement = store.settle(engine, "2026-P1")
    settle_s = time.perf_counter() - started
    engine.dispose()
    print(f"settlement: {len(statement['lines'])} service orders, gross {statement['totals']['gross']} in "
          f"{settle_s:.2f}s; a plain SQL sum per work order over the same rows ({len(total)} groups): {plain_s:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--settlement-rows", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=20_000_000)
    parser.add_argument("--stream-events", type=int, default=500_000)
    parser.add_argument("--source-rows", type=int, default=5_000_000)
    parser.add_argument("--jdbc-partitions", type=int, default=4)
    parser.add_argument("--quality-rows", type=int, default=5_000_000)
    parser.add_argument("--security-rows", type=int, default=5_000_000)
    parser.add_argument("--ops-runs", type=int, default=10_000)
    parser.add_argument("--sharing-rows", type=int, default=10_000_000)
    parser.add_argument("--analytics-events", type=int, default=10_000_000)
    parser.add_argument("--console-events", type=int, default=1_000_000)
    parser.add_argument(
        "--only", choices=("ledger", "pipeline", "settlement", "spatial", "stream", "extraction", "quality",
                           "security", "ops_reports", "ops_health", "sharing", "analytics", "console"), default=None,
    )  # fmt: skip
    args = parser.parse_args()
    url = fresh_ledger()
    os.environ["GOVOPS_DATABASE_URL"] = url
    os.environ["AIRFLOW_CONN_GOVOPS_DB"] = url
    if args.only in (None, "ledger"):
        bench_ledger(url, args.events)
    if args.only in (None, "pipeline"):
        bench_pipeline(args.persons)
    if args.only in (None, "settlement"):
        bench_settlement(fresh_ledger(), args.settlement_rows, 1_000)
    if args.only in (None, "spatial"):
        from bench.spatial import bench_spatial

        bench_spatial(args.points)
    if args.only in (None, "stream"):
        from bench.stream import bench_stream

        bench_stream(args.stream_events)
    if args.only in (None, "extraction"):
        from bench.extraction import bench_extraction

        bench_extraction(args.source_rows, args.jdbc_partitions)
    if args.only in (None, "quality"):
        from bench.quality import bench_quality

        bench_quality(args.quality_rows)
    if args.only in (None, "security"):
        from bench.security import bench_security

        bench_security(args.security_rows)
    if args.only in (None, "ops_reports"):
        from bench.ops_reports import bench_ops_reports

        bench_ops_reports(fresh_ledger(), args.ops_runs)
    if args.only in (None, "ops_health"):
        from bench.ops_health import bench_ops_health

        bench_ops_health(fresh_ledger(), args.ops_runs)
    if args.only in (None, "sharing"):
        from bench.sharing import bench_sharing

        bench_sharing(fresh_ledger("govops_bench_sharing"), args.sharing_rows)
    if args.only in (None, "analytics"):
        from bench.analytics import bench_analytics

        bench_analytics(fresh_ledger("govops_bench_analytics"), args.analytics_events)
    if args.only in (None, "console"):
        from bench.console import bench_console

        bench_console(fresh_ledger("govops_bench_console"), args.console_events)


if __name__ == "__main__":
    main()
