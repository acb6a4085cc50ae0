"""The scheduling service's monthly reports (seed 000, 作业调度): their figures.

* 异常作业监控数据分析汇总报告 (job-anomaly summary): the event orders (事件单) opened in the
  month by kind (failed, stuck, slow, late, import error, quality gate, reconciliation,
  refusal, manual) per DAG, service item and department; time to acknowledge and to resolve;
  the top causes; the orders still open at the month's end.
* 月总结报告 (monthly summary): the job volume and its changes (the change record
  ``govops.scheduled_job_change``), the DAG runs and their success rate, the data volumes
  metered in the usage ledger, and scheduling quality (accuracy, completeness,
  consistency) from the extraction reconciliations and the quality checks' scores.

Everything here is a pure function of typed rows, so a test can recompute each figure from
the same rows; ``read_*`` fetch the rows (ledger SQL, Airflow's REST API v2 for the runs:
task code cannot use Airflow's metadata database). Rendering is ``govops.ops.report_render``.
A month is a calendar month in the contract's time zone (``GOVOPS_TIMEZONE``).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from govops.ops.sources import RestApiSource

# Event-order kinds in the order the reports show them; any other kind follows, by name.
KINDS = ("failed", "stuck", "slow", "late", "import_error", "quality_gate", "reconciliation", "refusal", "manual")
KINDS_ZH = {"failed": "失败", "stuck": "卡住", "slow": "缓慢", "late": "延迟", "import_error": "导入错误",
            "quality_gate": "质量门禁", "reconciliation": "对账不平", "refusal": "拒绝执行",
            "manual": "人工提报"}  # fmt: skip
# The listener names a plain final failure ``failure``: the reports count it as ``failed``.
KIND_ALIASES = {"failure": "failed"}
DIMENSIONS = ("accuracy", "completeness", "consistency")
DIMENSIONS_ZH = {"accuracy": "准确性", "completeness": "完整性", "consistency": "一致性"}
CHANGES = ("new", "re_added", "removed", "schedule_changed", "paused", "unpaused", "attributes_changed")
NONE = "–"  # a DAG, item or department an order or a job does not name


@dataclass(frozen=True)
class Month:
    """A calendar month in the contract's time zone: [start, end)."""

    first: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, month: date) -> Month:
        from govops.ledger.usage import contract_timezone

        tz = contract_timezone()
        first = month.replace(day=1)
        after = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        return cls(first, datetime(first.year, first.month, 1, tzinfo=tz),
                   datetime(after.year, after.month, 1, tzinfo=tz))  # fmt: skip

    @property
    def label(self) -> str:
        return f"{self.first:%Y-%m}"

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.end.date() - self.first).days)]

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def month_before(moment: datetime) -> date:
    """The first day of the month before ``moment``'s, in the contract's time zone."""
    from govops.ledger.usage import contract_timezone

    first = moment.astimezone(contract_timezone()).date().replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventOrderRow:
    number: str
    kind: str
    state: str
    urgency: str
    title: str
    dag_id: str | None
    task_id: str | None
    service_item: str | None  # the order's work order's item, else the job's (registry)
    department: str | None  # the job's department (registry)
    started_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    occurrences: int
    error: str  # the last error, else the description


@dataclass(frozen=True)
class JobRow:
    """A job of the registry (its attributes as registered now)."""

    dag_id: str
    service_item: str | None
    department: str | None


@dataclass(frozen=True)
class ChangeRow:
    dag_id: str
    change: str
    old_value: str | None
    new_value: str | None
    observed_at: datetime


@dataclass(frozen=True)
class DagRunRow:
    """A DAG run as Airflow's REST API v2 gives it."""

    dag_id: str
    run_id: str
    run_type: str
    state: str
    run_after: datetime
    start_date: datetime | None
    end_date: datetime | None

    @property
    def duration_s(self) -> float | None:
        return (self.end_date - self.start_date).total_seconds() if self.start_date and self.end_date else None


@dataclass(frozen=True)
class UsageRow:
    """The month's usage events of one (item, unit, department, DAG), added up."""

    service_item: str
    unit: str
    department: str | None
    dag_id: str
    quantity: int
    records: int
    events: int
    runs: int


@dataclass(frozen=True)
class FailedAttempts:
    """``govops.task_failure`` rows of one DAG in the month: every failed attempt, and the final ones."""

    dag_id: str
    attempts: int
    final: int


@dataclass(frozen=True)
class QualityRun:
    """A quality check run (items 07/08) of the month: ``govops.quality_check_run``."""

    dataset: str
    status: str
    rows_checked: int
    score: float
    dimension_scores: dict[str, float]


@dataclass(frozen=True)
class Reconciliation:
    """The month's committed extraction runs (the run log's read = written + rejected),
    with the rejected records per quality dimension of their reasons."""

    runs: int
    read: int
    written: int
    rejected: int
    rejected_by_dimension: dict[str, int]


@dataclass
class MonthRows:
    """Everything the two reports of one month are computed from."""

    month: Month
    orders: list[EventOrderRow]
    jobs: list[JobRow]
    changes: list[ChangeRow]  # every change up to the month's end
    runs: list[DagRunRow] | None  # None: no source of DAG runs (no REST API connection)
    usage: list[UsageRow]
    failed_attempts: list[FailedAttempts]
    quality_runs: list[QualityRun]
    reconciliation: Reconciliation
    runs_source: str = ""


# --- the job-anomaly summary -------------------------------------------------------------


def kind_of(order: EventOrderRow) -> str:
    return KIND_ALIASES.get(order.kind, order.kind)


def ordered_kinds(kinds: Iterable[str]) -> list[str]:
    present = set(kinds)
    return [k for k in KINDS if k in present] + sorted(present - set(KINDS))


_PARENS = re.compile(r"\s*\([^()]*\)")
_NUMBER = re.compile(r"\d+")


def cause_of(order: EventOrderRow) -> str:
    """The order's cause: the first line of its last error (else its title), without the
    parenthesised parts (manifest and log locations), numbers as ``#``, at most 120 characters."""
    lines = [line for line in (order.error or "").strip().splitlines() if line.strip()]
    first = lines[0] if lines else order.title
    return _NUMBER.sub("#", " ".join(_PARENS.sub("", first).split()))[:120]


@dataclass(frozen=True)
class Durations:
    """Hours from opening to an event (acknowledgement, resolution), over the orders that had it."""

    count: int
    mean_h: float | None
    median_h: float | None
    p90_h: float | None
    max_h: float | None

    @classmethod
    def of(cls, hours: Sequence[float]) -> Durations:
        if not hours:
            return cls(0, None, None, None, None)
        ordered = sorted(hours)
        p90 = ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]  # nearest rank
        return cls(len(ordered), statistics.fmean(ordered), statistics.median(ordered), p90, ordered[-1])


@dataclass
class AnomalySummary:
    month: Month
    opened: list[EventOrderRow]
    kinds: list[str]
    by_kind: Counter[str]
    by_dag: dict[str, Counter[str]]
    by_item: dict[str, Counter[str]]
    by_department: dict[str, Counter[str]]
    by_day: dict[date, Counter[str]]
    occurrences: int
    to_acknowledge: Durations
    to_resolve: Durations
    top_causes: list[tuple[str, str, int, int]]  # (cause, kind, orders, occurrences)
    open_at_end: list[EventOrderRow]
    as_of: datetime  # the month's end, or now for the running month


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600


def anomaly_summary(month: Month, orders: Sequence[EventOrderRow], *, now: datetime | None = None,
                    top: int = 10) -> AnomalySummary:  # fmt: skip
    """The job-anomaly figures: the orders opened in the month, grouped; times to acknowledge
    and resolve of those that were; the orders open at the month's end (at ``now`` for the
    running month): opened before it and not resolved before it."""
    as_of = min(month.end, now or datetime.now(UTC))
    opened = sorted((o for o in orders if o.started_at in month), key=lambda o: (o.started_at, o.number))
    by_dag: dict[str, Counter[str]] = defaultdict(Counter)
    by_item: dict[str, Counter[str]] = defaultdict(Counter)
    by_department: dict[str, Counter[str]] = defaultdict(Counter)
    by_day: dict[date, Counter[str]] = defaultdict(Counter)
    causes: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    tz = month.start.tzinfo
    for o in opened:
        k = kind_of(o)
        by_dag[o.dag_id or NONE][k] += 1
        by_item[o.service_item or NONE][k] += 1
        by_department[o.department or NONE][k] += 1
        by_day[o.started_at.astimezone(tz).date()][k] += 1
        tally = causes[(cause_of(o), k)]
        tally[0] += 1
        tally[1] += o.occurrences
    ranked = sorted(causes.items(), key=lambda c: (-c[1][0], -c[1][1], c[0]))[:top]
    open_at_end = sorted(
        (o for o in orders if o.started_at < as_of and (o.resolved_at is None or o.resolved_at >= as_of)),
        key=lambda o: (o.started_at, o.number),
    )
    by_kind = Counter(kind_of(o) for o in opened)
    return AnomalySummary(
        month=month, opened=opened, kinds=ordered_kinds(by_kind), by_kind=by_kind,
        by_dag=dict(sorted(by_dag.items())), by_item=dict(sorted(by_item.items())),
        by_department=dict(sorted(by_department.items())), by_day=dict(sorted(by_day.items())),
        occurrences=sum(o.occurrences for o in opened),
        to_acknowledge=Durations.of([_hours(o.started_at, o.acknowledged_at) for o in opened if o.acknowledged_at]),
        to_resolve=Durations.of([_hours(o.started_at, o.resolved_at) for o in opened if o.resolved_at]),
        top_causes=[(cause, kind, n, occ) for (cause, kind), (n, occ) in ranked], open_at_end=open_at_end,
        as_of=as_of,
    )  # fmt: skip


# --- the monthly summary -----------------------------------------------------------------


@dataclass
class JobVolume:
    at_start: int  # jobs in the deployment (not removed) when the month began
    at_end: int
    changes: Counter[str]  # change record rows of the month by change
    daily: dict[date, int]  # jobs in the deployment at the end of each day
    by_item: Counter[str]  # jobs at the month's end, by service item (registered now)
    by_department: Counter[str]
    listed: list[ChangeRow]  # the month's changes


def _deployed(changes: Sequence[ChangeRow], before: datetime) -> set[str]:
    present: set[str] = set()
    for c in changes:
        if c.observed_at >= before:
            break
        if c.change in ("new", "re_added"):
            present.add(c.dag_id)
        elif c.change == "removed":
            present.discard(c.dag_id)
    return present


def job_volume(month: Month, jobs: Sequence[JobRow], changes: Sequence[ChangeRow]) -> JobVolume:
    """Replays the change record: a job is deployed from its ``new`` or ``re_added`` row until
    a ``removed`` row."""
    ordered = sorted(changes, key=lambda c: c.observed_at)
    at_end = _deployed(ordered, month.end)
    daily = {}
    for day in month.days():
        moment = datetime(day.year, day.month, day.day, tzinfo=month.start.tzinfo) + timedelta(days=1)
        daily[day] = len(_deployed(ordered, moment))
    listed = [c for c in ordered if c.observed_at in month]
    attributes = {j.dag_id: j for j in jobs}
    return JobVolume(
        at_start=len(_deployed(ordered, month.start)), at_end=len(at_end),
        changes=Counter(c.change for c in listed), daily=daily,
        by_item=Counter((attributes[d].service_item if d in attributes else None) or NONE for d in at_end),
        by_department=Counter((attributes[d].department if d in attributes else None) or NONE for d in at_end),
        listed=listed,
    )  # fmt: skip


@dataclass
class RunFigures:
    dag_id: str
    runs: int = 0
    success: int = 0
    failed: int = 0
    other: int = 0  # queued or running
    scheduled: int = 0
    durations: list[float] = field(default_factory=list)  # seconds of the successful runs

    @property
    def success_rate(self) -> float | None:
        """Successful runs of the finished ones (success + failed)."""
        finished = self.success + self.failed
        return self.success / finished if finished else None

    @property
    def mean_duration_s(self) -> float | None:
        return statistics.fmean(self.durations) if self.durations else None


def run_figures(month: Month, runs: Sequence[DagRunRow]) -> tuple[RunFigures, list[RunFigures]]:
    """The month's DAG runs (``run_after`` in the month), in all and per DAG."""
    total = RunFigures("*")
    per: dict[str, RunFigures] = {}
    for r in runs:
        if r.run_after not in month:
            continue
        for f in (total, per.setdefault(r.dag_id, RunFigures(r.dag_id))):
            f.runs += 1
            f.scheduled += r.run_type == "scheduled"
            if r.state == "success":
                f.success += 1
                if r.duration_s is not None:
                    f.durations.append(r.duration_s)
            elif r.state == "failed":
                f.failed += 1
            else:
                f.other += 1
    return total, [per[d] for d in sorted(per)]


@dataclass
class Quality:
    """Scheduling quality per dimension, from what the services record."""

    reconciliation: Reconciliation
    extraction_rate: dict[str, float | None]  # share of the records read not rejected for the dimension
    check_runs: int
    check_status: Counter[str]
    rows_checked: int
    check_score: dict[str, float | None]  # rows-checked-weighted mean of the runs' dimension scores
    overall_score: float | None  # rows-checked-weighted mean of the runs' scores
    reconciliation_orders: int  # event orders of kind reconciliation opened in the month


def quality(rec: Reconciliation, checks: Sequence[QualityRun], reconciliation_orders: int) -> Quality:
    def weighted(pairs: list[tuple[float, int]]) -> float | None:
        weight = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / weight if weight else None

    return Quality(
        reconciliation=rec,
        extraction_rate={d: (1 - rec.rejected_by_dimension.get(d, 0) / rec.read) if rec.read else None
                         for d in DIMENSIONS},
        check_runs=len(checks), check_status=Counter(c.status for c in checks),
        rows_checked=sum(c.rows_checked for c in checks),
        check_score={d: weighted([(c.dimension_scores[d], c.rows_checked) for c in checks
                                  if c.dimension_scores.get(d) is not None]) for d in DIMENSIONS},
        overall_score=weighted([(c.score, c.rows_checked) for c in checks]),
        reconciliation_orders=reconciliation_orders,
    )  # fmt: skip


@dataclass
class MonthlySummary:
    month: Month
    jobs: JobVolume
    runs_total: RunFigures | None  # None: DAG runs not available
    runs: list[RunFigures]
    runs_source: str
    failed_attempts: list[FailedAttempts]
    usage: list[UsageRow]
    usage_by_item: list[tuple[str, str, int, int, int, int]]  # (item, unit, quantity, records, events, runs)
    records_moved: int  # Σ records of the month's usage events
    new_jobs_metered: int  # Σ quantity of item 05 (units 个)
    quality: Quality


def monthly_summary(rows: MonthRows) -> MonthlySummary:
    m = rows.month
    total, per_dag = run_figures(m, rows.runs) if rows.runs is not None else (None, [])
    by_item: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for u in rows.usage:
        t = by_item[(u.service_item, u.unit)]
        t[0] += u.quantity
        t[1] += u.records
        t[2] += u.events
        t[3] += u.runs  # a run metering two items counts under each
    reconciliation_orders = sum(1 for o in rows.orders if o.started_at in m and kind_of(o) == "reconciliation")
    return MonthlySummary(
        month=m, jobs=job_volume(m, rows.jobs, rows.changes), runs_total=total, runs=per_dag,
        runs_source=rows.runs_source, failed_attempts=sorted(rows.failed_attempts, key=lambda f: f.dag_id),
        usage=rows.usage, usage_by_item=[(i, u, *v) for (i, u), v in sorted(by_item.items())],  # type: ignore[misc]
        records_moved=sum(u.records for u in rows.usage),
        new_jobs_metered=sum(u.quantity for u in rows.usage if u.service_item == "05"),
        quality=quality(rows.reconciliation, rows.quality_runs, reconciliation_orders),
    )  # fmt: skip


# --- reading the rows ----------------------------------------------------------------------


def read_orders(conn: Connection, month: Month) -> list[EventOrderRow]:
    """The orders opened in the month and those opened before and still open at its start."""
    result = conn.execute(
        text(
            """SELECT e.id, e.kind, e.state, e.urgency, e.title, e.dag_id, e.task_id,
                      coalesce(e.service_item_code, j.service_item_code) AS item, j.department,
                      coalesce(e.started_at, e.created_at) AS started_at, e.acknowledged_at, e.resolved_at,
                      e.occurrences, coalesce(e.last_error, e.description, '') AS error
                 FROM govops.event_order e LEFT JOIN govops.scheduled_job j ON j.dag_id = e.dag_id
                WHERE coalesce(e.started_at, e.created_at) < :end
                  AND (coalesce(e.started_at, e.created_at) >= :start OR e.resolved_at IS NULL
                       OR e.resolved_at >= :start)"""
        ),
        {"start": month.start, "end": month.end},
    )
    return [EventOrderRow(*r) for r in result]


def read_registry(conn: Connection, month: Month) -> tuple[list[JobRow], list[ChangeRow]]:
    jobs = [JobRow(*r) for r in conn.execute(
        text("SELECT dag_id, service_item_code, department FROM govops.scheduled_job ORDER BY dag_id"))]  # fmt: skip
    changes = [ChangeRow(*r) for r in conn.execute(
        text("""SELECT dag_id, change, old_value, new_value, observed_at FROM govops.scheduled_job_change
                 WHERE observed_at < :end ORDER BY observed_at, id"""), {"end": month.end})]  # fmt: skip
    return jobs, changes


def read_usage(conn: Connection, month: Month) -> list[UsageRow]:
    """The usage events of the month's period (the ledger cuts periods in the contract time zone)."""
    return [UsageRow(*r) for r in conn.execute(
        text("""SELECT service_item_code, unit, department, dag_id, sum(quantity)::bigint,
                       coalesce(sum(records), 0)::bigint, count(*), count(DISTINCT run_id)
                  FROM govops.usage_event WHERE period = :p
                 GROUP BY service_item_code, unit, department, dag_id
                 ORDER BY service_item_code, unit, department NULLS FIRST, dag_id"""), {"p": month.first})]  # fmt: skip


def read_failed_attempts(conn: Connection, month: Month) -> list[FailedAttempts]:
    return [FailedAttempts(*r) for r in conn.execute(
        text("""SELECT dag_id, count(*), count(*) FILTER (WHERE final) FROM govops.task_failure
                 WHERE failed_at >= :start AND failed_at < :end GROUP BY dag_id ORDER BY dag_id"""),
        {"start": month.start, "end": month.end})]  # fmt: skip


def read_quality_runs(conn: Connection, month: Month) -> list[QualityRun]:
    return [QualityRun(r[0], r[1], int(r[2]), float(r[3]), {k: float(v) for k, v in (r[4] or {}).items()})
            for r in conn.execute(
        text("""SELECT dataset, status, rows_checked, score, dimension_scores FROM govops.quality_check_run
                 WHERE finished_at >= :start AND finished_at < :end ORDER BY finished_at, id"""),
        {"start": month.start, "end": month.end})]  # fmt: skip


def read_reconciliation(engine: Engine, month: Month) -> Reconciliation:
    """The extraction monthly summary's own figures (``govops.pipelines.report``): committed
    runs, and each reject reason's quality dimension as that summary classifies it."""
    from govops.ledger.usage import contract_timezone
    from govops.pipelines.report import dimension_of
    from govops.pipelines.report import monthly_summary as extraction_month

    sources = extraction_month(engine, month.first, str(contract_timezone()))
    rejected: Counter[str] = Counter()
    for s in sources:
        for reason, n in s.reasons.items():
            rejected[dimension_of(reason)] += n
    return Reconciliation(
        runs=sum(s.runs for s in sources), read=sum(s.read for s in sources),
        written=sum(s.written for s in sources), rejected=sum(s.rejected for s in sources),
        rejected_by_dimension=dict(rejected),
    )  # fmt: skip


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def fetch_runs(source: RestApiSource, month: Month) -> list[DagRunRow]:
    """Every DAG's runs due in the month (``run_after``), through the REST API v2."""
    pages = source._pages("/dags/~/dagRuns", "dag_runs", run_after_gte=month.start.isoformat(),
                          run_after_lt=month.end.isoformat(), order_by="id")  # fmt: skip
    return [runs_row(r) for r in pages]


def runs_row(r: dict[str, Any]) -> DagRunRow:
    """One run of the REST API's ``dag_runs`` list."""
    return DagRunRow(r["dag_id"], r["dag_run_id"], r["run_type"], r["state"], datetime.fromisoformat(r["run_after"]),
                     _when(r.get("start_date")), _when(r.get("end_date")))  # fmt: skip


def runs_from_api(month: Month) -> tuple[list[DagRunRow] | None, str]:
    """The month's DAG runs from the api-server of the connection ``govops_airflow_api``, and
    where they came from; (None, why) without that connection."""
    from govops import settings
    from govops.ops.sources import API_CONN_ID, RestApiSource

    if not settings._airflow_connection_uri(API_CONN_ID):
        return None, f"no Airflow connection {API_CONN_ID}"
    source = RestApiSource.from_connection()
    return fetch_runs(source, month), f"REST API v2 {source.base_url}"


def read_month(engine: Engine, month: Month, runs: list[DagRunRow] | None, runs_source: str = "") -> MonthRows:
    with engine.connect() as conn:
        orders = read_orders(conn, month)
        jobs, changes = read_registry(conn, month)
        usage = read_usage(conn, month)
        failed = read_failed_attempts(conn, month)
        checks = read_quality_runs(conn, month)
    return MonthRows(month=month, orders=orders, jobs=jobs, changes=changes, runs=runs, usage=usage,
                     failed_attempts=failed, quality_runs=checks, reconciliation=read_reconciliation(engine, month),
                     runs_source=runs_source)  # fmt: skip
