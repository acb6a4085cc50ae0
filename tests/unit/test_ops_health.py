"""The monitoring pass's detection (``govops.ops.health.detect``) on plain data shaped as the
REST API v2 returns it, and the per-service-item deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from govops.ops.deadlines import DeadlineConfigError, Deadlines, load_deadlines, parse_deadlines
from govops.ops.health import Snapshot, baseline, detect

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
SLOW_CLEARED = "resolved by itself: the DAG's latest successful run is within its baseline"
DEADLINES = Deadlines(default=timedelta(hours=4), items={"02": timedelta(minutes=30)})


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def run(dag: str, day: int, state: str = "success", minutes: float = 10, run_type: str = "scheduled",
        queued: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    start = datetime(2026, 11, day, 1, tzinfo=UTC)
    return {"dag_id": dag, "dag_run_id": f"scheduled__{day}", "state": state, "run_type": run_type,
            "logical_date": iso(start - timedelta(days=1)), "data_interval_start": iso(start - timedelta(days=1)),
            "data_interval_end": iso(start), "queued_at": iso(queued or start), "start_date": iso(start),
            "end_date": iso(start + timedelta(minutes=minutes)) if state in ("success", "failed") else None,
            "duration": minutes * 60 if state in ("success", "failed") else None, "conf": {}}  # fmt: skip


def ti(dag: str, task: str, day: int, state: str = "success", minutes: float = 2, **extra: Any) -> dict[str, Any]:
    start = datetime(2026, 11, day, 1, tzinfo=UTC)
    return {"dag_id": dag, "task_id": task, "dag_run_id": f"scheduled__{day}", "map_index": -1, "state": state,
            "start_date": iso(start), "end_date": iso(start + timedelta(minutes=minutes)),
            "duration": minutes * 60 if state == "success" else None, **extra}  # fmt: skip


def dag(dag_id: str, item: str = "04", **extra: Any) -> dict[str, Any]:
    return {"dag_id": dag_id, "is_paused": False, "is_stale": False, "timetable_summary": "0 1 * * *",
            "tags": [{"name": "governance"}, {"name": f"item:{item}"}], "next_dagrun_run_after": None,
            **extra}  # fmt: skip


def test_baseline_needs_a_minimum_sample() -> None:
    assert baseline([1, 2, 3, 4], 5) is None
    b = baseline([10, 1, 2, 3, 4, 5, 6, 7, 8, 9], 5)
    assert b is not None and (b.n, b.median, b.p90) == (10, 5.5, 9)


def test_slow_against_the_recent_successes_and_cleared_when_back() -> None:
    history = [run("p", d, minutes=10 + d % 3) for d in range(1, 8)]  # 10..12 min
    slow = detect(Snapshot(NOW, [dag("p")], [*history, run("p", 9, minutes=30)]), DEADLINES)
    assert [(p.kind, p.key, p.urgency, p.service_item_code) for p in slow.problems] == [
        ("slow", "p||slow", "low", "04")]
    assert "took 30.0 min; its last 7 successes: median 11.0 min, p90 12.0 min" in slow.problems[0].description
    back = detect(Snapshot(NOW, [dag("p")], [*history, run("p", 9, minutes=30), run("p", 10, minutes=12)]),
                  DEADLINES)  # fmt: skip
    assert back.problems == [] and back.cleared[SLOW_CLEARED] == ["p||slow"]
    # 1.5 x p90 but under a minute more than the median: not slow; 4 runs: no baseline at all.
    tiny = [run("q", d, minutes=0.1) for d in range(1, 8)]
    assert detect(Snapshot(NOW, [dag("q")], [*tiny, run("q", 9, minutes=0.5)]), DEADLINES).problems == []
    assert detect(Snapshot(NOW, [dag("q")], [*tiny[:4], run("q", 9, minutes=60)]), DEADLINES).problems == []


def test_stuck_tasks_and_runs() -> None:
    day = 10
    runs = [run("p", day, state="running"), run("p", 9, state="queued", queued=NOW - timedelta(minutes=45))]
    history = [ti("p", "extract", d, minutes=5) for d in range(1, 8)]
    tis = [
        *history,
        ti("p", "extract", day, state="running", start_date=iso(NOW - timedelta(minutes=40))),  # 8 x its p90
        ti("p", "load", day, state="running", start_date=iso(NOW - timedelta(hours=5))),  # no baseline, < 6 h
        ti("p", "notify", day, state="queued", queued_when=iso(NOW - timedelta(minutes=31))),
        ti("p", "report", day, state="queued", queued_when=iso(NOW - timedelta(minutes=5))),
    ]
    found = detect(Snapshot(NOW, [dag("p")], runs, tis), DEADLINES)
    stuck = {p.key: p for p in found.problems if p.kind == "stuck"}
    interval = "2026-11-09T01:00:00+00:00/2026-11-10T01:00:00+00:00"
    assert sorted(stuck) == sorted([f"p|extract|{interval}|stuck", f"p|notify|{interval}|stuck",
                                    "p||2026-11-08T01:00:00+00:00/2026-11-09T01:00:00+00:00|stuck"])  # fmt: skip
    why = stuck[f"p|extract|{interval}|stuck"].description
    assert "running for 40.0 min; its last 7 successes: median 5.0 min" in why
    assert found.complete["stuck"] == set(stuck)
    # Past 6 hours without a baseline: stuck too.
    later = detect(Snapshot(NOW + timedelta(hours=2), [dag("p")], runs, tis), DEADLINES)
    assert f"p|load|{interval}|stuck" in {p.key for p in later.problems}


def test_late_runs_and_runs_never_started() -> None:
    queued = NOW - timedelta(minutes=31)
    runs = [run("stream", 10, state="running", queued=queued),  # item 02: 30 min
            run("stream", 9, state="success"),  # finished: its late order (if any) resolves
            run("batch", 10, state="running", queued=queued),  # item 04: 4 h, not late yet
            run("stream", 8, state="running", run_type="manual", queued=queued - timedelta(days=1))]  # fmt: skip
    due = NOW - timedelta(hours=5)
    dags = [dag("stream", "02"), dag("batch", "04", next_dagrun_run_after=iso(due),
            next_dagrun_logical_date=iso(due - timedelta(days=1)),
            next_dagrun_data_interval_start=iso(due - timedelta(days=1)), next_dagrun_data_interval_end=iso(due)),
            dag("paused", is_paused=True, next_dagrun_run_after=iso(due))]  # fmt: skip
    found = detect(Snapshot(NOW, dags, runs), DEADLINES)
    late = [(p.key, p.title, p.occurred_at) for p in found.problems if p.kind == "late"]
    assert late == [
        ("stream||2026-11-09T01:00:00+00:00/2026-11-10T01:00:00+00:00|late", "作业超时未按时完成：stream",
         queued + timedelta(minutes=30)),
        (f"batch||{(due - timedelta(days=1)).isoformat()}/{due.isoformat()}|late", "作业超时未按时启动：batch",
         due + timedelta(hours=4)),
    ]  # fmt: skip
    assert found.cleared["resolved by itself: the late run finished"] == [
        "stream||2026-11-08T01:00:00+00:00/2026-11-09T01:00:00+00:00|late"]


def test_import_errors() -> None:
    errors = [{"import_error_id": 1, "timestamp": iso(NOW), "filename": "/dags/broken.py", "bundle_name": "dags-folder",
               "stack_trace": "Traceback ...\nSyntaxError: invalid syntax"}]  # fmt: skip
    found = detect(Snapshot(NOW, [], [], [], errors), DEADLINES)
    assert [(p.kind, p.key, p.title) for p in found.problems] == [
        ("import_error", "import_error|dags-folder:/dags/broken.py", "DAG 导入错误：/dags/broken.py")]
    assert found.problems[0].description.endswith("SyntaxError: invalid syntax")
    assert detect(Snapshot(NOW), DEADLINES).complete["import_error"] == set()


def test_deadlines_of_the_catalog() -> None:
    d = load_deadlines()
    assert d.for_items(["02"]) == timedelta(minutes=30)
    assert d.for_items(["07", "08"]) == timedelta(hours=2)
    assert d.for_items([]) == d.default == timedelta(hours=4)
    with pytest.raises(DeadlineConfigError, match=r"f.yaml: items.99: unknown service item"):
        parse_deadlines({"default": 10, "items": {"99": 5}}, "f.yaml")
    with pytest.raises(DeadlineConfigError, match=r"f.yaml: items.04: a whole number of minutes > 0, not -1"):
        parse_deadlines({"default": 10, "items": {"04": -1}}, "f.yaml")
