"""Application services (items 14-18): a grouped monthly analysis over N service events
(default 10,000,000) in Parquet, three ways, with identical result rows:

- the project's analysis, as its DAG runs it: the work order and difficulty check, the
  spark-submit of spark_jobs/analyze.py (input versions, counts, checksums, a versioned
  output) and the commit (run record, result rows, metering) on the bench ledger;
- the same query in plain Spark SQL: a spark-submit of this file that reads the Parquet, runs
  the SQL and writes the result (the same coalesce(1) Parquet write);
- DuckDB's time for the same query, in this process, as the single-machine reference.
Goal: the project's wall time within 1.2x of plain Spark SQL. Then the dashboard: one big
screen page of the result with its chart library (generation time, page and library size,
and Chromium's time to the chart drawn when a Chromium is installed; ``--dashboard-only``
measures this part alone, over a result of the same shape). Uses its own ledger database
(govops_bench_analytics) and the bench lake (GOVOPS_HOME/bench-lake).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

DATASET = "raw/bench/service_events"
SQL = """SELECT date_format(event_date, 'yyyy-MM') AS month, department, count(*) AS events
           FROM events WHERE event_date >= to_date(:from_date) GROUP BY 1, 2 ORDER BY 1, 2"""
DUCKDB_SQL = """SELECT strftime(event_date, '%Y-%m') AS month, department, count(*) AS events
                  FROM read_parquet('{path}/*.parquet') WHERE event_date >= DATE '2025-01-01'
                 GROUP BY 1, 2 ORDER BY 1, 2"""
PARAMETERS = {"from_date": "2025-01-01"}


def ensure_events(lake: Path, n: int) -> Path:
    """N events over 2023-01 to 2026-10 in files of 1,000,000 rows, deterministic; kept between runs."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from govops.security.archive_sample import DEPARTMENTS, EVENT_TYPES

    folder = lake / DATASET
    marker = folder / "_GOVOPS_COMMIT.json"
    if marker.is_file() and json.loads(marker.read_text()).get("rows") == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(20)
    first, days = date(2023, 1, 1).toordinal() - date(1970, 1, 1).toordinal(), 1400
    for part, start in enumerate(range(0, n, 1_000_000)):
        size = min(1_000_000, n - start)
        table = pa.table({
            "event_id": pa.array(np.arange(start, start + size, dtype=np.int64)),
            "event_date": pa.array((first + rng.integers(0, days, size)).astype(np.int32)).cast(pa.date32()),
            "department": pa.DictionaryArray.from_arrays(rng.integers(0, len(DEPARTMENTS), size).astype(np.int32),
                                                         list(DEPARTMENTS)).cast(pa.string()),
            "event_type": pa.DictionaryArray.from_arrays(rng.integers(0, len(EVENT_TYPES), size).astype(np.int32),
                                                         list(EVENT_TYPES)).cast(pa.string()),
        })  # fmt: skip
        pq.write_table(table, folder / f"part-{part:05d}.parquet")
    marker.write_text(json.dumps({"run": {"dag_id": "bench", "run_id": "events"}, "rows": n}))
    return folder


def spec(lake: Path) -> Any:
    from govops.analytics.spec import AnalyticsSpec

    return AnalyticsSpec.model_validate({
        "name": "bench_monthly", "kind": "analysis", "title": "办件量按月按部门统计", "department": "区大数据中心",
        "work_order": "WO-BENCH-ANALYSIS", "parameters": PARAMETERS,
        "inputs": {"events": {"dataset": DATASET, "domain": "政务服务"}},
        "outputs": {"by_month_department": {"title": "按月按部门办件量", "sql": SQL,
                                            "columns": {"month": "月份", "department": "部门", "events": "办件量"},
                                            "chart": {"type": "bar", "x": "month", "y": "events",
                                                      "series": "department"}}},
    })  # fmt: skip


def _submit(args: list[str]) -> list[str]:
    from govops.spark.package import build_zip

    return ["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--driver-memory", "2g",
            "--py-files", str(build_zip()), *args]  # fmt: skip


def project_run(url: str, lake: Path, run: int) -> tuple[float, list[tuple], dict[str, Any]]:
    """The DAG's three steps, timed together: prepare's checks, the job, the commit."""
    from sqlalchemy import create_engine

    from bench import spark_submit
    from govops import settings
    from govops.analytics import runs
    from govops.spark import manifest as manifests

    s = spec(lake)
    run_id = f"bench-{run}"
    uri = manifests.manifest_uri(lake.as_uri(), s.dag_id, run_id, "analyze", -1)
    engine = create_engine(url)
    started = time.perf_counter()
    lines = runs.lines_for(s, s.work_order, False, None)
    runs.check_work_orders(engine, lines)
    prepared = {"work_order_id": s.work_order, "manual_refresh": False, "parameters": runs.resolve_parameters(s, {}),
                "lines": [{**line.__dict__, "difficulty": str(line.difficulty)} for line in lines]}  # fmt: skip
    job = [str(settings.spark_jobs_dir() / "analyze.py"), "--dag-id", s.dag_id, "--run-id", run_id,
           "--task-id", "analyze", "--work-order-id", s.work_order, "--lake-root", lake.as_uri(), "--manifest", uri,
           "--spec", s.model_dump_json(), "--parameters", json.dumps(prepared["parameters"]),
           "--version", run_id]  # fmt: skip
    manifest = spark_submit(_submit(job), uri)
    manifest["manifest_uri"] = uri
    committed = runs.commit(engine, s, manifest, prepared, run_type="manual")
    wall = time.perf_counter() - started
    rows = [tuple(r.values()) for r in runs.read_outputs(manifest)["by_month_department"]]
    engine.dispose()
    return wall, rows, {"billing": committed["billing"], "job_s": manifest["wall_s"]}


def plain_run(lake: Path, out: Path) -> tuple[float, list[tuple]]:
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(_submit([str(Path(__file__).resolve()), "--plain", str(lake / DATASET), str(out)]),
                            capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    table = pq.read_table(out).sort_by([("month", "ascending"), ("department", "ascending")])
    return wall, [tuple(r.values()) for r in table.to_pylist()]


def _plain(source: str, out: str) -> None:
    """Inside spark-submit: the query in plain Spark SQL."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("bench:plain-analysis").getOrCreate()
    spark.read.parquet(source).createOrReplaceTempView("events")
    spark.sql(SQL, args=PARAMETERS).coalesce(1).write.mode("overwrite").parquet(out)
    spark.stop()


def bench_dashboard(lake: Path, rows: list[tuple], loads: int = 5) -> None:
    """A big-screen page of the result with its chart library, as the dashboard DAG writes
    them: generation time, the page's and the library's size, and the time Chromium takes
    from navigation to the chart drawn (Playwright, network blocked; first load in a new
    browser context, then the median of ``loads`` reloads in fresh contexts)."""
    import os
    import statistics

    from govops.analytics import dashboards
    from govops.analytics.spec import AnalyticsSpec
    from govops.charts import plotly_js, plotly_js_name

    s = spec(lake).model_dump()
    screen = {"name": "大屏", "size": "big", "theme_domains": {"政务服务": ["by_month_department"]}}
    s.update(name="bench_dashboard", kind="dashboard", work_order="WO-BENCH-DASHBOARD", screens=[screen])
    dashboard = AnalyticsSpec.model_validate(s)
    results = {"by_month_department": [dict(zip(("month", "department", "events"), r, strict=True)) for r in rows]}
    started = time.perf_counter()
    pages = dashboards.pages(dashboard, results, {"finished_at": datetime.now(UTC).isoformat()}, "bench")
    made_s = time.perf_counter() - started
    folder = Path(tempfile.mkdtemp(prefix="govops-bench-dashboard-"))
    page = folder / "big_1_1.html"
    page.write_text(pages["big_1_1.html"], encoding="utf-8")
    (folder / plotly_js_name()).write_text(plotly_js(), encoding="utf-8")
    size, library = page.stat().st_size, (folder / plotly_js_name()).stat().st_size
    print(f"dashboard: a big-screen page of {len(rows)} bars in {len({r[1] for r in rows})} series generated in "
          f"{made_s:.2f}s: page {size / 1024:.0f} KiB + {plotly_js_name()} {library / 2**20:.1f} MiB (once per "
          "dashboard run, next to its pages)")  # fmt: skip
    browser = os.environ.get("GOVOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("  no Chromium: load time not measured")
        shutil.rmtree(folder, ignore_errors=True)
        return
    from playwright.sync_api import sync_playwright

    times, blocked = [], []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(loads + 1):
            context = chromium.new_context(viewport={"width": 1920, "height": 1080})
            context.route(lambda url: not url.startswith("file:"), lambda r: (blocked.append(r.request.url),
                                                                               r.abort()))  # fmt: skip
            p = context.new_page()
            started = time.perf_counter()
            p.goto(page.as_uri())
            p.wait_for_selector(".js-plotly-plot .trace.bars .point path")
            times.append(time.perf_counter() - started)
            context.close()
        chromium.close()
    print(
        f"  Chromium, navigation to the bars drawn: first {times[0] * 1000:.0f} ms, median of {loads} more "
        f"{statistics.median(times[1:]) * 1000:.0f} ms; requests leaving the machine: {len(blocked)}"
    )
    shutil.rmtree(folder, ignore_errors=True)


def bench_analytics(url: str, n: int, repeats: int = 2) -> None:
    import duckdb
    from sqlalchemy import create_engine

    from govops import settings
    from govops.settlement.workorders import ensure_demo_work_order

    lake = settings.home() / "bench-lake"
    folder = ensure_events(lake, n)
    engine = create_engine(url)
    ensure_demo_work_order(engine, "WO-BENCH-ANALYSIS", "14", on=date.today(), difficulty=Decimal(1))
    engine.dispose()
    print(f"analytics: {n:,} events in {folder} ({sum(f.stat().st_size for f in folder.glob('*.parquet')) / 2**20:.0f} "
          f"MiB Parquet), a grouped monthly count, local[2], best of {repeats}")  # fmt: skip
    project = [project_run(url, lake, i) for i in range(repeats)]
    plain = [plain_run(lake, lake / "bench-plain-analysis") for _ in range(repeats)]
    ducks = []
    for _ in range(repeats):
        started = time.perf_counter()
        duck_rows = duckdb.sql(DUCKDB_SQL.format(path=folder)).fetchall()
        ducks.append(time.perf_counter() - started)
    project_s, plain_s = min(p[0] for p in project), min(p[0] for p in plain)
    same = project[0][1] == plain[0][1] == [(m, d, int(c)) for m, d, c in duck_rows]
    print(
        f"  project (checks, spark-submit analyze.py, commit + metering): {project_s:.2f}s "
        f"(job {min(p[2]['job_s'] for p in project):.2f}s; billed {[p[2]['billing'] for p in project]})"
    )
    print(f"  plain Spark SQL (spark-submit, read, query, write):           {plain_s:.2f}s")
    print(f"  ratio {project_s / plain_s:.2f}x (goal: within 1.2x); DuckDB, same query in process: {min(ducks):.2f}s")
    print(f"  {len(project[0][1])} result rows, identical in all three: {same}")
    bench_dashboard(lake, project[0][1])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--plain":
        _plain(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--dashboard-only", action="store_true", help="only the dashboard page, over 46 months x 6 "
                   "departments of made-up counts (no Spark, no ledger)")  # fmt: skip
    a = p.parse_args()
    if a.dashboard_only:
        from govops.security.archive_sample import DEPARTMENTS

        months = [f"{2023 + m // 12}-{m % 12 + 1:02d}" for m in range(46)]
        cells = [(m, d) for m in months for d in DEPARTMENTS]
        bench_dashboard(Path(tempfile.gettempdir()), [(m, d, 1000 + 7 * n) for n, (m, d) in enumerate(cells)])
        return
    from bench import fresh_ledger

    bench_analytics(fresh_ledger("govops_bench_analytics"), a.events)


if __name__ == "__main__":
    main()
