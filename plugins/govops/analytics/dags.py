"""Turn an analytics spec into a DAG ``analytics_<name>``: prepare -> analyze (Spark) ->
commit [-> report].

prepare refuses a work order that is not open, is for another item, or whose difficulty is
not the one the spec gives, and resolves the run's parameters. analyze runs
``spark_jobs/analyze.py``. commit records the run (parameters, input versions, outputs) and
its result rows in PostgreSQL and meters it, once per deliverable (govops.analytics.runs).
report (kind report) writes the page, the workbook and the data files. Nothing here touches
a database or the lake at parse time.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from govops import settings
from govops.analytics import difficulty as dif
from govops.analytics.spec import AnalyticsSpec, SpecError
from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

# Kinds whose deliverables the DAG produces. Models (16, 17) also owe a design document and a
# model test report, dashboards (18) their pages: until those exist, no DAG meters them.
BUILT_KINDS = ("analysis", "report")


def lake_asset(dataset: str) -> Asset:
    """The Asset of a lake dataset (``<zone>/<path>``): what a refresh on_inputs waits for."""
    return Asset(name=f"lake/{dataset}", uri=f"govops-lake://{dataset}", group="lake")


def _engine():  # -> sqlalchemy.Engine
    from sqlalchemy import create_engine

    return create_engine(settings.connection_url(settings.LEDGER_CONN_ID))


def prepare(spec: AnalyticsSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The work orders and difficulty checked, and the run's parameters."""
    from govops.analytics import runs

    manual = bool(params.get("manual_refresh"))
    lines = runs.lines_for(spec, params["work_order_id"], manual, params.get("refresh_work_order_id") or None)
    parameters = runs.resolve_parameters(spec, params.get("parameters"))
    engine = _engine()
    try:
        runs.check_work_orders(engine, lines)
    finally:
        engine.dispose()
    return {
        "work_order_id": params["work_order_id"],
        "manual_refresh": manual,
        "parameters": parameters,
        "lines": [{**asdict(line), "difficulty": str(line.difficulty)} for line in lines],
    }


def commit(spec: AnalyticsSpec, manifest: dict[str, Any], prepared: dict[str, Any], run_type: str) -> dict[str, Any]:
    from govops.analytics import runs

    engine = _engine()
    try:
        result = runs.commit(engine, spec, manifest, prepared, run_type=run_type)
    finally:
        engine.dispose()
    print(f"{spec.name}: {result['billing']}, rows {result['rows']}, usage events {result['usage_event_ids']}")
    return result


def schedule_of(spec: AnalyticsSpec) -> Any:
    refresh = spec.refresh
    if refresh is None or refresh.mode == "manual":
        return None
    if refresh.on_inputs:
        return [lake_asset(i.dataset) for i in spec.inputs.values()]
    return refresh.schedule


def dag_params(spec: AnalyticsSpec) -> dict[str, Param]:
    params = {
        "work_order_id": Param(spec.work_order, type="string", description="工单 of the deliverable"),
        "parameters": Param(dict(spec.parameters), type="object",
                            description="the logic's parameters (the spec's defaults, overridable)"),
    }  # fmt: skip
    if spec.refresh is not None and spec.refresh.mode == "manual":
        params["manual_refresh"] = Param(
            False, type="boolean", description="a manual refresh of the report (billed x factor)"
        )
        params["refresh_work_order_id"] = Param(
            spec.refresh.work_order, type="string", description="工单 a manual refresh is billed against"
        )
    return params


def _doc(spec: AnalyticsSpec) -> str:
    lines = dif.delivery_lines(spec)
    billed = "; ".join(f"{line.quantity} {line.unit} at difficulty {line.difficulty} ({line.basis}) "
                       f"against `{line.work_order}`" for line in lines)  # fmt: skip
    inputs = "\n".join(f"  * `{v}`: `{i.dataset}` ({i.domain})" for v, i in spec.inputs.items())
    return (
        f"### {spec.title}\n\n{spec.description}\n\n* **Kind**: {spec.kind} (item {dif.ITEMS[spec.kind]}), "
        f"requested by {spec.department}\n* **Inputs**:\n{inputs}\n"
        f"* **Outputs**: {', '.join(spec.outputs)} -> `analytics/{spec.name}/<output>/version=<run>` and "
        f"`govops.analytics_result`\n* **Billed once per work order**: {billed}\n"
        f"* Generated from `include/analytics/{spec.name}.yaml` by `govops.analytics.dags`."
    )


def build_dag(spec: AnalyticsSpec) -> DAG:
    if spec.kind not in BUILT_KINDS:
        raise SpecError(
            f"{spec.name}: kind {spec.kind}: no DAG yet (its deliverables are not built); kinds built: "
            + ", ".join(BUILT_KINDS)
        )
    spec_json = spec.model_dump_json()
    with DAG(
        dag_id=spec.dag_id,
        schedule=schedule_of(spec),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=_doc(spec),
        tags=service_tags(dif.ITEMS[spec.kind]),
        default_args=default_args(owner=spec.owner),
        params=dag_params(spec),
    ) as dag:

        @task(task_id="prepare")
        def prepare_task(params: dict | None = None) -> dict:
            with fail_fast():  # a refused work order or difficulty needs a person, not a retry
                return prepare(spec, params or {})

        analyze = SparkJobOperator(
            task_id="analyze",
            job="analyze",
            job_args={
                "spec": spec_json,
                "parameters": "{{ ti.xcom_pull(task_ids='prepare')['parameters'] | tojson }}",
                "version": "{{ run_id }}",
            },
            meter=False,  # commit meters: a deliverable once, not each run
            work_order_id="{{ ti.xcom_pull(task_ids='prepare')['work_order_id'] }}",
            department=spec.department,
        )

        outlets = [lake_asset(f"analytics/{spec.name}/{name}") for name in spec.outputs]

        @task(task_id="commit", outlets=outlets)
        def commit_task(manifest: dict, prepared: dict, dag_run: Any = None) -> dict:
            run_type = getattr(dag_run.run_type, "value", str(dag_run.run_type)) if dag_run else "manual"
            with fail_fast():  # e.g. an idempotency conflict in the ledger
                return commit(spec, manifest, prepared, run_type)

        prepared = prepare_task()
        prepared >> analyze
        committed = commit_task(analyze.output, prepared)

        if spec.kind == "report":

            @task(task_id="report")
            def report_task(manifest: dict, committed: dict, run_id: str | None = None) -> dict:
                from govops.analytics import report

                written = report.write_report(settings.lake_root(), spec, manifest, run_id=run_id or "")
                print("report: " + ", ".join(written.values()))
                return written

            report_task(analyze.output, committed)
    return dag
