"""Job health (issue 17): one monitoring pass over Airflow's state as the REST API v2
returns it, opening, updating and resolving event orders by itself.

``detect`` is a pure function of a ``Snapshot`` (the JSON of ``/api/v2/dags``, ``dagRuns``,
``taskInstances`` and ``importErrors``); ``apply`` writes its findings to the ledger;
``read_snapshot`` reads the snapshot through ``sources.RestApiSource`` (Airflow 3 task code
cannot use the metadata database). What it detects (the ``kind`` of the order):

- ``stuck``: a task instance queued for more than ``queued_limit``, or running for more
  than ``stuck_factor`` x the p90 of its task's recent successful durations and at least
  ``stuck_margin`` over their median (with fewer than ``min_sample`` successes to compare:
  running for more than ``stuck_without_baseline``); a DAG run queued for more than
  ``queued_limit``. Key: the task's (or run's) key ``|stuck``.
- ``slow``: a DAG's latest successful run took more than ``slow_factor`` x the p90 of the
  ``baseline_runs`` successful runs before it, and at least ``slow_margin`` more than their
  median (needs ``min_sample`` of them). Key ``dag||slow``: one open order per DAG.
- ``late``: a scheduled (or asset-triggered) run still queued or running after its
  ``queued_at`` + its service item's deadline (``govops.ops.deadlines``), or a DAG whose
  next run the scheduler has not created by its ``next_dagrun_run_after`` + the deadline.
  Key: the run's key ``|late``, the same as the Deadline Alert's.
- ``import_error``: each entry of ``/importErrors``. Key ``import_error|bundle:file``.

Final failures (``failed``, ``quality_gate``, ``reconciliation``, ``refusal``) come from the
listener, not from here. A repeated pass updates the open order of a key. An order resolves
by itself when the pass sees the problem gone: the task or run no longer queued or
running (``stuck``), the import error cleared, the DAG's latest success back within its
baseline (``slow``), the late run finished (``late``; the listener also resolves it when
the run succeeds).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from govops.errors import CodedError
from govops.ops.deadlines import SCHEDULED_RUN_TYPES, Deadlines, items_of, late_key, late_problem, load_deadlines
from govops.ops.event_orders import Problem, dedup_key, record_problem, resolve_absent, resolve_keys

ACTIVE = ("queued", "running")
FINISHED = ("success", "failed")


@dataclass(frozen=True)
class Thresholds:
    baseline_runs: int = 20
    min_sample: int = 5
    slow_factor: float = 1.5
    slow_margin: timedelta = timedelta(minutes=1)
    stuck_factor: float = 3.0
    stuck_margin: timedelta = timedelta(minutes=10)
    stuck_without_baseline: timedelta = timedelta(hours=6)
    queued_limit: timedelta = timedelta(minutes=30)
    recent: timedelta = timedelta(days=2)  # finished runs read to resolve late orders


@dataclass
class Snapshot:
    """Airflow's state, each list as the REST API v2 returns its items."""

    taken_at: datetime
    dags: list[dict[str, Any]] = field(default_factory=list)
    dag_runs: list[dict[str, Any]] = field(default_factory=list)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    import_errors: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


@dataclass(frozen=True)
class Baseline:
    n: int
    median: float  # seconds
    p90: float


@dataclass
class Findings:
    problems: list[Problem] = field(default_factory=list)
    cleared: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # why -> keys
    complete: dict[str, set[str]] = field(default_factory=dict)  # kind -> every key the pass saw


@dataclass
class PassResult:
    detected: Counter[str]
    opened: list[str]
    updated: list[str]
    resolved: list[str]

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.detected.items())) or "none"
        return [f"detected: {kinds}", f"opened: {len(self.opened)} {' '.join(self.opened)}".rstrip(),
                f"updated: {len(self.updated)}",
                f"resolved: {len(self.resolved)} {' '.join(self.resolved)}".rstrip()]  # fmt: skip


def baseline(durations: Sequence[float], min_sample: int) -> Baseline | None:
    """Median and p90 (nearest rank) of the durations; None below ``min_sample``."""
    if len(durations) < min_sample:
        return None
    ordered = sorted(durations)
    return Baseline(len(ordered), statistics.median(ordered), ordered[math.ceil(0.9 * len(ordered)) - 1])


def _at(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _seconds(item: dict[str, Any]) -> float | None:
    if item.get("duration") is not None:
        return float(item["duration"])
    start, end = _at(item.get("start_date")), _at(item.get("end_date"))
    return (end - start).total_seconds() if start and end else None


def _run_key(run: dict[str, Any], task_id: str = "") -> str:
    return dedup_key(run["dag_id"], task_id, run.get("dag_run_id") or "", _at(run.get("data_interval_start")),
                     _at(run.get("data_interval_end")), _at(run.get("logical_date")))  # fmt: skip


def _minutes(delta: timedelta | float) -> str:
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
    return f"{seconds / 60:.1f} min"


class _Context:
    """What ``detect`` looks up: runs by id, each DAG's items and deadline, links."""

    def __init__(self, snap: Snapshot, deadlines: Deadlines) -> None:
        self.snap = snap
        self.runs = {(r["dag_id"], r["dag_run_id"]): r for r in snap.dag_runs}
        self.items = {d["dag_id"]: items_of(t["name"] for t in d.get("tags") or []) for d in snap.dags}
        self.deadlines = deadlines

    def item(self, dag_id: str) -> str | None:
        items = self.items.get(dag_id) or []
        return items[0] if len(items) == 1 else None

    def deadline(self, dag_id: str) -> timedelta:
        return self.deadlines.for_items(self.items.get(dag_id) or [])

    def links(self, dag_id: str, run_id: str | None, task_id: str = "") -> dict[str, str]:
        if not self.snap.base_url or not run_id:
            return {}
        run = f"{self.snap.base_url}/dags/{dag_id}/runs/{run_id}"
        return {"dag_run": run, **({"task": f"{run}/tasks/{task_id}"} if task_id else {})}

    def problem(self, kind: str, key: str, title: str, why: str, run: dict[str, Any], at: datetime,
                task_id: str = "", urgency: str = "urgent") -> Problem:  # fmt: skip
        return Problem(
            kind=kind, key=key, title=title, description=why, occurred_at=at, urgency=urgency, dag_id=run["dag_id"],
            task_id=task_id, run_id=run.get("dag_run_id"), data_interval_start=_at(run.get("data_interval_start")),
            data_interval_end=_at(run.get("data_interval_end")),
            work_order_id=(run.get("conf") or {}).get("work_order_id"), service_item_code=self.item(run["dag_id"]),
            links=self.links(run["dag_id"], run.get("dag_run_id"), task_id),
        )  # fmt: skip


def _task_baselines(tis: Iterable[dict[str, Any]], th: Thresholds) -> dict[tuple[str, str], Baseline]:
    by_task: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for ti in tis:
        if ti.get("state") == "success":
            seconds = _seconds(ti)
            if seconds is not None:
                by_task[(ti["dag_id"], ti["task_id"])].append((ti.get("end_date") or "", seconds))
    found = {}
    for task, rows in by_task.items():
        rows.sort()  # ISO times of one timezone sort as text
        b = baseline([s for _, s in rows[-th.baseline_runs :]], th.min_sample)
        if b is not None:
            found[task] = b
    return found


def _stuck(ctx: _Context, th: Thresholds, found: Findings) -> None:
    now, keys = ctx.snap.taken_at, set()
    baselines = _task_baselines(ctx.snap.task_instances, th)
    for ti in ctx.snap.task_instances:
        state = ti.get("state")
        if state not in ACTIVE:
            continue
        run = ctx.runs.get((ti["dag_id"], ti["dag_run_id"])) or {
            "dag_id": ti["dag_id"], "dag_run_id": ti["dag_run_id"], "logical_date": ti.get("logical_date")}  # fmt: skip
        subject = f"{ti['dag_id']}.{ti['task_id']}"
        why = None
        if state == "queued":
            since = _at(ti.get("queued_when") or ti.get("scheduled_when"))
            if since and now - since > th.queued_limit:
                why = f"task {subject} of run {ti['dag_run_id']} queued for {_minutes(now - since)}"
        elif (start := _at(ti.get("start_date"))) is not None:
            elapsed = (now - start).total_seconds()
            b = baselines.get((ti["dag_id"], ti["task_id"]))
            if b is None:
                if elapsed > th.stuck_without_baseline.total_seconds():
                    why = f"task {subject} of run {ti['dag_run_id']} running for {_minutes(elapsed)} (no baseline)"
            elif elapsed > th.stuck_factor * b.p90 and elapsed - b.median >= th.stuck_margin.total_seconds():
                why = (f"task {subject} of run {ti['dag_run_id']} running for {_minutes(elapsed)}; its last {b.n} "
                       f"successes: median {_minutes(b.median)}, p90 {_minutes(b.p90)}")  # fmt: skip
        if why:
            key = _run_key(run, ti["task_id"]) + "|stuck"
            if key not in keys:
                keys.add(key)
                found.problems.append(ctx.problem("stuck", key, f"作业卡住：{subject}", why, run, now, ti["task_id"]))
    for run in ctx.snap.dag_runs:
        queued = _at(run.get("queued_at"))
        if run.get("state") == "queued" and queued and now - queued > th.queued_limit:
            key = _run_key(run) + "|stuck"
            keys.add(key)
            why = f"run {run['dag_run_id']} of {run['dag_id']} queued for {_minutes(now - queued)}"
            found.problems.append(ctx.problem("stuck", key, f"作业卡住：{run['dag_id']}", why, run, now))
    found.complete["stuck"] = keys


def _slow(ctx: _Context, th: Thresholds, found: Findings) -> None:
    successes: dict[str, list[tuple[str, float, dict[str, Any]]]] = defaultdict(list)
    for run in ctx.snap.dag_runs:
        if run.get("state") == "success" and (seconds := _seconds(run)) is not None:
            successes[run["dag_id"]].append((run.get("end_date") or "", seconds, run))
    for dag_id, rows in successes.items():
        rows.sort(key=lambda r: r[0])
        *before, (_, seconds, latest) = rows
        b = baseline([s for _, s, _ in before[-th.baseline_runs :]], th.min_sample)
        if b is None:
            continue
        key = f"{dag_id}||slow"
        if seconds > th.slow_factor * b.p90 and seconds - b.median >= th.slow_margin.total_seconds():
            why = (f"run {latest['dag_run_id']} of {dag_id} took {_minutes(seconds)}; its last {b.n} successes: "
                   f"median {_minutes(b.median)}, p90 {_minutes(b.p90)}")  # fmt: skip
            at = _at(latest.get("end_date")) or ctx.snap.taken_at
            found.problems.append(ctx.problem("slow", key, f"作业变慢：{dag_id}", why, latest, at, urgency="low"))
        else:
            found.cleared["resolved by itself: the DAG's latest successful run is within its baseline"].append(key)


def _late(ctx: _Context, found: Findings) -> None:
    now = ctx.snap.taken_at
    seen = set()
    for run in ctx.snap.dag_runs:
        if str(run.get("run_type")) not in SCHEDULED_RUN_TYPES:
            continue
        key = late_key(run["dag_id"], run.get("dag_run_id") or "", _at(run.get("data_interval_start")),
                       _at(run.get("data_interval_end")), _at(run.get("logical_date")))  # fmt: skip
        seen.add(key)
        queued = _at(run.get("queued_at"))
        if run.get("state") in FINISHED:
            found.cleared["resolved by itself: the late run finished"].append(key)
        elif run.get("state") in ACTIVE and queued and now > queued + ctx.deadline(run["dag_id"]):
            deadline = ctx.deadline(run["dag_id"])
            found.problems.append(late_problem(
                run, queued + deadline, int(deadline.total_seconds() // 60), started=run.get("state") == "running",
                service_item_code=ctx.item(run["dag_id"])))  # fmt: skip
    for dag in ctx.snap.dags:
        due = _at(dag.get("next_dagrun_run_after"))
        if dag.get("is_paused") or dag.get("is_stale") or due is None:
            continue
        deadline = ctx.deadline(dag["dag_id"])
        expected = {"dag_id": dag["dag_id"], "dag_run_id": "", "logical_date": dag.get("next_dagrun_logical_date"),
                    "data_interval_start": dag.get("next_dagrun_data_interval_start"),
                    "data_interval_end": dag.get("next_dagrun_data_interval_end")}  # fmt: skip
        if now > due + deadline:
            p = late_problem(expected, due + deadline, int(deadline.total_seconds() // 60), started=False,
                             service_item_code=ctx.item(dag["dag_id"]))  # fmt: skip
            if p.key not in seen:
                found.problems.append(p)


def _import_errors(snap: Snapshot, found: Findings) -> None:
    keys = set()
    for e in snap.import_errors:
        where = f"{e.get('bundle_name') or ''}:{e['filename']}"
        key = f"import_error|{where}"
        keys.add(key)
        trace = (e.get("stack_trace") or "").strip()
        found.problems.append(Problem(
            kind="import_error", key=key, title=f"DAG 导入错误：{e['filename']}", urgency="urgent",
            description=f"{e['filename']} does not import:\n{trace[-3000:]}",
            occurred_at=_at(e.get("timestamp")) or snap.taken_at,
        ))  # fmt: skip
    found.complete["import_error"] = keys


def detect(snapshot: Snapshot, deadlines: Deadlines | None = None, thresholds: Thresholds | None = None) -> Findings:
    """Every problem the snapshot shows, and the keys it proves fine again."""
    ctx = _Context(snapshot, deadlines or load_deadlines())
    th = thresholds or Thresholds()
    found = Findings()
    _stuck(ctx, th, found)
    _slow(ctx, th, found)
    _late(ctx, found)
    _import_errors(snapshot, found)
    return found


def apply(conn: Connection, findings: Findings, at: datetime) -> PassResult:
    """Open or update an order per problem; resolve the orders whose problem is gone."""
    result = PassResult(Counter(p.kind for p in findings.problems), [], [], [])
    for problem in findings.problems:
        number, opened = record_problem(conn, problem)
        (result.opened if opened else result.updated).append(number)
    for why, keys in findings.cleared.items():
        result.resolved += resolve_keys(conn, keys, at, why)
    for kind, present in findings.complete.items():
        what = "no longer queued or running" if kind == "stuck" else "the import error cleared"
        result.resolved += resolve_absent(conn, kind, present, at, f"resolved by itself: {what}")
    return result


def run_pass(conn: Connection, snapshot: Snapshot, deadlines: Deadlines | None = None,
             thresholds: Thresholds | None = None) -> PassResult:  # fmt: skip
    return apply(conn, detect(snapshot, deadlines, thresholds), snapshot.taken_at)


def read_snapshot(source: Any, thresholds: Thresholds | None = None, now: datetime | None = None) -> Snapshot:
    """Read what ``detect`` needs through the REST API v2 (``sources.RestApiSource``): the DAGs,
    the active runs and task instances, the runs finished recently, each scheduled DAG's last
    successful runs (its baseline) and each running task's last successes."""
    th = thresholds or Thresholds()
    now = now or datetime.now(UTC)
    snap = Snapshot(taken_at=now, base_url=source.base_url)
    snap.dags = source._pages("/dags", "dags", exclude_stale=True)
    runs: dict[tuple[str, str], dict[str, Any]] = {}

    def add_runs(items: list[dict[str, Any]]) -> None:
        runs.update({(r["dag_id"], r["dag_run_id"]): r for r in items})

    add_runs(source._pages("/dags/~/dagRuns", "dag_runs", state=list(ACTIVE)))
    add_runs(source._pages("/dags/~/dagRuns", "dag_runs", end_date_gte=(now - th.recent).isoformat()))
    for dag in snap.dags:
        if dag.get("timetable_summary") not in (None, "None"):
            page = source.client.get(f"/dags/{dag['dag_id']}/dagRuns", params={
                "state": "success", "order_by": "-end_date", "limit": th.baseline_runs + 1})  # fmt: skip
            page.raise_for_status()
            add_runs(page.json()["dag_runs"])
    snap.dag_runs = list(runs.values())
    active = source._pages("/dags/~/dagRuns/~/taskInstances", "task_instances", state=list(ACTIVE))
    tis = list(active)
    for dag_id, task_id in sorted({(t["dag_id"], t["task_id"]) for t in active if t.get("state") == "running"}):
        page = source.client.get(f"/dags/{dag_id}/dagRuns/~/taskInstances", params={
            "state": "success", "task_id": task_id, "order_by": "-end_date", "limit": th.baseline_runs})  # fmt: skip
        page.raise_for_status()
        tis += page.json()["task_instances"]
    snap.task_instances = tis
    snap.import_errors = source._pages("/importErrors", "import_errors")
    return snap


class HealthSourceError(CodedError, RuntimeError):
    code = "HEALTH_SOURCE_MISSING"


def api_source() -> Any:
    """The REST API v2 through the connection ``govops_airflow_api``; refused without it."""
    from govops import settings
    from govops.ops.sources import API_CONN_ID, RestApiSource

    if not settings._airflow_connection_uri(API_CONN_ID):
        raise HealthSourceError(f"the monitoring pass reads Airflow's REST API v2: define the Airflow connection "
                                f"{API_CONN_ID} (http://user:password@host:port)")  # fmt: skip
    return RestApiSource.from_connection()


def check(conn: Connection, source: Any = None) -> PassResult:
    """One monitoring pass: the DAG ``ops_job_health`` and ``python -m govops.ops health check``."""
    return run_pass(conn, read_snapshot(source or api_source()))
