"""A tiny DAG for the listener test (tests/dags/test_ops_listener.py): its one task fails
on each of its two tries while the ``fail`` param is true. Not part of the deployment."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="ops_listener_probe",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"fail": Param(True, type="boolean"), "work_order_id": Param("WO-PROBE", type="string")},
    default_args={"retries": 1, "retry_delay": timedelta(0)},
):

    @task
    def flaky(params: dict | None = None) -> None:
        if params["fail"]:
            raise RuntimeError("the probe fails on purpose")

    flaky()
