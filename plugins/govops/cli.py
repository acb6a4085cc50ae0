"""``govops`` command line: ``python -m govops.cli demo`` (what ``./dev demo`` runs): the
bundled sample data into the front-end database and the landing area, then every pipeline
of ``include/pipelines/`` once, with what each read, loaded, rejected and metered."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from govops import settings


def usage_of_run(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, text

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


def demo(args: argparse.Namespace) -> int:
    if not args.verbose:  # Airflow reads this when it is imported, below
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    from govops.dag_runs import run_dag
    from govops.pipelines.spec import load_spec, spec_files
    from govops.sample_data import SampleConfig, generate, load_sample

    print(f"1/5 sample data (seed {args.seed}, {args.persons} persons) -> front-end database (前置库) and landing")
    report = load_sample(settings.connection_url(settings.SOURCE_CONN_ID), seed=args.seed, persons=args.persons)
    for table, rows in report.items():
        print(f"    {table}: {rows} rows")
    landing = settings.landing_root()
    if landing.startswith("file://"):
        generate(SampleConfig(seed=args.seed, persons=args.persons), Path(landing.removeprefix("file://")))
        print(f"    files: {landing}")

    logical_date = datetime.fromisoformat(args.logical_date).replace(tzinfo=UTC)
    specs = [load_spec(p) for p in spec_files()]
    if args.pipeline:
        specs = [s for s in specs if s.pipeline in args.pipeline]
    _ensure_work_orders(specs, logical_date)
    print(f"2/5 running {len(specs)} pipeline DAG(s) from include/pipelines/ (logical date {logical_date:%Y-%m-%d})")
    failed = []
    for spec in specs:
        dag_id = f"pipeline_{spec.pipeline}"
        result = run_dag(dag_id, logical_date=logical_date)
        counts = _run_log(spec.pipeline, result.run_id)
        print(f"    {dag_id}: {result.state}" + (f", read {counts[0]:,} = loaded {counts[1]:,} + rejected "
                                                  f"{counts[2]:,}" if counts else ""))  # fmt: skip
        if result.state != "success":
            failed.append((dag_id, result.run_id, result.task_states))
            continue
        for row in usage_of_run(result.dag_id, result.run_id):
            print(
                f"      usage: work order {row['work_order_id']} item {row['service_item_code']} period "
                f"{row['period']:%Y-%m}: {row['quantity']} {row['unit']}(s), {row['records']} records"
            )
    if not args.pipeline:
        failed += _quality_services(logical_date)
        failed += _security_services(logical_date)
    print("5/5 outputs")
    print(f"    lake:      {settings.lake_root()}/raw/ (rejects/ keeps every rejected record with its reason)")
    print(f"    manifests: {settings.lake_root()}/_manifests/")
    print(f"    ledger:    govops.usage_event, govops.extraction_run, govops.data_catalog in {_redacted_ledger_url()}")
    print("    reports:   ./dev python -m govops.pipelines summary --month YYYY-MM --out summary.html;")
    print(f"               quality reports and GX data docs, security reports under {settings.lake_root()}/reports/")
    for dag_id, run_id, states in failed:
        print(f"DAG run {dag_id} {run_id} failed: {states}", file=sys.stderr)
    print("Re-running with the same logical date re-runs these runs and meters nothing twice.")
    return 1 if failed else 0


def _quality_services(logical_date: datetime) -> list[tuple[str, str, dict]]:
    """The quality DAGs over what the pipelines loaded: the persons suite (item 07), the
    sample files of the sharing zone (09) and the data catalog (11)."""
    from sqlalchemy import create_engine, text

    from govops.dag_runs import run_dag
    from govops.runtime.bootstrap import SERVICE_DEMO_WORK_ORDERS, sample_file_zone
    from govops.settlement.workorders import ensure_demo_work_order

    url = settings.connection_url(settings.LEDGER_CONN_ID)
    engine = create_engine(url)
    for order, item, difficulty, unit in SERVICE_DEMO_WORK_ORDERS:
        ensure_demo_work_order(engine, order, item, on=logical_date.date(), difficulty=difficulty, unit=unit)
    sample_file_zone(url)
    print("3/5 quality services (items 07, 09, 11)")
    failed = []
    check = run_dag("quality_check", conf={"suite": "public_security_persons.ingestion"}, logical_date=logical_date)
    with engine.connect() as conn:
        row = conn.execute(text("""SELECT rows_checked, anomaly_rows, score, status, report_uri FROM
                                   govops.quality_check_run WHERE dag_id = 'quality_check' AND run_id = :r"""),
                           {"r": check.run_id}).first()  # fmt: skip
    if row is None:
        failed.append(("quality_check", check.run_id, check.task_states))
    else:
        held = " (held back from the clean zone)" if row.status == "fail" else ""
        print(f"    quality_check public_security_persons.ingestion: {row.rows_checked:,} rows, "
              f"{row.anomaly_rows:,} with anomalies, score {row.score}, {row.status}{held}")
        print(f"      report: {row.report_uri}")
    for dag_id, table, what in (("quality_file_check", "quality_file_check", "status"),
                                ("catalog_quality_check", "catalog_quality_issue", "problem")):  # fmt: skip
        result = run_dag(dag_id, logical_date=logical_date)
        if result.state != "success":
            failed.append((dag_id, result.run_id, result.task_states))
            continue
        with engine.connect() as conn:
            counts = conn.execute(text(f"SELECT {what}, count(*) FROM govops.{table} WHERE run_id = :r "
                                       "GROUP BY 1 ORDER BY 2 DESC"), {"r": result.run_id}).all()  # fmt: skip
        print(f"    {dag_id}: " + ", ".join(f"{n} {k}" for k, n in counts))
        for usage in usage_of_run(dag_id, result.run_id):
            print(f"      usage: work order {usage['work_order_id']} item {usage['service_item_code']}: "
                  f"{usage['quantity']} {usage['unit']}(s)")
    engine.dispose()
    return failed


def _security_services(logical_date: datetime) -> list[tuple[str, str, dict]]:
    """The security DAGs over what the pipelines loaded: label the persons (item 06), publish
    their masked copy to the sharing zone (20), assess the lake (19), and archive the sample
    service events older than their retention (21)."""
    from sqlalchemy import create_engine, text

    from govops.dag_runs import run_dag
    from govops.security.archive_sample import DEMO_DATASET, write_sample_events
    from govops.security.assessment import ensure_sample_grants

    print("4/5 security services (items 06, 20, 19, 21)")
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
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
        ("security_archive", {"action": "archive", "as_of": logical_date.date().isoformat()},
         """SELECT format('%s: %s partitions archived, %s rows', dataset, count(*), sum(rows))
              FROM govops.security_archive_operation WHERE run_id = :r AND kind = 'archive' GROUP BY dataset"""),
    ]  # fmt: skip
    for dag_id, conf, summary in steps:
        result = run_dag(dag_id, conf=conf, logical_date=logical_date)
        if result.state != "success":
            failed.append((dag_id, result.run_id, result.task_states))
            continue
        with engine.connect() as conn:
            line = conn.execute(text(summary), {"r": result.run_id}).scalar()
        print(f"    {dag_id}: {line or 'nothing to do'}")
        for usage in usage_of_run(dag_id, result.run_id):
            print(f"      usage: work order {usage['work_order_id']} item {usage['service_item_code']}: "
                  f"{usage['quantity']} {usage['unit']}(s)")
    engine.dispose()
    return failed


def _run_log(pipeline: str, run_id: str) -> tuple[int, int, int] | None:
    from sqlalchemy import create_engine, text

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


def _ensure_work_orders(specs: list[Any], when: datetime) -> None:
    """The demo meters against approved work orders: create the specs' ones the first time."""
    from sqlalchemy import create_engine

    from govops.pipelines.spec import demo_work_orders
    from govops.settlement.workorders import ensure_demo_work_order

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        for order, item, difficulty in demo_work_orders(specs):
            ensure_demo_work_order(engine, order, item, on=when.date(), difficulty=difficulty)
    finally:
        engine.dispose()


def _redacted_ledger_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.connection_url(settings.LEDGER_CONN_ID)).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govops")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the bundled extraction pipelines over the sample data, metered")
    p.add_argument("--pipeline", action="append", help="run only this pipeline (repeatable); default all")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--persons", type=int, default=500)
    p.add_argument("--logical-date", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    p.add_argument("--verbose", action="store_true", help="show Airflow's and Spark's logs")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
