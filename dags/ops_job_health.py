"""
### 作业健康 · Job health and event-order notifications (issue 17)

Every 10 minutes, `check` runs one monitoring pass over Airflow's REST API v2 (the
connection `govops_airflow_api`). It finds task instances or runs that are stuck, DAGs
whose latest successful run was slow against their recent successes, scheduled runs late
for their service item's deadline, and DAG import errors. Each problem opens one event
order (事件单), a repeated pass updates it, and the order resolves by itself once the
problem is gone. `notify` then sends each event order's state changes (opened,
acknowledged, resolved, evaluated) once, by mail through the connection `govops_smtp`
and by DingTalk where its provider is installed. It runs even when `check` failed.
Logic: `govops.ops.health`, `govops.ops.notify`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, TriggerRule, task

from govops.dag_policy import default_args, fail_fast, service_tags
from govops.ops import SERVICE_ITEM

with DAG(
    dag_id="ops_job_health",
    schedule="*/10 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags(SERVICE_ITEM, "ops"),
    default_args=default_args(),
):

    @task
    def check() -> list[str]:
        from sqlalchemy import create_engine

        from govops import settings
        from govops.ops.health import check as health_check

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            with fail_fast(), engine.begin() as conn:
                lines = health_check(conn).lines()
        finally:
            engine.dispose()
        for line in lines:
            print(line)
        return lines

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def notify() -> list[str]:
        from sqlalchemy import create_engine

        from govops import settings
        from govops.ops import notify as notifications

        channels = notifications.channels()
        if not channels:
            print(f"no notification channel: define the Airflow connection {notifications.SMTP_CONN_ID}")
            return []
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            sent = notifications.send_pending(engine, channels)
        finally:
            engine.dispose()
        for line in sent:
            print(line)
        return sent

    check() >> notify()
