"""The scheduling service's two monthly reports (govops.ops.reports) over a busy month:
N DAG runs (default 10,000) of 200 scheduled jobs with 10 task instances each (100,000),
and the ledger rows such a month leaves: a usage event per successful task instance, a
``task_failure`` row per failed attempt, an event order per failed run plus stuck, slow,
late and manual ones, the change record of the jobs, extraction runs and quality checks.

Timed: reading the month from the ledger, turning the REST API's run list (built here as
``GET /api/v2/dags/~/dagRuns`` returns it; the HTTP fetch itself, 100 runs a page, is not
part of the figure) into rows, computing each report's figures, and rendering each to HTML
with charts and to XLSX. Goal: both reports under 30 s.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

JOBS = 200
TASKS_PER_RUN = 10
MONTH = date(2026, 11, 1)
START = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 1 Nov 00:00 in Asia/Shanghai


def api_runs(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n runs over the month, as the REST API lists them: 94 % success, 5 % failed, 1 % running."""
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        after = START + timedelta(seconds=rng.randrange(30 * 86400))
        roll = rng.random()
        state = "success" if roll < 0.94 else "failed" if roll < 0.99 else "running"
        end = None if state == "running" else after + timedelta(seconds=30 + rng.randrange(600))
        runs.append({"dag_id": f"job_{i % JOBS:03d}", "dag_run_id": f"scheduled__{after.isoformat()}_{i}",
                     "run_type": "scheduled" if i % 10 else "manual", "state": state, "run_after": after.isoformat(),
                     "start_date": after.isoformat(), "end_date": end.isoformat() if end else None})  # fmt: skip
    return runs


def _run(conn: Any, sql: str, params: dict[str, Any]) -> None:
    for statement in sql.split(";\n"):  # one statement per execute (prepared statements)
        conn.execute(text(statement), params)


def load_month(url: str, runs: list[dict[str, Any]]) -> dict[str, int]:
    """The ledger rows of the month (straight SQL: this measures the reports, not the writers)."""
    engine = create_engine(url)
    failed = [r for r in runs if r["state"] == "failed"]
    ok = [r for r in runs if r["state"] == "success"]
    with engine.begin() as conn:
        conn.execute(text(
            """INSERT INTO govops.scheduled_job (dag_id, service_item_code, department, schedule, first_seen_at,
                   last_seen_at)
               SELECT 'job_' || lpad(g::text, 3, '0'), (ARRAY['01', '04', '07', '06'])[1 + g % 4],
                      (ARRAY['区公安分局', '区市场监管局', '区大数据中心'])[1 + g % 3], '@daily',
                      TIMESTAMPTZ '2026-09-01', TIMESTAMPTZ '2026-11-30'
                 FROM generate_series(0, :jobs - 1) g"""), {"jobs": JOBS})  # fmt: skip
        _run(conn, (
            """INSERT INTO govops.scheduled_job_change (dag_id, change, source, observed_at)
               SELECT 'job_' || lpad(g::text, 3, '0'), 'new', 'bench',
                      CASE WHEN g < 180 THEN TIMESTAMPTZ '2026-09-01' ELSE :start + (g - 180) * interval '1 day' END
                 FROM generate_series(0, :jobs - 1) g;
               INSERT INTO govops.scheduled_job_change (dag_id, change, old_value, new_value, source, observed_at)
               SELECT 'job_' || lpad(g::text, 3, '0'), c, NULL, NULL, 'bench', :start + g * interval '3 hours'
                 FROM generate_series(0, 29) g, unnest(ARRAY['schedule_changed', 'paused', 'unpaused']) c"""),
            {"jobs": JOBS, "start": START})  # fmt: skip
        # One usage event per successful task instance (the tasks of a successful run).
        conn.execute(text(
            """INSERT INTO govops.usage_event (service_item_code, quantity, unit, records, department, period,
                   dag_id, run_id, task_id, map_index, event_time)
               SELECT i.item, CASE WHEN i.item = '01' THEN 1000 + t ELSE 1 END, i.unit, 1000 + t, '区大数据中心',
                      DATE '2026-11-01', r.dag_id, r.run_id, 'task_' || t, -1, r.after
                 FROM unnest(CAST(:dags AS text[]), CAST(:run_ids AS text[]), CAST(:afters AS timestamptz[]))
                      AS r(dag_id, run_id, after),
                      generate_series(0, :tasks - 1) t,
                      LATERAL (SELECT (ARRAY['01', '04', '07'])[1 + t % 3] AS item,
                                      (ARRAY['record', 'table', 'table'])[1 + t % 3] AS unit) i"""),
            {"dags": [r["dag_id"] for r in ok], "run_ids": [r["dag_run_id"] for r in ok],
             "afters": [r["end_date"] for r in ok], "tasks": TASKS_PER_RUN})  # fmt: skip
        # Each failed run: one task failed twice (a retry, then the final attempt).
        conn.execute(text(
            """INSERT INTO govops.task_failure (dag_id, run_id, task_id, final, error, failed_at)
               SELECT r.dag_id, r.run_id, 'task_3', f.final, 'RuntimeError: source down', r.after
                 FROM unnest(CAST(:dags AS text[]), CAST(:run_ids AS text[]), CAST(:afters AS timestamptz[]))
                      AS r(dag_id, run_id, after), (VALUES (false), (true)) f(final)"""),
            {"dags": [r["dag_id"] for r in failed], "run_ids": [r["dag_run_id"] for r in failed],
             "afters": [r["end_date"] for r in failed]})  # fmt: skip
        # An event order per failed run, and 300 stuck / slow / late ones and 20 raised by hand.
        conn.execute(text(
            """INSERT INTO govops.event_order (id, title, occurred_on, description, dag_id, run_id, task_id, state,
                   kind, dedup_key, urgency, started_at, acknowledged_at, resolved_at, occurrences, last_error,
                   last_seen_at)
               SELECT 'EV-B-' || n, '作业失败：' || dag_id, after::date, NULL, dag_id, run_id, task_id,
                      CASE WHEN n % 10 = 0 THEN 'open' ELSE 'resolved' END, kind, 'bench|' || n,
                      'urgent', after, CASE WHEN n % 3 = 0 THEN after + interval '2 hours' END,
                      CASE WHEN n % 10 <> 0 THEN after + (n % 48) * interval '1 hour' END, 1 + n % 4,
                      (ARRAY['RuntimeError: source down', 'Spark job extract failed: SCHEMA_DRIFT: b.csv (manifest x)',
                             'AirflowFailException: quality check failed (score 9' || n % 10 || ')'])[1 + n % 3],
                      after
                 FROM (SELECT row_number() OVER () AS n, *
                         FROM unnest(CAST(:dags AS text[]), CAST(:run_ids AS text[]), CAST(:afters AS timestamptz[]),
                                     CAST(:kinds AS text[]), CAST(:tasks AS text[]))
                              AS r(dag_id, run_id, after, kind, task_id)) o"""),
            {"dags": [r["dag_id"] for r in failed] + [f"job_{i % JOBS:03d}" for i in range(320)],
             "run_ids": [r["dag_run_id"] for r in failed] + [f"x{i}" for i in range(320)],
             "afters": [r["end_date"] for r in failed]
             + [(START + timedelta(hours=2 * i)).isoformat() for i in range(320)],
             "kinds": ["failed"] * len(failed) + ["stuck", "slow", "late"] * 100 + ["manual"] * 20,
             "tasks": ["task_3"] * len(failed) + [""] * 320})  # fmt: skip
        _run(conn, (
            """INSERT INTO govops.extraction_run (pipeline, dag_id, run_id, status, read, written, rejected,
                   rejected_by_reason, finished_at)
               SELECT 'p' || g % 50, 'pipeline_p' || g % 50, 'r' || g, 'committed', 10000, 9990, 10,
                      '{"missing name": 4, "duplicate of id 7": 3, "amount is not a decimal(12,2): x": 3}'::jsonb,
                      :start + g * interval '20 minutes'
                 FROM generate_series(1, 2000) g;
               INSERT INTO govops.quality_check_run (dag_id, run_id, task_id, dataset, side, suite, suite_sha256, mode,
                   rows_checked, anomaly_rows, score, dimension_scores, status, finished_at)
               SELECT 'quality_check', 'c' || g, 'check', 'raw/d' || g % 20, 'ingestion', 's', 'sha', 'batch',
                      1000 + g, g % 50, 90 + g % 10,
                      jsonb_build_object('accuracy', 90 + g % 10, 'completeness', 95 + g % 5, 'consistency', 99),
                      (ARRAY['pass', 'warn', 'fail'])[1 + g % 3], :start + g * interval '40 minutes'
                 FROM generate_series(1, 1000) g"""), {"start": START})  # fmt: skip
        counts = {t: conn.execute(text(f"SELECT count(*) FROM govops.{t}")).scalar_one() for t in (
            "usage_event", "task_failure", "event_order", "scheduled_job_change", "extraction_run",
            "quality_check_run")}  # fmt: skip
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return counts


def bench_ops_reports(url: str, runs_n: int = 10_000) -> None:
    import os

    from govops.ops import report_render as render
    from govops.ops import reports

    os.environ["GOVOPS_TIMEZONE"] = "Asia/Shanghai"
    raw = api_runs(runs_n)
    started = time.perf_counter()
    counts = load_month(url, raw)
    print(f"ops reports data: {runs_n:,} DAG runs, {runs_n * TASKS_PER_RUN:,} task instances; ledger rows "
          f"{counts} loaded in {time.perf_counter() - started:.1f}s")  # fmt: skip
    engine = create_engine(url)
    month = reports.Month.of(MONTH)
    timings: dict[str, float] = {}

    def timed(name: str, call: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        result = call(*args)
        timings[name] = time.perf_counter() - t0
        return result

    total0 = time.perf_counter()
    runs = timed("runs from the API's JSON", lambda: [reports.runs_row(r) for r in raw])
    rows = timed("read the month (ledger SQL)", reports.read_month, engine, month, runs, "bench")
    anomalies = timed("anomaly figures", reports.anomaly_summary, month, rows.orders)
    monthly = timed("monthly figures", reports.monthly_summary, rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        timed("anomaly HTML", lambda: (folder / "a.html").write_text(render.render_anomalies(anomalies)))
        timed("anomaly XLSX", render.write_anomalies_xlsx, anomalies, folder / "a.xlsx")
        timed("monthly HTML", lambda: (folder / "m.html").write_text(render.render_monthly(monthly)))
        timed("monthly XLSX", render.write_monthly_xlsx, monthly, folder / "m.xlsx")
        sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    total = time.perf_counter() - total0
    engine.dispose()
    t = monthly.runs_total
    assert t is not None and t.runs == runs_n, t
    print(f"ops reports: {len(anomalies.opened):,} event orders opened, {len(anomalies.open_at_end):,} open at the "
          f"end; {t.runs:,} runs, success rate {t.success_rate:.2%}; {monthly.records_moved:,} records metered; "
          f"{monthly.jobs.at_end} jobs")  # fmt: skip
    for name, seconds in timings.items():
        print(f"  {name}: {seconds:.2f}s")
    print(f"  files: {sizes}")
    print(f"ops reports: both monthly reports in {total:.2f}s (goal: under 30 s)")
