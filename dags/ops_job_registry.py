"""
### 作业调度 · Job registry (item 05)

Every few minutes: reads the deployed DAGs (Airflow's REST API v2 through the connection
`govops_airflow_api`, else the DAG folder), brings `govops.scheduled_job` in step, appends
each change (new, schedule changed, paused, unpaused, removed, re-added) to
`govops.scheduled_job_change`, and meters each new job once, 1 个 of item 05, when its first
scheduled run has succeeded: against the item-05 work order the job names, else the
`work_order_id` param. Logic: `govops.ops`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags
from govops.ops import DEMO_WORK_ORDER, SERVICE_ITEM, UNIT

with DAG(
    dag_id="ops_job_registry",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags(SERVICE_ITEM, "ops"),
    default_args=default_args(),
    params={
        "work_order_id": Param(DEMO_WORK_ORDER, type="string", description="item-05 工单 of jobs that name none"),
        "source": Param("auto", enum=["auto", "rest_api", "dag_folder"], description="where the DAGs are read"),
    },
):

    @task
    def sync(params: dict | None = None) -> list[str]:
        from sqlalchemy import create_engine

        from govops import settings
        from govops.ops.job_sync import default_source, run_sync
        from govops.settlement.workorders import check_runnable

        source = default_source() if params["source"] == "auto" else params["source"]
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            with fail_fast():
                check_runnable(engine, params["work_order_id"], SERVICE_ITEM, UNIT)
            with engine.begin() as conn:
                lines = run_sync(conn, source, default_work_order=params["work_order_id"])
        finally:
            engine.dispose()
        for line in lines:
            print(line)
        return lines

    sync()
