"""
### 数据资产目录质量检查 · Catalog quality check (catalog item 11)

Checks every catalog entry (编目) of `govops.data_catalog`, or one provider department's,
for completeness and validity: required fields, code formats, update frequency, share and
open attributes and their consistency, classification, provider department, and the
schema (信息项: every column named, typed and described, no duplicates). The rules are
`include/quality_suites/catalog_rules.yaml`; the departments `include/catalog/departments.yaml`.

* **Issues**: `govops.catalog_quality_issue`, one row per run, entry, field and problem,
  with its rectification state: `open` → `fixed` (the department says so:
  `python -m govops.quality.catalog_checks fixed <issue id>…`) → `reverified` when a later
  run no longer finds it; a later run that still finds a fixed issue reopens it.
* **Issue lists sent back**: one XLSX and CSV per department, `summary.json` and
  `report.html` under `<lake>/reports/catalog_quality/<run>/`.
* **Metered**: item 11, one `catalog_entry` per **new** entry checked (新增数据资源目录个数),
  once per run, against the `work_order_id` param: an entry (a `govops.data_catalog` id)
  is new unless an earlier metered run billed it (the billed ids are kept in the usage
  event's `attributes.new_entry_ids` and read back from `govops.usage_event`; this holds
  for department-filtered runs too). A weekly re-check of an unchanged catalog meters 0; a
  newly registered entry meters 1. The event's `records` and `attributes.checked` hold the
  entries checked (= clean + with issues), `attributes.new` the new ones. A re-run of a run
  meters exactly what it metered the first time.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags

with DAG(
    dag_id="catalog_quality_check",
    schedule="0 3 * * 1",  # weekly, Monday morning: the lists reach departments at the start of the week
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("11"),
    default_args=default_args(),
    params={
        "work_order_id": Param("WO-DEMO-CATALOG", type="string", description="工单 to meter against"),
        "department": Param(None, type=["null", "string"],
                            description="check only this provider department's entries (提供部门); empty: all"),
    },
):

    # multiple_outputs=False: one XCom per task, whatever the dict's keys (department names are not URL-safe).
    @task(multiple_outputs=False)
    @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
    def prepare(params: dict | None = None) -> dict:
        """Refuse a work order that cannot take item 11, and invalid rules, before checking."""
        from govops.quality.catalog_checks import SERVICE_ITEM, UNIT, load_departments, load_rules
        from govops.settlement.workorders import require_runnable

        require_runnable(params["work_order_id"], SERVICE_ITEM, UNIT)
        load_rules()
        load_departments()
        department = (params.get("department") or "").strip() or None
        return {"work_order_id": params["work_order_id"], "department": department}

    @task(multiple_outputs=False)
    def check(prepared: dict, ti=None) -> dict:
        """Check the entries; store the issues, move their rectification states and meter the
        new entries, in one transaction."""
        from datetime import UTC

        from sqlalchemy import create_engine

        from govops import settings
        from govops.ledger.usage import TaskRef
        from govops.quality.catalog_checks import run_check

        task_ref = TaskRef(ti.dag_id, ti.run_id, ti.task_id, ti.map_index if ti.map_index is not None else -1,
                           ti.try_number)  # fmt: skip
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            return run_check(engine, task_ref, work_order_id=prepared["work_order_id"],
                             department=prepared["department"], event_time=datetime.now(UTC))  # fmt: skip
        finally:
            engine.dispose()

    @task(multiple_outputs=False)
    def report(summary: dict) -> dict:
        """The issue list per department, the summary and the HTML page."""
        from sqlalchemy import create_engine

        from govops import settings
        from govops.quality.catalog_checks import publish

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            return publish(engine, summary, settings.lake_root())
        finally:
            engine.dispose()

    report(check(prepare()))
