"""
### 抽取月度汇总 · Monthly extraction summary

After each month: the summary per source (volumes; accuracy, completeness and
consistency from the reject reasons; rejects by reason; HTML with charts) and the
exports of the extraction inventory (抽取清单), the run log and the data catalog (编目),
written to `<lake>/reports/extraction/<yyyy-mm>/`. The `month` param (YYYY-MM) redoes
any month; the files of a month are replaced, never appended to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args

with DAG(
    dag_id="extraction_monthly_summary",
    schedule="0 2 1 * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ops"],
    default_args=default_args(),
    params={"month": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")},
):

    @task
    def summarize(params: dict | None = None, dag_run: Any = None) -> dict:
        """The month before the run's (Airflow 3's cron timetable gives a run no data
        interval of its own: it starts at the run), or the month asked for."""
        from datetime import date

        from sqlalchemy import create_engine

        from govops import settings
        from govops.ops.reports import month_before
        from govops.pipelines.report import publish_month

        month = date.fromisoformat(params["month"] + "-01") if params.get("month") else month_before(dag_run.run_after)
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            return publish_month(engine, month, settings.lake_root())
        finally:
            engine.dispose()

    summarize()
