"""``govops`` command line: ``python -m govops.cli demo`` (what ``./dev demo`` runs): the
bundled sample data into the front-end database and the landing area, every pipeline of
``include/pipelines/`` once, spatial verification, the quality and security services over
what was loaded, and the settlement of the demo's month, with what each step read, loaded,
rejected, metered and billed.

The demo meters against work orders of its own, one per DAG and logical date (the DAG's
default order with the date appended, ``WO-DEMO-0001-20261206``), under one service order
per date (``SO-DEMO-20261206``). It accepts them at the end and settles the month they fall
in, so the dev fixtures (``WO-DEMO-0001``…, which ``airflow dags test`` and the UI use) stay
runnable, and a date whose orders are accepted is never run again (an accepted work order
refuses runs): the demo shows that date's settlement instead."""

from __future__ import annotations

import argparse
import calendar
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from govops import settings

# The demo's acceptance and assessment: both parties agree, the delivery scores 95 (quality
# coefficient 1.00), and the month's assessment (overall 90 x 0.55 + 85 x 0.45 = 87.75)
# falls in the 5 % deduction band, so the statement shows every step of R4-R8.
QUALITY_SCORE = Decimal(95)
ASSESSMENT = (Decimal(90), Decimal(85))
OPERATOR_OPINION = "演示运行已完成，按期交付"
PURCHASER_OPINION = "同意验收"
DEMO_PERIOD_PREFIX = "DEMO-"
EXPORTS = ("csv", "json", "xlsx")


def usage_of_run(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    """
                    SELECT work_order_id, service_item_code, unit, period,
                           count(*) AS events, sum(quantity) AS quantity, sum(records) AS records
                      FROM govops.usage_event
                     WHERE dag_id = :dag_id AND run_id = :run_id
                     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
                    """
                ),
                {"dag_id": dag_id, "run_id": run_id},
            ).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def _print_usage(dag_id: str, run_id: str) -> None:
    for u in usage_of_run(dag_id, run_id):
        print(f"      usage: work order {u['work_order_id']} item {u['service_item_code']} period "
              f"{u['period']:%Y-%m}: {u['quantity']} {u['unit']}(s), {u['records']} records")  # fmt: skip


class DemoDay:
    """The demo's work orders of one logical date, created (approved) when first used, and
    its DAG runs. ``logs``: a folder for the runs' own output (Airflow's task logs and
    tracebacks, Spark's), so the demo prints only its summary; None shows it all."""

    def __init__(self, engine: Engine, day: date, fixtures: dict[str, tuple[str, Decimal, str | None]],
                 logs: Path | None = None) -> None:  # fmt: skip
        self.engine, self.day, self.logs = engine, day, logs
        self.fixtures = fixtures  # the fixture order -> its item, difficulty, unit
        self.service_order = service_order_of(day)
        self.logical_date = datetime.combine(day, datetime.min.time(), UTC)

    def run(self, dag_id: str, conf: dict[str, Any]) -> Any:  # -> DagRunResult
        from govops.dag_runs import run_dag

        if self.logs is None:
            return run_dag(dag_id, conf=conf, logical_date=self.logical_date)
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{dag_id}.log"
        with _output_to(log):
            result = run_dag(dag_id, conf=conf, logical_date=self.logical_date)
        if not log.stat().st_size:
            log.unlink()
        return result

    def failures(self, result: Any) -> list[str]:
        """Each failed task of the run in one line: its error as govops.task_failure recorded
        it (the traceback stays in the run's log)."""
        lines = []
        with self.engine.connect() as conn:
            for task, state in result.task_states.items():
                if state != "failed":
                    continue
                key = {"d": result.dag_id, "r": result.run_id, "t": task.split("[")[0]}
                error = conn.execute(text("""SELECT error FROM govops.task_failure WHERE dag_id = :d AND run_id = :r
                                             AND task_id = :t ORDER BY id DESC LIMIT 1"""), key).scalar()
                reason = (error or "no error recorded").strip().splitlines()[0]
                where = f" (log: {self.logs / result.dag_id}.log)" if self.logs else ""
                lines.append(f"task {task} failed: {reason}{where}")
        return lines

    def order(self, fixture: str) -> str:
        """The date's own copy of the fixture work order ``fixture``."""
        from govops.service_items import SERVICE_ITEMS
        from govops.settlement import workorders as wo
        from govops.settlement.catalog import load_catalog

        order_id = f"{fixture}-{self.day:%Y%m%d}"
        item, difficulty, unit = self.fixtures[fixture]
        with self.engine.begin() as conn:
            if not conn.execute(text("SELECT 1 FROM govops.service_order WHERE id = :id"),
                                {"id": self.service_order}).first():  # fmt: skip
                wo.create_service_order(conn, wo.ServiceOrder(
                    id=self.service_order, name=f"演示 {self.day}：数据治理与安全服务", category="数据治理",
                    requesting_department="区大数据中心", start_date=self.day, end_date=self.day,
                    objectives="样例数据的抽取、核实、质检、安全服务与结算演示"))  # fmt: skip
                wo.set_service_order_state(conn, self.service_order, "approved")
            if not conn.execute(text("SELECT 1 FROM govops.work_order WHERE id = :id"), {"id": order_id}).first():
                name_unit = unit or SERVICE_ITEMS[item].units[0]
                wo.create_work_order(conn, wo.WorkOrder(
                    id=order_id, service_order_id=self.service_order, service_item_code=item, order_date=self.day,
                    unit=unit, difficulty=difficulty, deliverables=[{"name": "演示交付", "unit": name_unit}]),
                    load_catalog())  # fmt: skip
                wo.set_work_order_state(conn, order_id, "approved")
        return order_id


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's and its children's stdout and stderr (file descriptors 1 and 2:
    Airflow's structured task logs bypass the logging level) to ``path`` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("ab") as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def service_order_of(day: date) -> str:
    return f"SO-DEMO-{day:%Y%m%d}"


def demo_fixtures(specs: list[Any]) -> dict[str, tuple[str, Decimal, str | None]]:
    """The dev fixtures' work orders (the DAGs' defaults): item, difficulty, unit."""
    from govops.pipelines.spec import demo_work_orders
    from govops.runtime.bootstrap import SERVICE_DEMO_WORK_ORDERS

    found: dict[str, tuple[str, Decimal, str | None]] = {o: (i, d, None) for o, i, d in demo_work_orders(specs)}
    found.update({o.work_order_id: (o.item, o.difficulty, o.unit) for o in SERVICE_DEMO_WORK_ORDERS})
    return found


def demo(args: argparse.Namespace) -> int:
    if not args.verbose:  # Airflow reads this when it is imported, below
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    from govops.pipelines.spec import load_spec, spec_files
    from govops.sample_data import SampleConfig, generate, load_sample
    from govops.settlement.store import SettlementError

    started = time.monotonic()
    day = args.logical_date
    specs = [load_spec(p) for p in spec_files()]
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        if _accepted(engine, day):
            print(f"The demo's work orders of {day} ({service_order_of(day)}) are accepted, and accepted work "
                  "orders take no runs: nothing is re-run. The settlement of their month:")  # fmt: skip
            return _settlement_step(engine, day, "")
        try:
            refuse_closed(engine, day)
        except SettlementError as exc:
            print(exc, file=sys.stderr)
            return 2
        logs = None if args.verbose else settings.home() / "demo-logs" / day.isoformat()
        today = DemoDay(engine, day, demo_fixtures(specs), logs)
        if args.pipeline:
            specs = [s for s in specs if s.pipeline in args.pipeline]

        print(f"1/7 sample data (seed {args.seed}, {args.persons} persons) -> front-end database (前置库) and "
              "landing")  # fmt: skip
        report = load_sample(settings.connection_url(settings.SOURCE_CONN_ID), seed=args.seed,
                             persons=args.persons)  # fmt: skip
        for table, rows in report.items():
            print(f"    {table}: {rows} rows")
        landing = settings.landing_root()
        if landing.startswith("file://"):
            generate(SampleConfig(seed=args.seed, persons=args.persons), Path(landing.removeprefix("file://")))
            print(f"    files: {landing}")

        print(f"2/7 running {len(specs)} pipeline DAG(s) from include/pipelines/ (logical date {day}, "
              f"service order {today.service_order})")  # fmt: skip
        failed = [f for spec in specs if (f := _pipeline(today, spec))]
        if args.pipeline:
            print("    (a part of the demo: spatial verification, the services and settlement run without --pipeline)")
        else:
            failed += _spatial_service(today)
            failed += _quality_services(today)
            failed += _security_services(today)
        print("6/7 settlement")
        if args.pipeline or failed:
            why = "a part of the demo (--pipeline)" if args.pipeline else f"{len(failed)} DAG run(s) failed"
            print(f"    not settled: {why}; the date's work orders stay open, and re-running the same date "
                  "runs them again (nothing is metered twice)")  # fmt: skip
            code = 0
        else:
            code = _settlement_step(engine, day, "    ")
        print("7/7 outputs")
        print(f"    lake:      {settings.lake_root()}/raw/ (rejects/ keeps every rejected record with its reason)")
        print(f"    manifests: {settings.lake_root()}/_manifests/")
        print(f"    ledger:    govops.usage_event, govops.extraction_run, govops.data_catalog, "
              f"govops.settlement_statement in {_redacted_ledger_url()}")  # fmt: skip
        print("    reports:   ./dev python -m govops.pipelines summary --month YYYY-MM --out summary.html;")
        print(f"               quality, spatial and security reports and GX data docs under "
              f"{settings.lake_root()}/reports/")  # fmt: skip
        minutes, seconds = divmod(round(time.monotonic() - started), 60)
        print(f"    time:      {minutes} min {seconds:02d} s")
        for dag_id, run_id, states in failed:
            print(f"DAG run {dag_id} {run_id} failed: {states}", file=sys.stderr)
        return 1 if failed else code
    finally:
        engine.dispose()


def _pipeline(today: DemoDay, spec: Any) -> tuple[str, str, dict] | None:
    """One pipeline's run against the date's work order: its refresh order (保鲜) when the run
    refreshes a dataset that an earlier run onboarded, as the DAG itself decides."""
    from govops.dag_runs import manual_run_id
    from govops.pipelines.factory import collection_kind

    fixture = spec.work_order
    if spec.refresh_work_order:
        with today.engine.connect() as conn:
            if collection_kind(conn, spec, manual_run_id(today.logical_date)) == "refresh":
                fixture = spec.refresh_work_order
    dag_id = f"pipeline_{spec.pipeline}"
    result = today.run(dag_id, {"work_order_id": today.order(fixture)})
    counts = _run_log(spec.pipeline, result.run_id)
    print(f"    {dag_id}: {result.state}" + (f", read {counts[0]:,} = loaded {counts[1]:,} + rejected "
                                              f"{counts[2]:,}" if counts else ""))  # fmt: skip
    if result.state != "success":
        _print_failures(today, result)
        return dag_id, result.run_id, result.task_states
    _print_usage(result.dag_id, result.run_id)
    return None


def _print_failures(today: DemoDay, result: Any, indent: str = "      ") -> None:
    for line in today.failures(result):
        print(f"{indent}{line}")


def _service_conf(today: DemoDay, dag_id: str, **conf: Any) -> dict[str, Any]:
    from govops.runtime.bootstrap import SERVICE_DEMO_WORK_ORDERS

    [fixture] = [o.work_order_id for o in SERVICE_DEMO_WORK_ORDERS if o.dag_id == dag_id]
    return {**conf, "work_order_id": today.order(fixture)}


def _spatial_service(today: DemoDay) -> list[tuple[str, str, dict]]:
    """Spatial verification (item 10) of the addresses the frontdb_addresses pipeline loaded;
    its outcomes as the job's manifest counts them (whatever outcomes the job knows)."""
    from govops.spark import manifest as manifests

    print("3/7 spatial verification (item 10)")
    result = today.run("spatial_verification", _service_conf(today, "spatial_verification"))
    if result.state != "success":
        print(f"    spatial_verification: {result.state}")
        _print_failures(today, result)
        return [("spatial_verification", result.run_id, result.task_states)]
    lake = settings.lake_root()
    manifest = manifests.read(manifests.manifest_uri(lake, "spatial_verification", result.run_id, "verify", -1))
    out = manifest["outputs"][0]
    outcomes = ", ".join(f"{n:,} {outcome}" for outcome, n in out["outcomes"].items())
    crs = out.get("batch_system") if out.get("crs_checked") else (out.get("crs_note") or "not checked")
    print(f"    spatial_verification {manifest['inputs'][0]['uri'].removeprefix(lake + '/')}: {out['rows']:,} "
          f"records: {outcomes}; coordinate system: {crs}")  # fmt: skip
    print(f"      report and field task list: {lake}/reports/spatial/{out['dataset']}/")
    _print_usage(result.dag_id, result.run_id)
    return []


def _quality_services(today: DemoDay) -> list[tuple[str, str, dict]]:
    """The quality DAGs over what the pipelines loaded: the persons suite (item 07), the
    sample files of the sharing zone (09) and the data catalog (11)."""
    from govops.runtime.bootstrap import sample_file_zone

    engine = today.engine
    sample_file_zone(settings.connection_url(settings.LEDGER_CONN_ID))
    print("4/7 quality services (items 07, 09, 11)")
    failed = []
    conf = _service_conf(today, "quality_check", suite="public_security_persons.ingestion")
    check = today.run("quality_check", conf)
    with engine.connect() as conn:
        row = conn.execute(text("""SELECT rows_checked, anomaly_rows, score, status, report_uri FROM
                                   govops.quality_check_run WHERE dag_id = 'quality_check' AND run_id = :r"""),
                           {"r": check.run_id}).first()  # fmt: skip
    if row is None:
        print(f"    quality_check: {check.state}")
        _print_failures(today, check)
        failed.append(("quality_check", check.run_id, check.task_states))
    else:
        held = " (held back from the clean zone)" if row.status == "fail" else ""
        print(f"    quality_check public_security_persons.ingestion: {row.rows_checked:,} rows, "
              f"{row.anomaly_rows:,} with anomalies, score {row.score}, {row.status}{held}")
        for line in today.failures(check):  # the gate's expected failure, in one line
            print(f"      {line.replace(f'; see {row.report_uri}', '')}")
        print(f"      report: {row.report_uri}")
        _print_usage(check.dag_id, check.run_id)
    for dag_id, table, what in (("quality_file_check", "quality_file_check", "status"),
                                ("catalog_quality_check", "catalog_quality_issue", "problem")):  # fmt: skip
        result = today.run(dag_id, _service_conf(today, dag_id))
        if result.state != "success":
            print(f"    {dag_id}: {result.state}")
            _print_failures(today, result)
            failed.append((dag_id, result.run_id, result.task_states))
            continue
        with engine.connect() as conn:
            counts = conn.execute(text(f"SELECT {what}, count(*) FROM govops.{table} WHERE run_id = :r "
                                       "GROUP BY 1 ORDER BY 2 DESC"), {"r": result.run_id}).all()  # fmt: skip
        print(f"    {dag_id}: " + (", ".join(f"{n} {k}" for k, n in counts) or f"no {what}s"))
        _print_usage(dag_id, result.run_id)
    return failed


def _security_services(today: DemoDay) -> list[tuple[str, str, dict]]:
    """The security DAGs over what the pipelines loaded: label the persons (item 06), publish
    their masked copy to the sharing zone (20), assess the lake (19), and archive the sample
    service events older than their retention (21)."""
    from govops.security.archive_sample import DEMO_DATASET, write_sample_events
    from govops.security.assessment import ensure_sample_grants

    print("5/7 security services (items 06, 20, 19, 21)")
    engine = today.engine
    lake = settings.lake_root()
    if lake.startswith("file://") and not Path(lake.removeprefix("file://"), DEMO_DATASET).exists():
        write_sample_events(lake)
    ensure_sample_grants(engine)
    failed = []
    steps = [
        ("security_labeling", {}, """SELECT format('%s: %s rows, %s columns labeled, %s sensitive', dataset,
                rows_labeled, columns_labeled, sensitive_columns) FROM govops.security_labeling_run
                WHERE run_id = :r"""),
        ("security_masking", {}, """SELECT format('%s -> %s: %s rows controlled', dataset, output_dataset,
                rows_controlled) FROM govops.security_masking_run WHERE run_id = :r"""),
        ("security_assessment", {}, """SELECT format('%s datasets, %s rows assessed, %s open findings; report %s',
                datasets, rows_assessed, findings_open, report_uri) FROM govops.security_assessment_run
                WHERE run_id = :r"""),
        ("security_archive", {"action": "archive", "as_of": today.day.isoformat()},
         """SELECT format('%s: %s partitions archived, %s rows', dataset, count(*), sum(rows))
              FROM govops.security_archive_operation WHERE run_id = :r AND kind = 'archive' GROUP BY dataset"""),
    ]  # fmt: skip
    for dag_id, conf, summary in steps:
        result = today.run(dag_id, _service_conf(today, dag_id, **conf))
        if result.state != "success":
            print(f"    {dag_id}: {result.state}")
            _print_failures(today, result)
            failed.append((dag_id, result.run_id, result.task_states))
            continue
        with engine.connect() as conn:
            line = conn.execute(text(summary), {"r": result.run_id}).scalar()
        print(f"    {dag_id}: {line or 'nothing to do'}")
        _print_usage(dag_id, result.run_id)
    return failed


# Settlement of the demo's month ------------------------------------------------------------


@dataclass(frozen=True)
class DemoSettlement:
    period: Any  # the settlement_period row
    accepted: int  # work orders accepted now (0 on a re-run)
    closed_before: list[str]  # earlier demo periods closed first
    statement: dict[str, Any]
    exports: list[Path]
    verified: Any  # store.Verification


def _accepted(engine: Engine, day: date) -> bool:
    with engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM govops.service_order WHERE id = :id"),
                             {"id": service_order_of(day)}).scalar()  # fmt: skip
    return state == "accepted"


def refuse_closed(engine: Engine, day: date) -> None:
    """A date on or before the end of a closed period cannot be billed in its period:
    refuse it before anything runs."""
    from govops.settlement.store import SettlementError

    with engine.connect() as conn:
        closed = conn.execute(text("""SELECT id, end_date FROM govops.settlement_period WHERE state = 'closed'
                                      AND end_date >= :d ORDER BY end_date DESC LIMIT 1"""), {"d": day}).first()
    if closed is not None:
        raise SettlementError(f"demo {day}: settlement period {closed.id} (to {closed.end_date}) is closed, so work "
                              f"of {day} could not be billed in it; choose a logical date after {closed.end_date}")


def demo_period(engine: Engine, day: date) -> Any:
    """The period containing ``day``: an existing one of any kind, else a new monthly period
    ``DEMO-YYYY-MM`` with the demo's assessment."""
    from govops.settlement import store

    with engine.begin() as conn:
        find = text("SELECT * FROM govops.settlement_period WHERE :d BETWEEN start_date AND end_date")
        period = conn.execute(find, {"d": day}).first()
        if period is None:
            period_id = f"{DEMO_PERIOD_PREFIX}{day:%Y-%m}"
            last = calendar.monthrange(day.year, day.month)[1]
            store.add_period(conn, period_id, "monthly", day.replace(day=1), day.replace(day=last))
            store.record_assessment(conn, period_id, *ASSESSMENT)
            period = conn.execute(find, {"d": day}).one()
    return period


def settle_demo_day(engine: Engine, day: date, out_root: Path) -> DemoSettlement:
    """Accept the date's service order and work orders (in_progress -> delivered ->
    accepted, both parties' opinions, quality score 95), close earlier open demo periods
    (periods settle in date order), settle the period containing the date, export the
    statement as CSV, JSON and XLSX under ``out_root/<period>/`` and verify it. A date
    already accepted is only settled again: the same inputs give the same statement."""
    from govops.settlement import store
    from govops.settlement import workorders as wo
    from govops.settlement.export import WRITERS

    period = demo_period(engine, day)
    so = service_order_of(day)
    accepted = 0
    with engine.begin() as conn:
        state = conn.execute(text("SELECT state FROM govops.service_order WHERE id = :id FOR UPDATE"),
                             {"id": so}).scalar()  # fmt: skip
        if state is None:
            raise store.SettlementError(f"demo {day}: no service order {so}: run the demo for {day} first")
        if state != "accepted":
            if period.state == "closed":
                raise store.PeriodClosed(f"period {period.id} is closed; {so} cannot be accepted into it")
            orders = conn.execute(text("SELECT id, state FROM govops.work_order WHERE service_order_id = :so "
                                       "ORDER BY id FOR UPDATE"), {"so": so}).all()  # fmt: skip
            for order in orders:
                path = {"approved": ["in_progress", "delivered"], "in_progress": ["delivered"],
                        "rework": ["delivered"], "delivered": []}.get(order.state)  # fmt: skip
                if path is None:
                    raise store.SettlementError(f"demo {day}: work order {order.id} is {order.state}; not accepted")
                for step in path:
                    wo.set_work_order_state(conn, order.id, step)
                wo.set_work_order_state(conn, order.id, "accepted", operator_opinion=OPERATOR_OPINION,
                                        purchaser_opinion=PURCHASER_OPINION)  # fmt: skip
            for step in {"approved": ["in_progress", "delivered"], "in_progress": ["delivered"]}.get(state, []):
                wo.set_service_order_state(conn, so, step)
            wo.accept_service_order(conn, so, quality_score=QUALITY_SCORE, accepted_on=day,
                                    operator_opinion=OPERATOR_OPINION, purchaser_opinion=PURCHASER_OPINION)  # fmt: skip
            accepted = len(orders)
    with engine.connect() as conn:
        earlier = conn.execute(text("""SELECT id FROM govops.settlement_period WHERE state = 'open'
                                       AND start_date < :s AND id LIKE :prefix ORDER BY start_date"""),
                               {"s": period.start_date, "prefix": f"{DEMO_PERIOD_PREFIX}%"},
                               ).scalars().all()  # fmt: skip
    for period_id in earlier:
        store.close(engine, period_id)
    statement = store.settle(engine, period.id)
    folder = out_root / period.id
    folder.mkdir(parents=True, exist_ok=True)
    exports = [WRITERS[kind](statement, folder / f"statement.{kind}") for kind in EXPORTS]
    return DemoSettlement(period, accepted, list(earlier), statement, exports, store.verify(engine, period.id))


def _settlement_step(engine: Engine, day: date, indent: str) -> int:
    from sqlalchemy.exc import DBAPIError

    from govops.settlement.store import SettlementError

    try:
        done = settle_demo_day(engine, day, settings.home() / "statements")
    except (SettlementError, DBAPIError) as exc:  # a refusal: one line, no traceback
        reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()[0]
        print(f"{indent}not settled: {reason}", file=sys.stderr)
        return 1
    p, s = done.period, done.statement
    for period_id in done.closed_before:
        print(f"{indent}closed {period_id}, an earlier demo month: its statement is final (periods settle in order)")
    if done.accepted:
        print(f"{indent}accepted {service_order_of(day)} and its {done.accepted} work orders (in_progress -> "
              f"delivered -> accepted; quality score {QUALITY_SCORE}; both parties' opinions)")  # fmt: skip
    assessment = s["assessment"]
    print(f"{indent}period {p.id} ({p.kind}, {p.start_date} to {p.end_date}): assessment service quality "
          f"{assessment['service_quality']}, satisfaction {assessment['satisfaction']} -> overall "
          f"{Decimal(assessment['overall']).normalize():f}, deduction rate {assessment['deduction_rate']}")  # fmt: skip
    lines = [x for x in s["lines"] if x["kind"] == "service_order"]
    work_orders = sum(len(x["work_orders"]) for x in lines)
    print(f"{indent}statement ({s['state']}): {len(lines)} service order(s), {work_orders} work orders, "
          f"{len(s['lines']) - len(lines)} other line(s)")  # fmt: skip
    for line in lines:
        if line["service_order_id"] != service_order_of(day):
            print(f"{indent}  {line['service_order_id']}: {Decimal(line['amount']):,}")
            continue
        for w in line["work_orders"]:  # the date's own orders, one line each
            amount = Decimal(w["amount"])
            print(f"{indent}  {w['work_order_id']} item {w['service_item_code']}: {w['raw_quantity']:,} "
                  f"{w['unit']}(s) = {w['billing_quantity']} {w['billing_unit']} -> {amount:,}")  # fmt: skip
        print(f"{indent}  {line['service_order_id']}: x coefficient {line['coefficient']} = "
              f"{Decimal(line['amount']):,}")  # fmt: skip
    for u in s["unassigned"]:
        print(f"{indent}  not billed: {u['quantity']:,} {u['unit']}(s) of item {u['service_item_code']} "
              "metered without a work order (govops.unassigned_usage_v1)")  # fmt: skip
    t = {k: Decimal(v) for k, v in s["totals"].items()}
    print(f"{indent}totals: gross {t['gross']:,}  retained {t['retained']:,}  deduction {t['deduction']:,}  "
          f"penalties {t['penalties']:,}  net {t['net']:,}")  # fmt: skip
    print(f"{indent}        prepayment offset {t['prepayment_offset']:,} (remaining {t['prepayment_remaining']:,})  "
          f"payable {t['payable']:,}  shortfall carried {t['shortfall_out']:,}")  # fmt: skip
    folder = done.exports[0].parent
    print(f"{indent}exports: {folder}/statement.{{{','.join(EXPORTS)}}}")
    v = done.verified
    print(f"{indent}verify {p.id}: {'OK' if v.ok else 'FAILED'} (hash {v.stored_hash[:12]}… recomputed from the "
          f"stored inputs; every quantity re-summed from the ledger)")  # fmt: skip
    for line in v.ledger_mismatches:
        print(f"{indent}  mismatch: {line}", file=sys.stderr)
    return 0 if v.ok else 1


def _run_log(pipeline: str, run_id: str) -> tuple[int, int, int] | None:
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT read, written, rejected FROM govops.extraction_run WHERE pipeline = :p AND run_id = :r"),
                {"p": pipeline, "r": run_id},
            ).first()
    finally:
        engine.dispose()
    return tuple(row) if row else None


def _redacted_ledger_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.connection_url(settings.LEDGER_CONN_ID)).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govops")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the whole mission on the sample data: pipelines, spatial verification, "
                       "quality and security services, metered and settled")  # fmt: skip
    p.add_argument("--pipeline", action="append", help="run only this pipeline (repeatable); default all")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--persons", type=int, default=500)
    p.add_argument("--logical-date", type=date.fromisoformat, default=datetime.now(UTC).date(),
                   help="YYYY-MM-DD (default today, UTC): the DAG runs' logical date and the demo's work orders")
    p.add_argument("--verbose", action="store_true", help="show Airflow's and Spark's logs")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
