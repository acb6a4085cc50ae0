"""The scheduling service's monthly reports (异常作业监控数据分析汇总报告, 月总结报告) over
rows written into a fresh ledger by the services' own functions where they exist (event
orders through ``govops.ops.event_orders``), and DAG runs shaped as the REST API v2 gives
them: each figure equals the same count worked out here from the same rows, in the HTML as
Chromium shows it and in the XLSX read back with openpyxl. The month is November 2026 in
Asia/Shanghai, so rows near midnight UTC+8 test the month's edges."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from tests.browser import assert_screenshot_not_blank, render

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Shanghai")
START, END = datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ)


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


JOBS = [  # dag_id, item, department
    ("pipeline_a", "04", "区公安分局"), ("quality_x", "07", "区大数据中心"), ("old_job", "06", "区市场监管局"),
    ("extra_job", "01", "区公安分局"),
]  # fmt: skip
CHANGES = [  # dag_id, change, observed (UTC)
    ("extra_job", "new", "2026-09-01 00:00"), ("pipeline_a", "new", "2026-10-01 00:00"),
    ("old_job", "new", "2026-10-02 00:00"), ("extra_job", "removed", "2026-10-15 00:00"),
    ("quality_x", "new", "2026-11-05 00:00"), ("quality_x", "paused", "2026-11-06 00:00"),
    ("quality_x", "unpaused", "2026-11-07 00:00"), ("pipeline_a", "schedule_changed", "2026-11-08 00:00"),
    ("old_job", "removed", "2026-11-20 00:00"), ("extra_job", "re_added", "2026-11-25 00:00"),
    ("pipeline_a", "attributes_changed", "2026-12-02 00:00"),  # after the month
]  # fmt: skip
# name: (dag, task, error, opened UTC, repeats, kind set afterwards (job-health kinds), acknowledged, resolved)
ORDERS: dict[str, tuple[Any, ...]] = {
    "F1": ("pipeline_a", "extract", "RuntimeError: source down", "2026-11-02 02:00", 3, None, "2026-11-02 04:00",
           "2026-11-02 08:00"),
    "F2": ("pipeline_a", "commit", "RuntimeError: boom 17 (manifest file:///x/1.json)", "2026-11-10 00:00", 1, None,
           None, None),
    "Q1": ("quality_x", "gate", "AirflowFailException: persons: quality check failed (score 99.1)",
           "2026-11-12 00:00", 1, None, None, "2026-11-13 00:00"),
    "R1": ("pipeline_a", "extract", "ReconciliationError: counts do not reconcile: read 10 != 9 + 0",
           "2026-11-30 15:00", 1, None, "2026-12-01 01:00", None),  # 23:00 on 30 Nov in Shanghai
    "L1": ("quality_x", "", "the run was not finished by its deadline", "2026-10-31 15:30", 1, "late", None,
           None),  # 23:30 on 31 Oct in Shanghai: October's, still open
    "S1": ("pipeline_a", "load", "running far past its usual duration", "2026-11-30 16:30", 1, "stuck", None,
           None),  # 00:30 on 1 Dec in Shanghai: December's
    "W1": ("old_job", "label", "took 3 times its baseline", "2026-11-15 00:00", 2, "slow", None,
           "2026-11-15 01:30"),
}  # fmt: skip


def write_rows(engine: Engine) -> dict[str, str]:
    """The ledger rows of the month; returns the event order number of each ORDERS name."""
    from govops.ops import event_orders as eo

    numbers = {}
    with engine.begin() as conn:
        for dag_id, item, department in JOBS:
            conn.execute(text(
                """INSERT INTO govops.scheduled_job (dag_id, service_item_code, department, schedule, first_seen_at,
                       last_seen_at) VALUES (:d, :i, :dep, '@daily', '2026-09-01', '2026-11-30')"""
            ), {"d": dag_id, "i": item, "dep": department})  # fmt: skip
        conn.execute(text(
            """INSERT INTO govops.scheduled_job_change (dag_id, change, source, observed_at)
               VALUES (:d, :c, 'test', :at)"""
        ), [{"d": d, "c": c, "at": at(t)} for d, c, t in CHANGES])  # fmt: skip
        for name, (dag, task, error, opened, repeats, kind, acked, resolved) in ORDERS.items():
            for n in range(repeats):
                number, _ = eo.record_failure(conn, eo.Failure(
                    dag_id=dag, run_id=f"scheduled__{opened}", task_id=task, error=error,
                    occurred_at=at(opened) + timedelta(minutes=n), logical_date=at(opened)))  # fmt: skip
            numbers[name] = number
            conn.execute(text("UPDATE govops.event_order SET started_at = :at WHERE id = :id"),
                         {"at": at(opened), "id": number})  # fmt: skip
            if kind:  # the job-health kinds (opened by the health checks, not by a failure's text)
                conn.execute(text("UPDATE govops.event_order SET kind = :k WHERE id = :id"), {"k": kind, "id": number})
            if acked:
                eo.acknowledge(conn, number, "值班员", at=at(acked))
            if resolved:
                eo.resolve(conn, number, "值班员", "处理完毕", at=at(resolved))
        numbers["M1"] = eo.raise_order(conn, "共享接口中断", description="调用方反馈接口超时", reporter="张三",
                                       reporting_unit="区大数据中心", urgency="urgent", at=at("2026-11-20 00:00"))
        eo.acknowledge(conn, numbers["M1"], "值班员", at=at("2026-11-21 00:00"))

        usage = [  # item, unit, quantity, records, department, dag, run, period
            ("04", "table", 1, 500, "区公安分局", "pipeline_a", "r1", "2026-11-01"),
            ("04", "table", 1, 300, "区公安分局", "pipeline_a", "r2", "2026-11-01"),
            ("07", "table", 1, 505, "区大数据中心", "quality_x", "q1", "2026-11-01"),
            ("05", "task", 1, None, "区大数据中心", "quality_x", "scheduled_job", "2026-11-01"),
            ("04", "table", 1, 999, "区公安分局", "pipeline_a", "r0", "2026-10-01"),  # October's
        ]
        conn.execute(text(
            """INSERT INTO govops.usage_event (service_item_code, unit, quantity, records, department, dag_id, run_id,
                   task_id, period, event_time) VALUES (:i, :u, :q, :r, :dep, :d, :run, 't', CAST(:p AS date),
                   CAST(:p AS timestamptz) + interval '1 day')"""
        ), [dict(zip(("i", "u", "q", "r", "dep", "d", "run", "p"), u, strict=True)) for u in usage])  # fmt: skip
        conn.execute(text(
            """INSERT INTO govops.task_failure (dag_id, run_id, task_id, final, error, failed_at)
               VALUES (:d, 'r', 't', :final, 'boom', :at)"""
        ), [{"d": d, "final": f, "at": at(t)} for d, f, t in (
            ("pipeline_a", False, "2026-11-02 01:00"), ("pipeline_a", False, "2026-11-02 01:30"),
            ("pipeline_a", True, "2026-11-02 02:00"), ("quality_x", True, "2026-11-12 00:00"),
            ("quality_x", True, "2026-10-31 15:00"))])  # fmt: skip
        for run, read, written, reasons, finished in (
            ("e1", 200, 195, {"missing name": 3, "duplicate of id 7": 2}, "2026-11-03 02:00"),
            ("e2", 100, 96, {"amount is not a decimal(12,2): abc": 4}, "2026-11-04 02:00"),
            ("e0", 50, 40, {"missing name": 10}, "2026-10-31 15:00"),  # October's in Shanghai
        ):
            conn.execute(text(
                """INSERT INTO govops.extraction_run (pipeline, dag_id, run_id, status, read, written, rejected,
                       rejected_by_reason, finished_at)
                   VALUES ('landing_x', 'pipeline_landing_x', :r, 'committed', :n, :w, :n - :w, CAST(:why AS jsonb),
                           :at)"""
            ), {"r": run, "n": read, "w": written, "why": json.dumps(reasons), "at": at(finished)})  # fmt: skip
        for run, rows, score, dims, status in (
            ("c1", 1000, 98, {"accuracy": 99, "completeness": 97, "consistency": 100}, "pass"),
            ("c2", 500, 80, {"accuracy": 90, "completeness": 70}, "fail"),
        ):
            conn.execute(text(
                """INSERT INTO govops.quality_check_run (dag_id, run_id, task_id, dataset, side, suite, suite_sha256,
                       mode, rows_checked, anomaly_rows, score, dimension_scores, status, finished_at)
                   VALUES ('quality_x', :r, 'check', 'raw/x', 'ingestion', 'x', 'sha', 'batch', :n, 0, :s,
                           CAST(:dims AS jsonb), :st, '2026-11-05 00:00+00')"""
            ), {"r": run, "n": rows, "s": score, "dims": json.dumps(dims), "st": status})  # fmt: skip
    return numbers


def api_runs() -> list[dict[str, Any]]:
    """DAG runs as ``GET /api/v2/dags/~/dagRuns`` lists them."""
    runs = []

    def run(dag: str, run_type: str, state: str, after: datetime) -> None:
        end = None if state == "running" else after + timedelta(seconds=60)
        runs.append({"dag_id": dag, "dag_run_id": f"{run_type}__{after.isoformat()}", "run_type": run_type,
                     "state": state, "run_after": after.isoformat(), "start_date": after.isoformat(),
                     "end_date": end.isoformat() if end else None})  # fmt: skip

    for day in range(1, 31):
        state = "failed" if day in (2, 10) else "running" if day == 30 else "success"
        run("pipeline_a", "scheduled", state, at(f"2026-11-{day:02d} 01:00"))
    run("pipeline_a", "scheduled", "success", at("2026-10-31 17:00"))  # 01:00 on 1 Nov in Shanghai: in the month
    run("pipeline_a", "scheduled", "failed", at("2026-11-30 16:30"))  # 00:30 on 1 Dec in Shanghai: not
    for n, state in enumerate(("success", "success", "failed")):
        run("quality_x", "manual", state, at(f"2026-11-2{n} 03:00"))
    return runs


def in_month(moment: datetime) -> bool:
    return START <= moment < END


def test_ops_monthly_reports_figures_html_and_xlsx(fresh_ledger: Engine, tmp_path: Path) -> None:
    import openpyxl

    from govops.ops.report_render import report_to
    from govops.ops.reports import runs_row

    numbers = write_rows(fresh_ledger)
    raw_runs = api_runs()
    lines = report_to(fresh_ledger, date(2026, 11, 1), tmp_path / "out", runs=[runs_row(r) for r in raw_runs],
                      runs_source="test runs")  # fmt: skip
    assert lines[0].startswith("2026-11: 6 event order(s) opened, 4 open at the end; 3 scheduled job(s); 34 runs")

    # --- the job-anomaly summary: recomputed from the event orders as stored ---
    with fresh_ledger.connect() as conn:
        stored = [dict(r) for r in conn.execute(text(
            """SELECT e.*, j.department, j.service_item_code AS job_item FROM govops.event_order e
               LEFT JOIN govops.scheduled_job j USING (dag_id)""")).mappings()]  # fmt: skip
    opened = [o for o in stored if in_month(o["started_at"])]
    kind = {"failure": "failed"}
    by_kind = Counter(kind.get(o["kind"], o["kind"]) for o in opened)
    assert by_kind == {"failed": 2, "quality_gate": 1, "reconciliation": 1, "slow": 1, "manual": 1}
    open_at_end = [o for o in stored if o["started_at"] < END and (o["resolved_at"] is None or o["resolved_at"] >= END)]
    assert sorted(o["id"] for o in open_at_end) == sorted(numbers[n] for n in ("F2", "R1", "L1", "M1"))
    to_ack = sorted((o["acknowledged_at"] - o["started_at"]).total_seconds() / 3600 for o in opened
                    if o["acknowledged_at"])  # fmt: skip
    to_resolve = sorted((o["resolved_at"] - o["started_at"]).total_seconds() / 3600 for o in opened
                        if o["resolved_at"])  # fmt: skip
    assert to_ack == [2, 10, 24] and to_resolve == [1.5, 6, 24]
    pipeline_a = Counter(kind.get(o["kind"], o["kind"]) for o in opened if o["dag_id"] == "pipeline_a")
    police = Counter(kind.get(o["kind"], o["kind"]) for o in opened if o["department"] == "区公安分局")
    occurrences = sum(o["occurrences"] for o in opened)
    assert occurrences == 9  # F1 3, W1 2, one each for F2, Q1, R1, M1

    shown = render(tmp_path / "out" / "anomalies.html", screenshot=tmp_path / "anomalies.png")
    t = shown.text
    assert "异常作业监控数据分析汇总报告 2026-11" in t
    assert f"{len(opened)} event orders (事件单) opened, {occurrences} occurrences; {len(open_at_end)} open at" in t
    kinds = ["failed", "slow", "quality_gate", "reconciliation", "manual"]  # the report's order of kinds
    zh = {"failed": "失败", "slow": "缓慢", "quality_gate": "质量门禁", "reconciliation": "对账不平",
          "manual": "人工提报"}  # fmt: skip
    assert "orders 事件单 " + " ".join(f"{zh[k]} {k} {by_kind[k]}" for k in kinds) in t
    assert "pipeline_a " + " ".join(str(pipeline_a[k]) for k in kinds) + f" {sum(pipeline_a.values())}" in t
    assert "区公安分局 " + " ".join(str(police[k]) for k in kinds) + f" {sum(police.values())}" in t
    ack, res = to_ack, to_resolve
    assert (f"time to acknowledge {len(ack)} {statistics.fmean(ack):.2f} {statistics.median(ack):.2f} "
            f"{ack[-1]:.2f} {ack[-1]:.2f}") in t  # fmt: skip
    assert (f"time to resolve {len(res)} {statistics.fmean(res):.2f} {statistics.median(res):.2f} "
            f"{res[-1]:.2f} {res[-1]:.2f}") in t  # fmt: skip
    assert "RuntimeError: boom # failed 1 1" in t and "RuntimeError: source down failed 1 3" in t
    for o in open_at_end:
        assert o["id"] in t
    assert numbers["S1"] not in t  # December's
    assert [i.alt for i in shown.images] == ["per day", "per DAG"]
    assert all(i.natural_width and i.natural_width > 400 for i in shown.images)
    assert_screenshot_not_blank(shown.screenshot)

    book = openpyxl.load_workbook(tmp_path / "out" / "anomalies.xlsx")
    assert [tuple(r) for r in book["按类型"].iter_rows(min_row=2, values_only=True)] == [(k, by_kind[k]) for k in kinds]
    dags = {r[0]: r[1:] for r in book["按作业"].iter_rows(min_row=2, values_only=True)}
    assert dags["pipeline_a"] == (*(pipeline_a[k] for k in kinds), sum(pipeline_a.values()))
    assert sorted(r[0] for r in book["未关闭事件单"].iter_rows(min_row=2, values_only=True)) == sorted(
        o["id"] for o in open_at_end)  # fmt: skip
    durations = [r for r in book["时长"].iter_rows(min_row=2, values_only=True)]
    assert durations[0][1:] == (3, pytest.approx(12.0), 10.0, 24.0, 24.0)
    assert durations[1][1:] == (3, pytest.approx(10.5), 6.0, 24.0, 24.0)

    # --- the monthly summary ---
    runs = [r for r in raw_runs if in_month(datetime.fromisoformat(r["run_after"]))]
    states = Counter(r["state"] for r in runs)
    assert len(runs) == 34 and states == {"success": 30, "failed": 3, "running": 1}
    rate = states["success"] / (states["success"] + states["failed"])
    deployed = {"start": 2, "end": 3}  # pipeline_a, old_job; then pipeline_a, quality_x, extra_job (re-added)
    nov_changes = Counter(c for _, c, t in CHANGES if in_month(at(t)))
    records = 500 + 300 + 505

    shown = render(tmp_path / "out" / "monthly.html", screenshot=tmp_path / "monthly.png")
    t = shown.text
    assert "月总结报告 2026-11" in t
    assert (f"Scheduled jobs deployed: {deployed['start']} at the start of the month, {deployed['end']} at its end. "
            "Changes: " + ", ".join(f"{zh} {c} {nov_changes.get(c, 0)}" for zh, c in (
                ("新增", "new"), ("重新部署", "re_added"), ("下线", "removed"), ("调度变更", "schedule_changed"),
                ("暂停", "paused"), ("恢复", "unpaused"), ("属性变更", "attributes_changed")))) in t  # fmt: skip
    assert "New jobs metered (item 05, 个): 1 ." in t  # the text joins inline elements with a space
    assert (f"{len(runs)} DAG runs ({sum(r['run_type'] == 'scheduled' for r in runs)} scheduled): "
            f"{states['success']} succeeded, {states['failed']} failed, {states['running']} queued or running; "
            f"success rate {rate:.2%}") in t  # fmt: skip
    a = [r for r in runs if r["dag_id"] == "pipeline_a"]
    a_ok, a_failed = sum(r["state"] == "success" for r in a), sum(r["state"] == "failed" for r in a)
    assert f"pipeline_a {len(a)} {len(a)} {a_ok} {a_failed} 1 {a_ok / (a_ok + a_failed):.2%} 60.00" in t
    assert "pipeline_a 3 1" in t and "quality_x 1 1" in t  # failed attempts, final failures
    assert f"{records:,} records in 4 usage events of period 2026-11" in t
    assert "04 批数据抽取 table 2 800 2 2" in t and "05 作业调度 task 1 0 1 1" in t
    # Quality: extraction shares of the records read; check scores weighted by rows checked.
    assert "Extraction reconciliation: 2 committed runs, read 300 = loaded 291 + rejected 9" in t
    assert "reconciliation event orders opened: 1" in t
    assert "Quality checks: 2 runs (fail 1, pass 1), 1,500 rows checked, overall score 92.00" in t
    assert (f"准确性 accuracy {1 - 4 / 300:.2%} {(99 * 1000 + 90 * 500) / 1500:.2f} "
            f"完整性 completeness {1 - 3 / 300:.2%} {(97 * 1000 + 70 * 500) / 1500:.2f} "
            f"一致性 consistency {1 - 2 / 300:.2%} 100.00") in t  # fmt: skip
    assert [i.alt for i in shown.images] == ["job volume", "runs per DAG", "records per item"]
    assert_screenshot_not_blank(shown.screenshot)

    book = openpyxl.load_workbook(tmp_path / "out" / "monthly.xlsx")
    figures = dict(book["作业规模"].iter_rows(min_row=2, values_only=True))
    assert figures["jobs at start"] == 2 and figures["jobs at end"] == 3 and figures["change removed"] == 1
    total = next(book["运行"].iter_rows(min_row=2, values_only=True))
    assert total[:6] == ("*", len(runs), 31, states["success"], states["failed"], states["running"])
    assert [r[:5] for r in book["数据量"].iter_rows(min_row=2, values_only=True)] == [
        ("04", "批数据抽取", "table", 2, 800), ("05", "作业调度", "task", 1, 0),
        ("07", "归集端质量检查", "table", 1, 505)]  # fmt: skip
    quality = {r[0]: r[1:] for r in book["调度质量"].iter_rows(min_row=2, values_only=True)}
    assert quality["accuracy"] == (pytest.approx(1 - 4 / 300), pytest.approx(96.0))
    assert quality["consistency"] == (pytest.approx(1 - 2 / 300), pytest.approx(100.0))
