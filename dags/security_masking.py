"""
### 数据加密、脱敏等控制 · Masking and encryption (catalog item 20)

Publishes a controlled copy of a lake dataset in the sharing or open zone under a policy of
`include/security/masking.yaml`: a rule per column (partial masking, generalization,
HMAC-SHA256 / HMAC-SM3 pseudonyms, FF1 format-preserving encryption, AES-256-GCM / SM4-GCM
encryption, nullify), the policy's own or, by default, its label grade's
(`include/security/grading.yaml`, labels from `security_labeling`).

* **Code**: `govops.security.masking` (rules, policy resolution, execution log, reveal),
  `govops.security.keys` (data keys wrapped by the master key of the Airflow connection
  `govops_master_key`); **Spark job**: `spark_jobs/mask_dataset.py`.
* **Keys**: the data key is unwrapped when the job starts and handed to it in its
  environment, masked in the logs; it never appears in the DAG, the policy, an XCom or
  the manifest.
* **Metered**: item 20, one record (万条) per row controlled, against `work_order_id`.
* **Outputs**: the masked dataset `<lake>/<output>`; the execution log
  (`govops.security_masking_run` / `security_masking_column`: policy applied, records
  controlled per column, key version); an audit entry.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

with DAG(
    dag_id="security_masking",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("20"),
    default_args=default_args(),
    params={
        "policy": Param("public_security_persons", type="string", pattern=r"^[A-Za-z0-9_.-]+$",
                        description="a policy of include/security/masking.yaml"),
        "work_order_id": Param("WO-DEMO-MASK", type="string", description="工单 to meter against"),
    },
):

    @task
    @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
    def prepare(params: dict | None = None) -> dict:
        """Refuse a work order that cannot take item 20; resolve a rule for every column."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.security import masking
        from govops.settlement.workorders import require_runnable

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            require_runnable(params["work_order_id"], "20", "record")
            policy = masking.prepare(engine, params["policy"], settings.lake_root())
        finally:
            engine.dispose()
        print("rules: " + ", ".join(f"{r.column}={r.rule} ({r.origin})" for r in policy.rules))
        keyed = any(r.keyed for r in policy.rules)
        return {"policy": policy.as_json(), "key": policy.key if keyed else ""}

    prepared = prepare()
    mask = SparkJobOperator(
        task_id="mask",
        job="mask_dataset",
        job_args={"policy-json": "{{ ti.xcom_pull(task_ids='prepare')['policy'] | tojson }}"},
        data_key="{{ ti.xcom_pull(task_ids='prepare')['key'] }}",
        work_order_id="{{ params.work_order_id }}",
    )

    @task
    def record(manifest: dict) -> dict:
        """The execution log: the policy applied and the records controlled per column."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.security.masking import record_run

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            return record_run(engine, manifest, by=f"{manifest['run']['dag_id']}/{manifest['run']['run_id']}")
        finally:
            engine.dispose()

    prepared >> mask
    record(mask.output)
