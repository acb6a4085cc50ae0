"""``govops`` command line: ``python -m govops.cli demo`` (what ``./dev demo`` runs)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from govops import settings

DEMO_DAG = "svc04_batch_extraction_demo"


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
    from govops.sample_data import load_sample

    print(f"1/3 sample data (seed {args.seed}, {args.persons} persons) -> front-end database (前置库)")
    report = load_sample(settings.connection_url(settings.SOURCE_CONN_ID), seed=args.seed, persons=args.persons)
    for table, rows in report.items():
        print(f"    {table}: {rows} rows")

    logical_date = datetime.fromisoformat(args.logical_date).replace(tzinfo=UTC)
    _ensure_work_order(args.work_order, logical_date)
    print(f"2/3 running DAG {DEMO_DAG} (work order {args.work_order}, logical date {logical_date:%Y-%m-%d})")
    result = run_dag(DEMO_DAG, conf={"work_order_id": args.work_order}, logical_date=logical_date)
    for task_id, state in sorted(result.task_states.items()):
        print(f"    {task_id}: {state}")
    if result.state != "success":
        print(f"DAG run {result.run_id} ended {result.state}", file=sys.stderr)
        return 1

    print("3/3 outputs and metered usage")
    print(f"    lake:      {settings.lake_root()}/raw/frontdb/")
    print(f"    manifests: {settings.lake_root()}/_manifests/{DEMO_DAG}/")
    print(f"    ledger:    govops.usage_event / govops.usage_summary_v1 in {_redacted_ledger_url()}")
    for row in usage_of_run(result.dag_id, result.run_id):
        print(
            f"    usage: work order {row['work_order_id']} item {row['service_item_code']} period "
            f"{row['period']:%Y-%m}: {row['quantity']} {row['unit']}(s), {row['records']} records, "
            f"{row['events']} event(s)"
        )
    print(f"run id {result.run_id}: re-running the same logical date re-runs this run and meters nothing twice")
    return 0


def _ensure_work_order(work_order_id: str, when: datetime) -> None:
    """The demo meters against an approved work order: create it the first time."""
    from sqlalchemy import create_engine

    from govops.settlement.workorders import ensure_demo_work_order

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        ensure_demo_work_order(engine, work_order_id, on=when.date())
    finally:
        engine.dispose()


def _redacted_ledger_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.connection_url(settings.LEDGER_CONN_ID)).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govops")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="batch extraction of the bundled sample data, metered")
    p.add_argument("--work-order", default="WO-DEMO-0001")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--persons", type=int, default=500)
    p.add_argument("--logical-date", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    p.add_argument("--verbose", action="store_true", help="show Airflow's and Spark's logs")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
