"""Turn a pipeline spec into a DAG: prepare -> extract (Spark) -> commit.

prepare refuses a bad work order, records the source in the inventory, removes load
partitions of runs that never committed, and hands the committed watermark to the job.
commit meters the job's manifest, writes the run log, advances the watermark and (item
01) the catalog entry, all in one transaction, after the job published its output: a
run killed anywhere before that commit leaves no usage and no watermark behind, and
the next run reads its rows again. Nothing here touches a database at parse time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from govops import chain, settings
from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator
from govops.pipelines.cleansing import null_watermark_reason
from govops.pipelines.spec import EXTRACTION_ITEMS, PipelineSpec, SpatialSource, StreamSource


def _engine():  # -> sqlalchemy.Engine
    from sqlalchemy import create_engine

    return create_engine(settings.connection_url(settings.LEDGER_CONN_ID))


def prepare(
    spec: PipelineSpec, work_order_id: str, run_id: str, interval: tuple[Any, Any] = (None, None)
) -> dict[str, Any]:
    """What the run reads and meters. A run of a data interval that a committed run of the
    pipeline already delivered (a manual trigger for a past date, ``airflow dags test`` with
    the same logical date) is a re-run of that run under another id: the same range, its
    load partition, and metered with quantity 0 (``rerun_of``). A run without a logical date
    has no interval and is its own delivery."""
    from sqlalchemy import text

    from govops.settlement.workorders import require_runnable

    source = spec.source
    engine = _engine()
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    """INSERT INTO govops.extraction_inventory (pipeline, description, service_item_code, department,
                           source_kind, database_type, database_name, source_object, frequency, mode, target_dataset)
                       VALUES (:p, :d, :i, :dep, :k, :dt, :dn, :o, :f, :m, :t)
                       ON CONFLICT (pipeline) DO UPDATE SET description = EXCLUDED.description,
                           service_item_code = EXCLUDED.service_item_code, department = EXCLUDED.department,
                           source_kind = EXCLUDED.source_kind, database_type = EXCLUDED.database_type,
                           database_name = EXCLUDED.database_name, source_object = EXCLUDED.source_object,
                           frequency = EXCLUDED.frequency, mode = EXCLUDED.mode,
                           target_dataset = EXCLUDED.target_dataset, updated_at = now()"""
                ),
                {
                    "p": spec.pipeline, "d": spec.description, "i": spec.service_item, "dep": spec.department,
                    "k": source.kind, **dict(zip(("dt", "dn", "o"), inventory_source(spec), strict=True)),
                    "f": spec.schedule or "manual", "m": spec.mode, "t": spec.target.dataset,
                },
            )  # fmt: skip
            state = conn.execute(
                text("SELECT watermark, first_run_id, loads FROM govops.extraction_state WHERE pipeline = :p"),
                {"p": spec.pipeline},
            ).first()
            committed = conn.execute(
                text("SELECT run_id, dag_id, watermark_from, watermark_to, rejects_uri, rejected_by_reason, "
                     "data_interval_start, data_interval_end, rerun_of, onboarding, work_order_id "
                     "FROM govops.extraction_run WHERE pipeline = :p ORDER BY id"), {"p": spec.pipeline}
            ).all()  # fmt: skip
            onboarding = collection_kind(conn, spec, run_id) if spec.service_item == "01" else None
    finally:
        engine.dispose()
    # The committed run that first delivered this run's interval (streams take what arrived:
    # they have no interval of their own).
    start, end = interval
    original = next((r for r in committed if start is not None and spec.mode != "stream" and r.rerun_of is None
                     and (r.data_interval_start, r.data_interval_end) == (start, end) and r.run_id != run_id),
                    None)  # fmt: skip
    if original is not None:
        onboarding = original.onboarding
        if work_order_id == spec.work_order and original.work_order_id:
            work_order_id = original.work_order_id  # the order the delivery was metered against
    elif onboarding == "refresh" and spec.refresh_work_order and work_order_id == spec.work_order:
        work_order_id = spec.refresh_work_order  # the default order of refreshes, unless one was given
    require_runnable(work_order_id, spec.service_item, EXTRACTION_ITEMS[spec.service_item])
    if spec.mode == "incremental":
        _remove_uncommitted_loads(spec, {r.run_id for r in committed} | {run_id})
    # A re-run of a committed incremental run reads that run's range again, no more: the
    # same rows, the same metering, and the committed watermark stays where it is.
    again = (next((r for r in committed if r.run_id == run_id), None) or original) \
        if spec.mode == "incremental" else None  # fmt: skip
    null = null_watermark_reason(spec.watermark.column) if spec.watermark else None
    null_rejects = [r.rejects_uri for r in committed if null and null in (r.rejected_by_reason or {})
                    and r.run_id not in (run_id, again.run_id if again else None) and r.rejects_uri]  # fmt: skip
    return {
        "watermark_from": again.watermark_from if again else (state.watermark if state else None),
        "watermark_to": again.watermark_to if again else None,
        "rerun_of_committed": again is not None,
        "rerun_of": original.run_id if original is not None else None,
        "load_id": original.run_id if original is not None else run_id,
        "null_rejects": null_rejects,
        "data_interval": [t.isoformat() if t else None for t in interval],
        "first_load": state is None or state.loads == 0 or state.first_run_id == run_id,
        "work_order_id": work_order_id,
        "onboarding": onboarding,
        **(stream_plan(spec, run_id, work_order_id) if isinstance(spec.source, StreamSource) else {}),
    }


def stream_plan(spec: PipelineSpec, run_id: str, work_order_id: str) -> dict[str, Any]:
    """Stream pipelines (item 02): which micro-batches the extract meters, from the ledger
    (govops.pipelines.stream.metering_plan) and the checkpoint's stream id."""
    from govops.pipelines import stream

    stream_id = stream.stream_id(settings.lake_root(), spec.pipeline)
    engine = _engine()
    try:
        with engine.connect() as conn:
            return stream.metering_plan(conn, f"pipeline_{spec.pipeline}", run_id, stream_id, work_order_id)
    finally:
        engine.dispose()


def stream_job_args() -> dict[str, str]:
    """extract_stream's arguments: prepare's stream_plan (None as an empty argument) and the
    trigger from the DAG param continuous_seconds."""
    args = {"metered-through": "metered_through", "meter-through": "meter_through", "stream-id": "stream_id"}
    pull = "ti.xcom_pull(task_ids='prepare')"
    return {
        **{arg: f"{{{{ '' if {pull}['{key}'] is none else {pull}['{key}'] }}}}" for arg, key in args.items()},
        "trigger": "{{ 'continuous' if params.continuous_seconds else 'available-now' }}",
        "run-seconds": "{{ params.continuous_seconds }}",
    }


def collection_kind(conn: Any, spec: PipelineSpec, run_id: str) -> str:
    """'new' for the run that onboards a dataset (and its retries), 'refresh' (保鲜) after."""
    from sqlalchemy import text

    first = conn.execute(
        text("SELECT first_run_id FROM govops.data_catalog WHERE dataset = :d"), {"d": catalog_dataset(spec)}
    ).scalar()
    return "new" if first is None or first == run_id else "refresh"


def catalog_dataset(spec: PipelineSpec) -> str:
    return f"{spec.target.zone}/{spec.target.dataset}"


def register_in_catalog(conn: Any, spec: PipelineSpec, output: dict[str, Any], run_id: str) -> None:
    """Upsert the dataset's catalog entry (编目) with the schema the load produced."""
    import json

    from sqlalchemy import text

    entry = spec.catalog
    assert entry is not None  # the spec requires it for item 01
    schema = [{"name": name, "type": kind, "description": entry.columns.get(name, "")}
              for name, kind in (output.get("schema") or {}).items() if not name.startswith("_govops")]  # fmt: skip
    database_type, _, source_object = inventory_source(spec)
    conn.execute(
        text(
            """INSERT INTO govops.data_catalog (dataset, name, provider_department, source_system, database_type,
                   source_object, schema, update_frequency, share_type, open_type, classification, pipeline,
                   first_run_id, records)
               VALUES (:ds, :n, :dep, :sys, :dt, :o, CAST(:schema AS jsonb), :f, :sh, :op, :c, :p, :run, :rows)
               ON CONFLICT (dataset) DO UPDATE SET name = EXCLUDED.name,
                   provider_department = EXCLUDED.provider_department, source_system = EXCLUDED.source_system,
                   database_type = EXCLUDED.database_type, source_object = EXCLUDED.source_object,
                   schema = EXCLUDED.schema, update_frequency = EXCLUDED.update_frequency,
                   share_type = EXCLUDED.share_type, open_type = EXCLUDED.open_type,
                   classification = EXCLUDED.classification, pipeline = EXCLUDED.pipeline, records = EXCLUDED.records,
                   refreshed_at = CASE WHEN data_catalog.first_run_id = :run THEN data_catalog.refreshed_at
                                       ELSE now() END,
                   refreshes = data_catalog.refreshes + CASE WHEN data_catalog.first_run_id = :run THEN 0 ELSE 1 END,
                   updated_at = now()"""
        ),
        {"ds": catalog_dataset(spec), "n": entry.name, "dep": spec.department, "sys": entry.source_system,
         "dt": database_type, "o": source_object, "schema": json.dumps(schema, ensure_ascii=False),
         "f": entry.update_frequency, "sh": entry.share_type, "op": entry.open_type, "c": entry.classification,
         "p": spec.pipeline, "run": run_id, "rows": output["rows"]},
    )  # fmt: skip


def _remove_uncommitted_loads(spec: PipelineSpec, keep_runs: set[str]) -> list[str]:
    """A load partition whose run never committed would duplicate the rows the next load
    reads again: remove it before loading."""
    from pyarrow import fs as pafs

    from govops.spark.manifest import _safe

    root = f"{settings.lake_root()}/{spec.target.zone}/{spec.target.dataset}"
    filesystem, path = pafs.FileSystem.from_uri(root)
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    keep = {_safe(r) for r in keep_runs}
    removed = []
    for info in filesystem.get_file_info(pafs.FileSelector(path)):
        name = info.base_name
        uncommitted = name.startswith("load=") and name[len("load=") :] not in keep
        if info.type == pafs.FileType.Directory and uncommitted:
            filesystem.delete_dir(info.path)
            removed.append(name)
    return removed


def commit(spec: PipelineSpec, manifest: dict[str, Any], prepared: dict[str, Any]) -> dict[str, Any]:
    import json
    import time

    from sqlalchemy import text

    from govops.ledger.usage import TaskRef, meter_manifest

    output, rejects = manifest["outputs"][0], manifest["outputs"][1]
    counts, run = manifest["counts"], manifest["run"]
    rerun_of = prepared.get("rerun_of")
    if rerun_of:
        # The interval's delivery was metered by its first run: this one records its
        # records with quantity 0, and says which run it repeated.
        manifest = {**manifest, "metering": [
            {**m, "quantity": 0, "attributes": {**(m.get("attributes") or {}), "rerun_of": rerun_of}}
            for m in manifest["metering"]]}  # fmt: skip
    interval = prepared.get("data_interval") or [None, None]
    watermark_from = prepared["watermark_from"]
    new_mark = output.get("watermark") or watermark_from
    engine = _engine()
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    """INSERT INTO govops.extraction_run (pipeline, dag_id, run_id, status, target_uri, rejects_uri,
                           read, written, rejected, rejected_by_reason, watermark_from, watermark_to, manifest_uri,
                           onboarding, work_order_id, data_interval_start, data_interval_end, rerun_of)
                       VALUES (:p, :dag, :run, 'committed', :t, :r, :read, :w, :rej, CAST(:why AS jsonb), :wf, :wt, :m,
                           :onb, :wo, :ds, :de, :ro)
                       ON CONFLICT (pipeline, dag_id, run_id) DO UPDATE SET target_uri = EXCLUDED.target_uri,
                           rejects_uri = EXCLUDED.rejects_uri, read = EXCLUDED.read, written = EXCLUDED.written,
                           rejected = EXCLUDED.rejected, rejected_by_reason = EXCLUDED.rejected_by_reason,
                           watermark_from = EXCLUDED.watermark_from, watermark_to = EXCLUDED.watermark_to,
                           manifest_uri = EXCLUDED.manifest_uri, onboarding = EXCLUDED.onboarding,
                           work_order_id = EXCLUDED.work_order_id, data_interval_start = EXCLUDED.data_interval_start,
                           data_interval_end = EXCLUDED.data_interval_end, rerun_of = EXCLUDED.rerun_of,
                           finished_at = now()"""
                ),
                {"p": spec.pipeline, "dag": run["dag_id"], "run": run["run_id"], "t": output["uri"],
                 "r": rejects["uri"], "read": counts["read"], "w": counts["written"], "rej": counts["rejected"],
                 "why": json.dumps(rejects.get("reasons") or {}, ensure_ascii=False), "wf": watermark_from,
                 "wt": new_mark, "m": manifest["manifest_uri"], "onb": prepared.get("onboarding"),
                 "wo": prepared.get("work_order_id"), "ds": interval[0], "de": interval[1], "ro": rerun_of},
            )  # fmt: skip
            if spec.service_item == "01":
                register_in_catalog(conn, spec, output, rerun_of or run["run_id"])
            # Metered here, in the transaction that commits the load: a run abandoned before
            # its commit has metered nothing, so the next run's re-read is not billed twice.
            metering_started = time.perf_counter()
            meter_manifest(
                conn, manifest,
                TaskRef(run["dag_id"], run["run_id"], run["task_id"], run.get("map_index", -1), run.get("try_number")),
                work_order_id=prepared["work_order_id"], department=spec.department,
                manifest_uri=manifest["manifest_uri"],
            )  # fmt: skip
            metering_s = time.perf_counter() - metering_started
            conn.execute(
                text(
                    """INSERT INTO govops.extraction_state (pipeline, watermark, first_run_id, loads, committed_at)
                       VALUES (:p, :w, :run, 1, now())
                       ON CONFLICT (pipeline) DO UPDATE SET watermark = CASE WHEN :rerun
                           THEN govops.extraction_state.watermark ELSE EXCLUDED.watermark END,
                           loads = (SELECT count(*) FROM govops.extraction_run WHERE pipeline = :p),
                           committed_at = now()"""
                ),
                {"p": spec.pipeline, "w": new_mark, "run": run["run_id"],
                 "rerun": bool(prepared.get("rerun_of_committed"))},
            )
    finally:
        engine.dispose()
    return {"pipeline": spec.pipeline, **counts, "watermark": new_mark, "metering_s": round(metering_s, 4)}


def jdbc_connection(spec: PipelineSpec) -> str | None:
    """The Airflow connection of a database source, or None for files."""
    return spec.source.connection if spec.source.kind in ("jdbc", "jdbc_capture") else None


def inventory_source(spec: PipelineSpec) -> tuple[str, str | None, str]:
    """(database type, database, table or path) as the extraction inventory lists them."""
    s = spec.source
    if s.kind == "jdbc":
        return "PostgreSQL", s.connection, s.table or s.query
    if s.kind == "jdbc_capture":
        return "PostgreSQL", s.connection, s.table
    if s.kind == "kafka":
        return "Kafka", s.bootstrap_servers, s.topic
    return f"file ({getattr(s, 'format', s.kind)})", None, s.path


def job_for(spec: PipelineSpec) -> str:
    """The program in spark_jobs/ that runs this kind of source."""
    if isinstance(spec.source, StreamSource):
        return "extract_stream"
    if isinstance(spec.source, SpatialSource):
        return "extract_spatial"
    return "extract"


def dag_params(spec: PipelineSpec) -> dict[str, Param]:
    params = {"work_order_id": Param(spec.work_order, type="string", description="工单 to meter against")}
    if isinstance(spec.source, StreamSource):
        # A run takes what has arrived and stops; a run with continuous_seconds keeps a
        # one-second trigger that long, for second-level latency. max_active_runs=1 queues
        # the schedule's runs behind it, so one query at a time uses the checkpoint.
        params["continuous_seconds"] = Param(
            0, type="integer", minimum=0, description="0: the new data, then stop; N: run continuously N seconds"
        )
    return params


def build_dag(spec: PipelineSpec, spec_json: str) -> DAG:
    what = inventory_source(spec)[2]
    doc = (
        f"### {spec.pipeline}\n\n{spec.description}\n\n"
        f"* **Source**: {spec.source.kind} `{what}`"
        f" ({spec.department})\n* **Target**: `{spec.target.zone}/{spec.target.dataset}`, mode {spec.mode}\n"
        f"* **Metered**: item {spec.service_item}; default work order `{spec.work_order}`\n"
        f"* Generated from `include/pipelines/{spec.pipeline}.yaml` by `govops.pipelines.factory`."
    )
    with DAG(
        dag_id=f"pipeline_{spec.pipeline}",
        schedule=spec.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=doc,
        tags=service_tags(spec.service_item),
        default_args=default_args(owner=spec.owner),
        params=dag_params(spec),
    ) as dag:

        @task(task_id="prepare")
        def prepare_task(params: dict | None = None, run_id: str | None = None,
                         data_interval_start: datetime | None = None,
                         data_interval_end: datetime | None = None) -> dict:  # fmt: skip
            with fail_fast():  # a refused work order needs a person, not a retry
                return prepare(spec, params["work_order_id"], run_id, (data_interval_start, data_interval_end))

        job_args: dict[str, Any] = {"spec": spec_json}
        if job_for(spec) == "extract":  # streams keep offsets in their checkpoint; spatial loads are snapshots
            job_args["watermark-from"] = "{{ ti.xcom_pull(task_ids='prepare')['watermark_from'] or '' }}"
            job_args["watermark-to"] = "{{ ti.xcom_pull(task_ids='prepare')['watermark_to'] or '' }}"
            job_args["first-load"] = "{{ 'true' if ti.xcom_pull(task_ids='prepare')['first_load'] else 'false' }}"
            job_args["load-id"] = "{{ ti.xcom_pull(task_ids='prepare')['load_id'] }}"
            job_args["null-rejects"] = "{{ ti.xcom_pull(task_ids='prepare')['null_rejects'] | tojson }}"
        if spec.service_item == "01":
            job_args["onboarding"] = "{{ ti.xcom_pull(task_ids='prepare')['onboarding'] }}"
        if isinstance(spec.source, StreamSource):
            job_args.update(stream_job_args())
        if jdbc_connection(spec) is None:
            job_args["landing-root"] = settings.landing_root()
        extract = SparkJobOperator(
            task_id="extract",
            job=job_for(spec),
            job_args=job_args,
            jdbc_conn_id=jdbc_connection(spec),
            meter=False,  # commit meters, with the load
            work_order_id="{{ ti.xcom_pull(task_ids='prepare')['work_order_id'] }}",
            department=spec.department,
        )

        published = chain.asset(catalog_dataset(spec))

        # The commit publishes the dataset as an Asset: its event starts the governance chain.
        @task(task_id="commit", outlets=[published])
        def commit_task(manifest: dict, prepared: dict, outlet_events=None) -> dict:
            with fail_fast():  # e.g. an idempotency conflict in the ledger
                done = commit(spec, manifest, prepared)
            outlet_events[published].extra = chain.publication(
                catalog_dataset(spec), settings.lake_root(), dag_id=manifest["run"]["dag_id"],
                run_id=manifest["run"]["run_id"], rows=manifest["counts"]["written"])  # fmt: skip
            return done

        prepared = prepare_task()
        prepared >> extract
        commit_task(extract.output, prepared)
    return dag
