"""Operations (issue 17): the job scheduling service (item 05: the job registry, its change
record and metering) and event orders (事件单) that open themselves from failures.

``registry`` keeps ``govops.scheduled_job`` in step with a list of DAG descriptions that
``sources`` reads from Airflow's REST API v2 or from the DAG folder; ``event_orders`` holds
the order's life cycle; ``listener`` is the Airflow plugin listener that feeds it.
"""

SERVICE_ITEM = "05"
UNIT = "task"
# The dev fixture's item-05 work order: the ops_job_registry DAG's default ``work_order_id``.
DEMO_WORK_ORDER = "WO-DEMO-SCHEDULING"
