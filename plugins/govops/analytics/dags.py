"""Turn an analytics spec into a DAG ``analytics_<name>``: prepare -> analyze (Spark)
[-> report | documents | pages] -> commit.

prepare refuses a work order that is not open, is for another item, or whose difficulty is
not the one the spec gives, and resolves the run's parameters. analyze runs
``spark_jobs/analyze.py``. Then the kind's files: report (the page, the workbook and the data
files), documents (a model's design document and test report) or pages (a dashboard's
screens). commit records the run (parameters, input versions, outputs, files) and its result
rows in PostgreSQL and meters it, once per deliverable (govops.analytics.runs), and emits
each output's Asset. The schedule of a spec refreshed on its inputs is the inputs' Assets as
the governance chain names them, so the runs that publish those datasets trigger it. Nothing
here touches a database or the lake at parse time.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, AssetAny, Param, task

from govops import chain, settings
from govops.analytics import difficulty as dif
from govops.analytics.spec import AnalyticsSpec
from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator


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


def commit(spec: AnalyticsSpec, manifest: dict[str, Any], prepared: dict[str, Any], run_type: str,
           files: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    from govops.analytics import runs

    engine = _engine()
    try:
        result = runs.commit(engine, spec, manifest, prepared, run_type=run_type, files=files)
    finally:
        engine.dispose()
    print(f"{spec.name}: {result['billing']}, rows {result['rows']}, usage events {result['usage_event_ids']}")
    return result


def schedule_of(spec: AnalyticsSpec) -> Any:
    refresh = spec.refresh
    if refresh is None or refresh.mode == "manual":
        return None
    if refresh.on_inputs:
        # Any input's new version (not all of them): the Assets their publishers emit
        return AssetAny(*dict.fromkeys(chain.asset(i.dataset) for i in spec.inputs.values()))
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


DELIVERABLE_TASKS = {"report": "report", "fusion_model": "documents", "mining_model": "documents",
                     "dashboard": "pages"}  # fmt: skip


def output_assets(spec: AnalyticsSpec) -> dict[str, Any]:
    """The Asset of each output's lake dataset (``analytics/<name>/<output>``), named as the
    governance chain names every lake dataset (govops.chain.asset)."""
    return {name: chain.asset(f"analytics/{spec.name}/{name}") for name in spec.outputs}


def publication(spec: AnalyticsSpec, output: dict[str, Any], manifest: dict[str, Any], billing: str) -> dict[str, Any]:
    """An output's asset event ``extra``, as the chain's: the dataset, its version (the digest
    of this run's commit marker, ``govops.quality.promotion.version``) and the run's figures."""
    from govops.quality.promotion import version

    lake = settings.lake_root()
    written = output["uri"].removeprefix(f"{lake}/")  # analytics/<name>/<output>/version=<run>
    return {"dataset": f"analytics/{spec.name}/{output['name']}", "version": version(lake, written),
            "uri": output["uri"], "rows": output["rows"], "run_id": manifest["run"]["run_id"],
            "billing": billing}  # fmt: skip


def deliver(spec: AnalyticsSpec, manifest: dict[str, Any], run_id: str) -> dict[str, str]:
    """Write the kind's files (report, model documents or dashboard pages); their URIs."""
    lake = settings.lake_root()
    if spec.kind == "report":
        from govops.analytics import report

        return report.write_report(lake, spec, manifest, run_id=run_id)
    if spec.kind == "dashboard":
        from govops.analytics import dashboards

        return dashboards.write_dashboard(lake, spec, manifest, run_id=run_id)
    from govops.analytics import documents

    return documents.write_model_documents(lake, spec, manifest, run_id=run_id)


def build_dag(spec: AnalyticsSpec) -> DAG:
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
        prepared = prepare_task()
        prepared >> analyze

        written: Any = {}
        if spec.kind in DELIVERABLE_TASKS:
            # The files are written before commit meters: what is billed has been delivered.
            @task(task_id=DELIVERABLE_TASKS[spec.kind])
            def deliver_task(manifest: dict, run_id: str | None = None) -> dict:
                files = deliver(spec, manifest, run_id or "")
                print(f"{spec.kind}: " + ", ".join(files.values()))
                return files

            written = deliver_task(analyze.output)

        assets = output_assets(spec)

        @task(task_id="commit", outlets=list(assets.values()))
        def commit_task(manifest: dict, prepared: dict, files: dict, dag_run: Any = None,
                        outlet_events: Any = None) -> dict:  # fmt: skip
            run_type = getattr(dag_run.run_type, "value", str(dag_run.run_type)) if dag_run else "manual"
            with fail_fast():  # e.g. an idempotency conflict in the ledger
                done = commit(spec, manifest, prepared, run_type, files)
            for out in manifest["outputs"]:
                if out["name"] in assets and outlet_events is not None:
                    outlet_events[assets[out["name"]]].extra = publication(spec, out, manifest, done["billing"])
            return done

        commit_task(analyze.output, prepared, written)
    return dag
