"""
### 数据共享/开放运营服务 · Sharing operations, the yearly lump sum (item 13, 1 年)

Meters 1 年 of item 13 against the work order (param `work_order_id`) for a year that is
over (param `year`, default the year before the run) and that the call records show the
service ran through: answered calls in every month. Once per year, whatever runs it.
Triggered by hand after the year, with the year's work order. Logic:
`govops.sharing.operations`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags

with DAG(
    dag_id="sharing_operations",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("13"),
    default_args=default_args(),
    params={
        "work_order_id": Param(type="string", description="工单 of item 13 (年) for the year"),
        "year": Param(None, type=["null", "integer"], description="the year metered (default: the year before)"),
    },
):

    @task
    def meter(params: dict | None = None, run_id: str | None = None, ti: Any = None) -> dict:
        from sqlalchemy import create_engine

        from govops import settings
        from govops.ledger.usage import contract_timezone
        from govops.sharing.operations import meter_year

        params = params or {}
        year = params.get("year") or datetime.now(contract_timezone()).year - 1
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            with fail_fast():  # an undelivered year or a refused work order needs a person
                result = meter_year(engine, params["work_order_id"], int(year), run_id=run_id or "",
                                    try_number=getattr(ti, "try_number", None))  # fmt: skip
        finally:
            engine.dispose()
        print(f"item 13, {year}: {result['billing']} (usage event {result['usage_event_id']})")
        return {k: v for k, v in result.items() if k != "evidence"}

    meter()
