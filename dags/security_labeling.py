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
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

with DAG(
    dag_id="security_labeling",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("06"),
    default_args=default_args(),
    params={
        "work_order_id": Param("WO-DEMO-LABEL", type="string", description="工单 to meter against"),
        "dataset": Param("raw/frontdb/public_security/persons", type="string", pattern=r"^[a-z]+/\S+$",
                         description="<zone>/<path> of a Parquet dataset in the lake"),
        "sample_rows": Param(None, type=["null", "integer"], minimum=1,
                             description="examine at most this many rows (empty: all, so every record is labeled)"),
        "threshold": Param(0.8, type="number", minimum=0.01, maximum=1,
                           description="share of non-null values a detector must match to label a column"),
        "hint_threshold": Param(0.5, type="number", minimum=0.01, maximum=1,
                                description="the same when the column name hints the data type"),
        "csv": Param(True, type="boolean", description="also write labels.csv next to the report"),
    },
):

    @task
    @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
    def prepare(params: dict | None = None) -> dict:
        """Refuse a work order that cannot take item 06, a bad dataset name or grading table."""
        from govops.security import detectors, grading
        from govops.settlement.workorders import require_runnable

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
        print(f"{summary['dataset']}: {summary['rows_labeled']} rows, {summary['columns_labeled']} columns labeled, "
              f"{summary['sensitive_columns']} sensitive, new versions: {summary['new_versions'] or 'none'}")
        return summary

    @task
    def report(summary: dict, params: dict | None = None, ti=None) -> dict:
        """The labeling report (HTML with a chart of columns per grade) and labels.csv."""
        from govops import settings
        from govops.security import labeling

        written = labeling.write_report(settings.lake_root(), summary, run_id=ti.run_id, csv=params["csv"])
        print(f"labeling report: {written['report']}")
        return written

    prepared >> label
    report(record(label.output, prepared))
