"""
### 作业调度月度报告 · Scheduling reports (item 05)

After each month: the job-anomaly summary (异常作业监控数据分析汇总报告: event orders by kind,
DAG, service item and department, time to acknowledge and resolve, top causes, open orders)
and the monthly summary (月总结报告: job volume and changes, runs and success rate, data
volumes metered, scheduling quality), as HTML with charts and XLSX, written to
`<lake>/reports/ops/<yyyy-mm>/`. DAG runs are read from Airflow's REST API v2 (connection
`govops_airflow_api`); without it the monthly summary says runs are not available. The
`month` param (YYYY-MM) redoes any month; its files are replaced. Logic:
`govops.ops.reports`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, service_tags
from govops.ops import SERVICE_ITEM

with DAG(
    dag_id="ops_reports",
    schedule="0 3 1 * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags(SERVICE_ITEM, "ops"),
    default_args=default_args(),
    params={"month": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")},
):

    @task
    def monthly_reports(params: dict | None = None, dag_run: Any = None) -> list[str]:
        """The month asked for, else the month before the run's (a cron schedule's run of the
        1st has its own time as its data interval)."""
        from datetime import date

        from sqlalchemy import create_engine

        from govops import settings
        from govops.ops.report_render import report_to
        from govops.ops.reports import month_before

        month = date.fromisoformat(params["month"] + "-01") if params.get("month") else month_before(dag_run.run_after)
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            lines = report_to(engine, month)
        finally:
            engine.dispose()
        for line in lines:
            print(line)
        return lines

    monthly_reports()
