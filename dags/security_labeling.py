"""
### 数据标注 · Data labeling: classification and grading (catalog item 06)

Finds which columns of a lake dataset hold sensitive data (resident ID numbers checked by
GB 11643, unified social credit codes by GB 32100, bank cards by Luhn, mobile and landline
numbers, names, addresses, e-mail, licence plates, coordinates) from column names and
content, and gives each column a business category and a security grade (GB/T 43697-2024:
core / important / general, the general grade sub-graded into levels) from
`include/security/grading.yaml`.

* **Spark job**: `spark_jobs/label_dataset.py`: every detector on every column in one
  aggregation (`govops.security.detectors`; the decision rule is in its docstring).
  **Metered**: item 06 per record (万条): the rows examined, against `work_order_id`.
* **Labels**: `govops.security_label`, versioned: a run adds a version only where the
  result changed; a person's override or confirmation stays current
  (`govops.security.labeling.override` / `confirm`, audited).
* **Outputs**: the labeling log `govops.security_labeling_run` (what was labeled, how many
  records, the sensitive columns), the report
  `<lake>/reports/security/labeling/<dataset>/<run>/report.html` and `labels.csv`.
* **Governance chain** (`govops.chain`): one more DAG `security_labeling__<dataset>` per
  dataset an ingestion suite gates, scheduled on its promoted `clean/…` Asset. It labels
  each promoted version and publishes the labels as the Asset `labels/clean/…` (the
  reports' folder), which starts the masking of that dataset.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops import chain
from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator


def chain_doc(link: chain.Link) -> str:
    return (f"### 治理链 · Labeling of `{link.clean}` (governance chain)\n\n"
            f"Scheduled on the Asset `{link.clean}`: every batch the quality gate `{link.suite}` promotes is "
            f"labeled and graded (the DAG's default work order), and its labels are published as the Asset "
            f"`{link.labels}`, which starts its masking. Declared in `meta.govops` of `{link.path.name}`; the "
            f"tasks are those of `security_labeling`.")


def labeling_dag(dag_id: str, link: chain.Link | None = None) -> DAG:
    """The manual service (no link) or the chain's labeling of one promoted dataset."""
    with DAG(
        dag_id=dag_id,
        schedule=[chain.asset(link.clean)] if link else None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__ if link is None else chain_doc(link),
        tags=service_tags("06"),
        default_args=default_args(),
        params={
            "work_order_id": Param("WO-DEMO-LABEL", type="string", description="工单 to meter against"),
            "dataset": Param(link.clean if link else "raw/frontdb/public_security/persons", type="string",
                             pattern=r"^[a-z]+/\S+$",
                             description="<zone>/<path> of a Parquet dataset in the lake"),
            "sample_rows": Param(None, type=["null", "integer"], minimum=1,
                                 description="examine at most this many rows (empty: all, so every record is labeled)"),
            "threshold": Param(0.8, type="number", minimum=0.01, maximum=1,
                               description="share of non-null values a detector must match to label a column"),
            "hint_threshold": Param(0.5, type="number", minimum=0.01, maximum=1,
                                    description="the same when the column name hints the data type"),
            "csv": Param(True, type="boolean", description="also write labels.csv next to the report"),
        },
    ) as dag:

        @task
        @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
        def prepare(params: dict | None = None, triggering_asset_events=None) -> dict:
            """Refuse a work order that cannot take item 06, a bad dataset name or grading table.
            A run of the chain labels the promoted dataset its asset event names."""
            from govops import settings
            from govops.security import detectors, grading
            from govops.settlement.workorders import require_runnable

            if triggering_asset_events:  # a run of the chain
                declared = chain.links()
                current = chain.find("labeling", params["dataset"], declared)
                event = chain.resolve("labeling", current, chain.events(triggering_asset_events), declared,
                                      settings.lake_root())
                print(f"governance chain: {event.dataset} version {event.version} published by {event.source}")

            require_runnable(params["work_order_id"], "06", "record")
            table = grading.load()  # a malformed grading table stops here, naming the file and field
            if not 0 < params["hint_threshold"] <= params["threshold"] <= 1:
                raise ValueError(f"need 0 < hint_threshold <= threshold <= 1, got {params['hint_threshold']} and "
                                 f"{params['threshold']}")  # fmt: skip
            return {"dataset": detectors.check_dataset(params["dataset"]), "grading_sha256": table.sha256}

        prepared = prepare()
        label = SparkJobOperator(
            task_id="label",
            job="label_dataset",
            job_args={
                "dataset": "{{ ti.xcom_pull(task_ids='prepare')['dataset'] }}",
                "sample-rows": "{{ params.sample_rows or '' }}",
                "threshold": "{{ params.threshold }}",
                "hint-threshold": "{{ params.hint_threshold }}",
            },
            work_order_id="{{ params.work_order_id }}",
        )

        @task
        def record(manifest: dict, prepared: dict) -> dict:
            """The labels (new versions where changed) and the labeling log, once per run."""
            from sqlalchemy import create_engine

            from govops import settings
            from govops.security import grading, labeling

            table = grading.load()
            if table.sha256 != prepared["grading_sha256"]:
                raise RuntimeError(f"{table.path} changed during the run: run it again")
            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                summary = labeling.record_from_manifest(engine, manifest, table)
            finally:
                engine.dispose()
            print(f"{summary['dataset']}: {summary['rows_labeled']} rows, "
                  f"{summary['columns_labeled']} columns labeled, {summary['sensitive_columns']} sensitive, "
                  f"new versions: {summary['new_versions'] or 'none'}")
            return summary

        # The labels of a promoted batch are published as an Asset: they start its masking.
        labels = chain.asset(link.labels) if link else None

        @task(outlets=[labels] if labels else [])
        def report(summary: dict, params: dict | None = None, ti=None, outlet_events=None) -> dict:
            """The labeling report (HTML with a chart of columns per grade) and labels.csv."""
            from govops import settings
            from govops.security import labeling

            written = labeling.write_report(settings.lake_root(), summary, run_id=ti.run_id, csv=params["csv"])
            print(f"labeling report: {written['report']}")
            if labels:
                outlet_events[labels].extra = chain.publication(
                    f"{chain.LABELS}/{summary['dataset']}", settings.lake_root(), report=written["report"],
                    columns_labeled=summary["columns_labeled"],
                    sensitive_columns=summary["sensitive_columns"])  # fmt: skip
            return written

        prepared >> label
        report(record(label.output, prepared))
    return dag


security_labeling = labeling_dag("security_labeling")
for _link in chain.declared_links():  # one DAG per promoted dataset of the chain
    _dag_id = chain.dag_id("security_labeling", _link.clean.split("/", 1)[1])
    globals()[_dag_id] = labeling_dag(_dag_id, _link)
