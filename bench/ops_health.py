"""Job health at scale (issue 17):

- one monitoring pass (``govops.ops.health``: ``detect`` then ``apply`` on a real ledger)
  over N DAG runs (default 10,000) of 50 DAGs and 10 task instances per run (100,000), fed
  as the REST API v2 returns them (JSON pages of 100 items, decoded in the timing). The
  data has slow DAGs, stuck and queued tasks, late runs and import errors. The first pass
  opens the orders, the second (the steady state) updates them. Goal: under 10 s a pass.
- the listener's own work per task (``govops.ops.listener``: the success hook that
  resolves a key, the final-failure hook that opens or updates an order, a DAG run's
  success) on a real ledger, mean and p95. Goal: under 5 ms per task.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

DAGS = 50
TASKS = 10
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def synthetic(runs: int, seed: int = 17) -> dict[str, list[dict[str, Any]]]:
    """The API's items: DAGs, DAG runs (one a day per DAG, most recent last) and task instances."""
    rng = random.Random(seed)
    per_dag = runs // DAGS
    dags, dag_runs, tis = [], [], []
    for d in range(DAGS):
        dag_id = f"bench_dag_{d:02d}"
        item = ("02", "04", "07", "20")[d % 4]
        dags.append({"dag_id": dag_id, "is_paused": False, "is_stale": False, "timetable_summary": "0 1 * * *",
                     "tags": [{"name": "governance"}, {"name": f"item:{item}"}],
                     "next_dagrun_run_after": _iso(NOW - timedelta(days=2)) if d == 0 else None,
                     "next_dagrun_logical_date": _iso(NOW - timedelta(days=3)),
                     "next_dagrun_data_interval_start": _iso(NOW - timedelta(days=3)),
                     "next_dagrun_data_interval_end": _iso(NOW - timedelta(days=2))})  # fmt: skip
        typical = rng.uniform(5, 60)  # minutes
        for i in range(per_dag):
            start = NOW - timedelta(days=per_dag - i, hours=-1)
            last = i == per_dag - 1
            state = "running" if last and d % 5 == 0 else "queued" if last and d % 7 == 0 else "success"
            minutes = typical * (3 if last and d % 3 == 0 else rng.uniform(0.8, 1.2))
            end = start + timedelta(minutes=minutes)
            run_id = f"scheduled__{start:%Y-%m-%d}"
            dag_runs.append({
                "dag_id": dag_id, "dag_run_id": run_id, "state": state, "run_type": "scheduled",
                "logical_date": _iso(start - timedelta(days=1)), "data_interval_start": _iso(start - timedelta(days=1)),
                "data_interval_end": _iso(start),
                "queued_at": _iso(start if state == "success" else NOW - timedelta(hours=1)),
                "start_date": _iso(start), "end_date": _iso(end) if state == "success" else None,
                "duration": minutes * 60 if state == "success" else None, "conf": {}})  # fmt: skip
            for t in range(TASKS):
                t_state = "running" if state == "running" and t == 0 else "queued" if state == "queued" else state
                t_minutes = minutes / TASKS
                t_start = start + timedelta(minutes=t * t_minutes)
                if t_state == "running":
                    t_start = NOW - timedelta(minutes=typical * 2)  # far past its usual duration
                tis.append({
                    "dag_id": dag_id, "task_id": f"task_{t}", "dag_run_id": run_id, "map_index": -1,
                    "state": t_state, "start_date": _iso(t_start),
                    "end_date": _iso(t_start + timedelta(minutes=t_minutes)) if t_state == "success" else None,
                    "duration": t_minutes * 60 if t_state == "success" else None, "try_number": 1,
                    "queued_when": _iso(NOW - timedelta(minutes=40)), "logical_date": _iso(start)})  # fmt: skip
    errors = [{"import_error_id": i, "filename": f"/dags/broken_{i}.py", "bundle_name": "dags-folder",
               "timestamp": _iso(NOW), "stack_trace": "SyntaxError: invalid syntax"} for i in range(20)]  # fmt: skip
    return {"dags": dags, "dag_runs": dag_runs, "task_instances": tis, "import_errors": errors}


def pages(items: list[dict[str, Any]], key: str) -> list[bytes]:
    """The items as the API's pages of 100 (what the pass's reader decodes)."""
    return [json.dumps({key: items[i : i + 100], "total_entries": len(items)}).encode()
            for i in range(0, len(items), 100)]  # fmt: skip


def bench_pass(url: str, runs: int) -> None:
    from govops.ops.health import Snapshot, apply, detect

    data = synthetic(runs)
    raw = {key: pages(items, key) for key, items in data.items()}
    print(f"\n== Monitoring pass: {len(data['dag_runs']):,} DAG runs, {len(data['task_instances']):,} task "
          f"instances, {len(data['dags'])} DAGs, {len(data['import_errors'])} import errors ==")  # fmt: skip
    engine = create_engine(url)
    for label in ("first pass (opens)", "second pass (updates)"):
        t0 = time.perf_counter()
        decoded = {key: [item for page in ps for item in json.loads(page)[key]] for key, ps in raw.items()}
        t1 = time.perf_counter()
        snapshot = Snapshot(NOW, decoded["dags"], decoded["dag_runs"], decoded["task_instances"],
                            decoded["import_errors"], base_url="http://airflow:8080")  # fmt: skip
        findings = detect(snapshot)
        t2 = time.perf_counter()
        with engine.begin() as conn:
            result = apply(conn, findings, NOW)
        t3 = time.perf_counter()
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.detected.items()))
        print(f"{label}: {t3 - t0:.2f} s (decode {t1 - t0:.2f} s, detect {t2 - t1:.2f} s, ledger {t3 - t2:.2f} s); "
              f"detected {kinds}; opened {len(result.opened)}, updated {len(result.updated)}, "
              f"resolved {len(result.resolved)}  (goal: under 10 s)")  # fmt: skip
    engine.dispose()


@dataclass
class _Run:  # what the listener reads of a DAG run
    dag_id: str
    run_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    logical_date: datetime
    end_date: datetime
    run_type: str = "manual"
    state: str = "success"
    conf: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Task:
    owner: str = "govops"


@dataclass
class _TaskInstance:  # what the listener reads of the runtime task instance
    dag_id: str
    task_id: str
    state: str
    dag_run: _Run
    end_date: datetime
    map_index: int = -1
    try_number: int = 1
    task: _Task = field(default_factory=_Task)
    log_url: str = ""

    def get_template_context(self) -> dict[str, Any]:
        return {"dag_run": self.dag_run, "params": {}}


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"mean {statistics.fmean(ordered) * 1000:.2f} ms, p95 {ordered[int(0.95 * len(ordered))] * 1000:.2f} ms"


def bench_listener(n: int = 1_000) -> None:
    from govops.ops import listener

    print(f"\n== Listener's own work per task ({n:,} calls each, real ledger) ==")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    listener._engine()  # the engine of the process is made once, by the first task of the process
    timings: dict[str, list[float]] = {"task success (resolves its key)": [], "task final failure (opens/updates)": [],
                                       "DAG run success (resolves, meters)": [],
                                       "for scale: a bare transaction (SELECT 1)": []}  # fmt: skip

    def bare() -> None:
        with listener._engine().begin() as conn:
            conn.execute(text("SELECT 1"))

    for i in range(n):
        day = start + timedelta(days=i % 30)
        run = _Run("bench_listener", f"manual__{i}", day, day + timedelta(days=1), day, day + timedelta(hours=1))
        ok = _TaskInstance("bench_listener", f"task_{i % 10}", "success", run, run.end_date)
        failed = _TaskInstance("bench_listener", f"task_{i % 10}", "failed", run, run.end_date)
        for label, call, arg in (("task success (resolves its key)", listener.task_success, (ok,)),
                                 ("task final failure (opens/updates)", listener.task_failure, (failed, "boom")),
                                 ("DAG run success (resolves, meters)", listener.dag_run_success, (run,)),
                                 ("for scale: a bare transaction (SELECT 1)", bare, ())):  # fmt: skip
            t0 = time.perf_counter()
            call(*arg)
            timings[label].append(time.perf_counter() - t0)
    for label, samples in timings.items():
        print(f"{label}: {_ms(samples)}" + ("" if label.startswith("for scale") else "  (goal: under 5 ms)"))
    with listener._engine().connect() as conn:
        states = dict(conn.execute(text("""SELECT state, count(*) FROM govops.event_order
                                           WHERE dag_id = 'bench_listener' GROUP BY state""")).all())  # fmt: skip
    print(f"event orders: {states} (30 keys; each success resolves its key's order, the next failure opens one)")


def bench_ops_health(url: str, runs: int) -> None:
    bench_pass(url, runs)
    bench_listener()
