"""
### 非结构化文件的质量检查 · Unstructured file check (catalog item 09)

Checks the files of the sharing or open zone, `<lake>/<zone>/files/`, and the HTTP(S)
URLs listed for it: **downloadable** (the file exists; a URL answers 2xx with the right
content type and the whole body), **readable** (PDF, DOCX, XLSX, CSV, text, JSON and images
open without error; empty and truncated files flagged) and **linked to its catalog entry**
(listed in `<lake>/<zone>/files/_file_catalog.yaml` with a dataset of `govops.data_catalog`,
declared format and size matching; orphans and missing files flagged).

* **Code**: `govops.quality.files` (the linking convention, the reason codes and the
  metering rule are in its docstring).
* **Metered**: item 09, one `file` per file **newly** checked (新增质量检查的数据文件个数,
  billed per 万个), against the `work_order_id` param: a file of the run is new unless an
  earlier run (a smaller `govops.quality_file_check` id) checked the same location with the
  same sha256, or, for a file without content (`NOT_FOUND`, unreachable), the same
  location. A weekly re-check of unchanged files meters 0; a replaced file with new content
  meters 1. The event's `records` and `attributes.checked` hold the files checked,
  `attributes.new` the new ones; checked = ok + failed, or the run fails. A re-run of a run
  meters exactly what it metered the first time.
* **Outputs**: one row per file in `govops.quality_file_check`; the issue list for the data
  owner `<lake>/reports/files/<zone>/<run>/issues.csv|xlsx` and `summary.json`.
* **Replacement**: each failed file gets a request in `govops.quality_file_replacement`;
  `govops.quality.files.record_replacement(engine, failed, replacement, by)` records the new
  file, and the next run in which it passes marks it verified.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags

with DAG(
    dag_id="quality_file_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("09"),
    default_args=default_args(),
    params={
        "work_order_id": Param("WO-DEMO-FILES", type="string", description="工单 to meter against"),
        "zone": Param("sharing", type="string", enum=["sharing", "open"], description="the zone whose files to check"),
        "urls": Param([], type="array", items={"type": ["string", "object"]},
                      description="more files by URL: a string, or {url, dataset, format, size} like a catalog entry"),
        "request_replacements": Param(True, type="boolean", description="open a replacement request per failed file"),
        "timeout_seconds": Param(10, type="number", minimum=1, description="per download"),
    },
):

    @task
    @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
    def prepare(params: dict | None = None) -> dict:
        """Refuse a work order that cannot take item 09; resolve the zone's folder."""
        from govops import settings
        from govops.quality.files import zone_folder
        from govops.settlement.workorders import require_runnable

        require_runnable(params["work_order_id"], "09", "file")
        return {"zone": params["zone"], "folder": str(zone_folder(settings.lake_root(), params["zone"]))}

    @task
    def check(prepared: dict, params: dict | None = None, ti=None) -> dict:
        """Check every file, record the results and the replacement workflow."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.quality.files import run_checks

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            return run_checks(
                engine, dag_id=ti.dag_id, run_id=ti.run_id, zone=prepared["zone"], lake_root=settings.lake_root(),
                urls=params.get("urls") or [], request_replacements=params["request_replacements"],
                timeout=float(params["timeout_seconds"]),
            )  # fmt: skip
        finally:
            engine.dispose()

    @task
    def meter(checked: dict, params: dict | None = None, ti=None) -> dict:
        """One usage event: the new files of the run (checked vs new in its attributes), once per run."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.ledger.usage import TaskRef
        from govops.quality.files import meter_run

        task_ref = TaskRef(ti.dag_id, ti.run_id, ti.task_id, ti.map_index if ti.map_index is not None else -1,
                           ti.try_number)  # fmt: skip
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            return meter_run(engine, task_ref, work_order_id=params["work_order_id"], summary=checked["summary"])
        finally:
            engine.dispose()

    @task
    def export(checked: dict, ti=None) -> dict:
        """The issue list (CSV, XLSX) and summary for the data owner."""
        from govops import settings
        from govops.quality.files import export_issues, report_folder

        summary = checked["summary"]
        folder = report_folder(settings.lake_root(), summary["zone"], ti.run_id)
        return export_issues(checked["issues"], summary, folder)

    checked = check(prepare())
    meter(checked) >> export(checked)
