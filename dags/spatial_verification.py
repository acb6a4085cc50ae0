"""
### 空间地理数据核实 · Spatial verification (catalog item 10)

Checks the coordinates of a lake dataset of spatial records: missing, non-numeric, out of
range, placeholder, swapped, low precision, duplicates and near duplicates; the batch's
coordinate system (WGS-84, GCJ-02 or BD-09, from the offsets to the standard address
library; without one the system is not checked, and no record is called verified); the
district each point falls in (real boundary polygons of Shanghai's districts) against its
address and the deployment's area (`area_code`); the distance to its standard address.
Each record ends verified, crs_not_checked, corrected automatically or listed for field
verification (外业核实).

* **Spark job**: `spark_jobs/verify_spatial.py`. **Metered**: item 10, one coordinate point
  per record, against the `work_order_id` param.
* **Outputs**: `<lake>/verified/<dataset>`, the anomaly list `<lake>/anomalies/spatial/…`,
  the report and the field task list under `<lake>/reports/spatial/<dataset>/<run>/`, and
  the proposed corrections in `govops.spatial_correction`.
* **Write-back**: only applied corrections reach `<lake>/curated/<dataset>`:
  `python -m govops.spatial apply <dataset> <run id> --approver NAME` (and `revert`).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

with DAG(
    dag_id="spatial_verification",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("10"),
    default_args=default_args(),
    params={
        "work_order_id": Param("WO-DEMO-VERIFY", type="string", description="工单 to meter against"),
        "input": Param("raw/frontdb/planning_resources/addresses", type="string",
                       description="the records to verify: a dataset under the lake root"),
        "reference": Param(None, type=["null", "string"],
                           description="the standard address library (id, lon, lat in WGS-84) under the lake root"),
        "dataset": Param("planning_resources_addresses", type="string", pattern=r"^[a-z0-9_]+$",
                         description="name of the verified dataset"),
        "district": Param("青浦区", type=["null", "string"], description="the district every record should be in"),
        "area_code": Param(None, type=["null", "string"], pattern=r"^[0-9]{6}$",
                           description="administrative code of the deployment's area (310118 青浦区, 310000 all "
                                       "of Shanghai); default: GOVOPS_AREA_CODE, else 310118"),
    },
):

    @task
    @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
    def prepare(params: dict | None = None) -> dict:
        """Refuse a work order that cannot take item 10; resolve the lake paths."""
        from govops import settings
        from govops.settlement.workorders import require_runnable

        require_runnable(params["work_order_id"], "10", "coordinate_point")
        root = settings.lake_root()
        reference = f"{root}/{params['reference']}" if params.get("reference") else ""
        return {"input": f"{root}/{params['input']}", "reference": reference}

    verify = SparkJobOperator(
        task_id="verify",
        job="verify_spatial",
        job_args={
            "input": "{{ ti.xcom_pull(task_ids='prepare')['input'] }}",
            "reference": "{{ ti.xcom_pull(task_ids='prepare')['reference'] }}",
            "dataset": "{{ params.dataset }}",
            "district": "{{ params.district or '' }}",
            "area-code": "{{ params.area_code or '' }}",
        },
        work_order_id="{{ params.work_order_id }}",
    )

    @task
    def publish(manifest: dict) -> dict:
        """Propose the run's corrections and write the report and the field task list."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.spatial import corrections, report

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            out, run = manifest["outputs"][0], manifest["run"]
            proposed = corrections.propose(engine, out["uri"], out["dataset"], run["dag_id"], run["run_id"])
        finally:
            engine.dispose()
        return {"proposed_corrections": proposed, **report.publish(manifest, settings.lake_root())}

    prepare() >> verify
    publish(verify.output)
