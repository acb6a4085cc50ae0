"""
### 数据安全评估审核 · Security assessment (catalog item 19)

Scans the lake and produces the assessment report: where sensitive data lives (rows and
bytes by zone, dataset and grade), which sensitive columns of the sharing and open zones are
not masked, datasets without labels, labels that no longer match their columns, stale access
grants and grants on datasets that no longer exist; an issue list with a rectification
record per finding (found → fixed → re-verified).

* **Spark job**: `spark_jobs/assess_security.py`: lists the published datasets of the zones,
  counts their rows, files and bytes, and runs the content detectors over the sharing and
  open zones (one aggregation per dataset).
* **Findings**: `govops.security.assessment` (kinds, severities, the lifecycle and what
  happens to a finding that goes away without a recorded fix are in its docstring).
  A person records a fix with `govops.security.assessment.mark_fixed(engine, finding_id,
  by=…, note=…)`; the next run re-verifies it or reopens it.
* **Metered**: item 19, per record (万条): the rows of the datasets scanned, once per run,
  against the `work_order_id` param (a re-run bills what the run first billed).
* **Outputs**: `govops.security_assessment_run` (one row per run) and
  `govops.security_finding`; the report, `issues.csv` and `issues.xlsx` under
  `<lake>/reports/security/assessment/<run>/` (the `report` task's log gives the link).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

ZONES = ["raw", "clean", "sharing", "open", "archive"]

with DAG(
    dag_id="security_assessment",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("19"),
    default_args=default_args(),
    params={
        "work_order_id": Param("WO-DEMO-ASSESS", type="string", description="工单 to meter against"),
        "zones": Param(ZONES, type="array", items={"type": "string", "enum": ZONES}, description="zones to scan"),
        "prefixes": Param([], type="array", items={"type": "string"},
                          description="limit the scan to these <zone>/<path> prefixes (empty: everything)"),
        "stale_days": Param(90, type="integer", minimum=1, description="a grant unused this long is stale"),
    },
):

    @task
    @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
    def prepare(params: dict | None = None, ti=None) -> dict:
        """Refuse a work order that cannot take item 19; check the scope; a re-run's metered figure."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.ledger.usage import TaskRef, recorded_event
        from govops.security.assessment import SERVICE_ITEM, UNIT, parse_prefixes, parse_zones
        from govops.settlement.workorders import require_runnable

        require_runnable(params["work_order_id"], SERVICE_ITEM, UNIT)
        zones = parse_zones(params["zones"])
        prefixes = parse_prefixes(params["prefixes"], zones)
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            with engine.connect() as conn:
                metered = recorded_event(conn, TaskRef(ti.dag_id, ti.run_id, "scan"), SERVICE_ITEM, "lake",
                                         params["work_order_id"], "records")  # fmt: skip
        finally:
            engine.dispose()
        return {"zones": ",".join(zones), "prefixes": ",".join(prefixes),
                "metered_records": "" if metered is None else str(metered.records)}  # fmt: skip

    prepared = prepare()
    scan = SparkJobOperator(
        task_id="scan",
        job="assess_security",
        job_args={
            "zones": "{{ ti.xcom_pull(task_ids='prepare')['zones'] }}",
            "prefixes": "{{ ti.xcom_pull(task_ids='prepare')['prefixes'] }}",
            "metered-records": "{{ ti.xcom_pull(task_ids='prepare')['metered_records'] }}",
        },
        work_order_id="{{ params.work_order_id }}",
    )

    @task
    def assess(manifest: dict, params: dict | None = None) -> dict:
        """Findings and their lifecycle, the storage distribution, the run row (one per run)."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.security.assessment import assess as assess_scan

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            summary = assess_scan(engine, manifest, work_order_id=params["work_order_id"],
                                  stale_days=int(params["stale_days"]))  # fmt: skip
        finally:
            engine.dispose()
        return {k: summary[k] for k in ("run", "datasets", "rows", "findings", "changes", "status")}

    @task
    def report(assessed: dict) -> dict:
        """The report with charts and the issue list (CSV, XLSX) in the lake."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.security.assessment_report import publish

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            published = publish(engine, assessed["run"], settings.lake_root())
        finally:
            engine.dispose()
        print(f"security assessment report: {published['report']}")
        return published

    prepared >> scan
    report(assess(scan.output))
