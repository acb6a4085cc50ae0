"""
### 结算 · Period settlement (bimonthly and quarterly)

Turns accepted, metered usage into the period's statement, exactly as the contract's
rules R1-R10 prescribe (see README, "Settlement"), and exports it as CSV, JSON and XLSX
for the settlement system.

* **Which period**: the `period_id` param, or, on a scheduled run, the period of this
  DAG's kind that contains the start of the data interval (the period that just ended).
* **Draft, not close**: a run writes or replaces the period's *draft* statement. Closing
  is a decision taken after acceptance: `python -m govops.settlement close <period>`.
  A closed period's statement is returned unchanged, never recomputed.
* **Outputs**: `GOVOPS_HOME/statements/<period>/statement.{csv,json,xlsx}`, and the
  views `govops.settlement_statement_v1` and `govops.settlement_line_v1`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args

SCHEDULES = {
    "bimonthly": "0 3 1 1,3,5,7,9,11 *",  # after each two-month period
    "quarterly": "0 3 1 1,4,7,10 *",  # after each quarter
}


def settlement_dag(kind: str, schedule: str) -> DAG:
    with DAG(
        dag_id=f"settlement_{kind}",
        schedule=schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__,
        tags=["ops"],
        default_args=default_args(),
        params={
            "period_id": Param(None, type=["null", "string"], description="settle this period (default: the last)"),
        },
    ) as dag:

        @task
        def settle(params: dict | None = None, data_interval_start: datetime | None = None) -> dict:
            """Compute (or replace) the period's draft statement."""
            from sqlalchemy import create_engine

            from govops import settings
            from govops.settlement import store

            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                period = params.get("period_id") or store.period_containing(engine, kind, data_interval_start.date())
                statement = store.settle(engine, period)
            finally:
                engine.dispose()
            return {"period": period, "state": statement["state"], "content_hash": statement["content_hash"],
                    "totals": statement["totals"]}  # fmt: skip

        @task
        def export(summary: dict) -> list[str]:
            """Write the statement as CSV, JSON and XLSX."""
            from sqlalchemy import create_engine

            from govops import settings
            from govops.settlement import store
            from govops.settlement.export import WRITERS

            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                statement = store.get_statement(engine, summary["period"])
            finally:
                engine.dispose()
            folder = settings.home() / "statements" / summary["period"]
            folder.mkdir(parents=True, exist_ok=True)
            return [str(write(statement, folder / f"statement.{fmt}")) for fmt, write in sorted(WRITERS.items())]

        export(settle())
    return dag


settlement_bimonthly = settlement_dag("bimonthly", SCHEDULES["bimonthly"])
settlement_quarterly = settlement_dag("quarterly", SCHEDULES["quarterly"])
