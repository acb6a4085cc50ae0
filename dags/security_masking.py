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
  controlled per column, key version); an audit entry. The masked dataset is published as
  an Asset (through the asset alias `govops-masked`).
* **Governance chain** (`govops.chain`): one more DAG `security_masking__<policy>` per policy
  an ingestion suite's `meta.govops.masking_policies` names, scheduled on the labels of the
  batch that suite promoted (`labels/clean/…`): it masks that promoted copy of the policy's
  source into the policy's output.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetAlias, Param, task

from govops import chain
from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

MASKED = AssetAlias("govops-masked")  # the masked copies, to whichever output a policy names


def chain_doc(link: chain.Link, policy: str) -> str:
    return (f"### 治理链 · Masking of `{link.clean}` by `{policy}` (governance chain)\n\n"
            f"Scheduled on the Asset `{link.labels}`: once a batch the quality gate `{link.suite}` promoted "
            f"is labeled, the policy `{policy}` of `include/security/masking.yaml` masks that promoted copy of its "
            f"source into its output (the DAG's default work order). Declared in `meta.govops` of "
            f"`{link.path.name}`; the tasks are those of `security_masking`.")


def masking_dag(dag_id: str, policy: str, link: chain.Link | None = None) -> DAG:
    """The manual service (no link) or the chain's masking of one promoted dataset by one policy."""
    with DAG(
        dag_id=dag_id,
        schedule=[chain.asset(link.labels)] if link else None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__ if link is None else chain_doc(link, policy),
        tags=service_tags("20"),
        default_args=default_args(),
        params={
            "policy": Param(policy, type="string", pattern=r"^[A-Za-z0-9_.-]+$",
                            description="a policy of include/security/masking.yaml"),
            "work_order_id": Param("WO-DEMO-MASK", type="string", description="工单 to meter against"),
        },
    ) as dag:

        @task
        @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
        def prepare(params: dict | None = None, triggering_asset_events=None) -> dict:
            """Refuse a work order that cannot take item 20; resolve a rule for every column.
            A run of the chain masks the promoted batch whose labels its asset event names."""
            from sqlalchemy import create_engine

            from govops import settings
            from govops.security import masking
            from govops.settlement.workorders import require_runnable

            source = None
            if triggering_asset_events:  # a run of the chain: the promoted copy of the policy's source
                declared = chain.links()
                current = chain.find("masking", params["policy"], declared)
                event = chain.resolve("masking", current, chain.events(triggering_asset_events), declared,
                                      settings.lake_root())
                chain.check_policies(current)
                source = current.clean
                print(f"governance chain: {event.dataset} published by {event.source}; masking {source}")
            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                require_runnable(params["work_order_id"], "20", "record")
                policy = masking.prepare(engine, params["policy"], settings.lake_root(), source=source)
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

        @task(outlets=[MASKED])
        def record(manifest: dict, prepared: dict, outlet_events=None) -> dict:
            """The execution log: the policy applied and the records controlled per column; the
            masked dataset published as an Asset."""
            from sqlalchemy import create_engine

            from govops import settings
            from govops.security.masking import record_run

            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                logged = record_run(engine, manifest, by=f"{manifest['run']['dag_id']}/{manifest['run']['run_id']}")
            finally:
                engine.dispose()
            policy = prepared["policy"]
            outlet_events[MASKED].add(chain.asset(policy["output"]), extra=chain.publication(
                policy["output"], settings.lake_root(), source=policy["source"], policy=policy["name"],
                rows=manifest["counts"]["written"]))  # fmt: skip
            return logged

        prepared >> mask
        record(mask.output, prepared)
    return dag


security_masking = masking_dag("security_masking", "public_security_persons")
for _link in chain.declared_links():  # one DAG per policy that publishes a batch of the chain
    for _policy in _link.policies:
        _dag_id = chain.dag_id("security_masking", _policy)
        globals()[_dag_id] = masking_dag(_dag_id, _policy, _link)
