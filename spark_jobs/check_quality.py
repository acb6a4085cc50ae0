"""Quality check (归集端 / 应用端质量检查, items 07 and 08): a Great Expectations suite over a
lake dataset, in a couple of passes (govops.quality.engine), with the anomaly list.

    spark-submit --py-files govops.zip spark_jobs/check_quality.py <contract arguments> \
        --suite include/quality_suites/<name>.json [--input <dataset URI>] \
        [--mode batch|stream] [--anomaly-list on|off]

Batch mode checks the whole dataset once and is metered per table (张). Stream mode checks
only what arrived since the last run: the dataset is read as a Structured Streaming source
with a checkpoint (``availableNow``), each micro-batch is checked as it comes, and the run
is metered per record (万条) from the streaming query's progress. Uniqueness is then judged
within each micro-batch.

Outputs: the anomaly list in the data owner's zone,
<lake>/owner/<department>/quality/<suite>/<run> (one row per failing record and rule: rule,
dimension, severity, column, value, reason, the record as JSON, and the value and record
masked for the report; on a file:// lake readable by its owner only), and the per-rule
figures in the manifest, from which the Airflow task writes the GX validation result, the
data docs, the check log and the report, and then meters the run.
"""

from __future__ import annotations

import json
from typing import Any

from govops.spark import job
from govops.spark.manifest import run_key


def _figures(outcome: Any) -> list[dict[str, Any]]:
    return [{
        "rule": r.rule.name, "type": r.rule.type, "columns": r.rule.columns, "dimension": r.rule.dimension,
        "severity": r.rule.severity, "success": r.success, "element_count": r.element_count,
        "missing_count": r.missing_count, "unexpected_count": r.unexpected_count,
        "observed_value": r.observed_value, "evaluated_by": r.evaluated_by, "exception": r.exception,
        "traceback": r.traceback,
    } for r in outcome.results]  # fmt: skip


def check(ctx: job.JobContext) -> None:
    from govops.quality import engine, owner_zone, suites

    a = ctx.args
    suite = suites.load(a.suite, ctx.lake_root, check_kwargs=False)
    folder = owner_zone.suite_folder(suite)
    source = a.input or f"{ctx.lake_root}/{suite.dataset}"
    figures: dict[str, Any] = {"suite": suite.name, "suite_sha256": suite.sha256, "dataset": suite.dataset,
                               "side": suite.side, "mode": a.mode}  # fmt: skip
    with ctx.timed("check_s"):
        if a.mode == "batch":
            key = run_key(a.dag_id, a.run_id, a.task_id, a.map_index).replace("/", "__")
            folder = f"{folder}/{key}"
            staged = None if a.anomaly_list == "off" else ctx.staged_output(owner_zone.ZONE, folder)
            outcome = engine.evaluate(ctx.spark.read.parquet(source), suite, staged.staging if staged else None)
            figures.update(rows=outcome.rows, results=_figures(outcome), anomaly_rows=outcome.anomaly_rows,
                           anomalies_written=outcome.anomalies_written, by_gx=outcome.by_gx, passes=outcome.passes)
            if staged is not None:
                listed = ctx.spark.read.parquet(staged.staging).count()
                if listed != outcome.anomalies_written:
                    raise RuntimeError(f"{suite.name}: the anomaly list holds {listed} rows, the rules counted "
                                       f"{outcome.anomalies_written}")  # fmt: skip
                staged.commit({"run": ctx.run, "rows": listed})
                figures["anomalies"] = staged.target
        else:
            folder = f"{folder}/stream"
            figures.update(_stream(ctx, suite))
        if figures.get("anomalies"):
            owner_zone.restrict(ctx.lake_root, folder)
    rows = figures["rows"]
    ctx.counts.update(read=rows, written=rows, rejected=0)
    ctx.inputs.append({"kind": "parquet", "uri": source, "rows": rows})
    ctx.outputs.append({"kind": "quality", **figures})
    if a.mode == "batch":  # 张: one table checked, its rows for the record
        ctx.metering.append({"service_item": suite.service_item, "unit": "table", "quantity": 1, "records": rows,
                             "data_source": suite.dataset})  # fmt: skip
    elif figures["batches"]:  # 万条: the records of the batches checked
        ctx.metering.append({
            "service_item": suite.service_item, "unit": "record", "quantity": rows, "records": rows,
            "data_source": suite.dataset, "attributes": {"stream_id": figures["stream_id"],
            "stream_batch_from": figures["batches"][0], "stream_batch_to": figures["batches"][-1]},
        })  # fmt: skip


def _stream(ctx: job.JobContext, suite: Any) -> dict[str, Any]:
    """Check each micro-batch that arrived since the last run, as it comes; the run reports
    (and meters) every recorded batch above --metered-through, so a batch that a killed run
    checked but never metered is metered once, by the next run."""
    from govops.pipelines import stream
    from govops.quality import engine, owner_zone

    a = ctx.args
    name = f"quality/{suite.name}"
    source = a.input or f"{ctx.lake_root}/{suite.dataset}"
    checkpoint, records_dir = stream.checkpoint_uri(ctx.lake_root, name), stream.records_uri(ctx.lake_root, name)
    anomalies_root = owner_zone.uri(ctx.lake_root, f"{owner_zone.suite_folder(suite)}/stream")
    metered_through = -1 if a.metered_through in (None, "") else int(a.metered_through)
    meter_through = None if a.meter_through in (None, "") else int(a.meter_through)
    progress: dict[int, int] = {}

    def per_batch(batch: Any, batch_id: int) -> None:
        # A replayed batch (same offsets, after a kill) overwrites its own anomalies and record.
        target = None if a.anomaly_list == "off" else f"{anomalies_root}/batch={batch_id}"
        batch.persist()  # the group-bys and the main pass read the micro-batch once
        try:
            outcome = engine.evaluate(batch, suite, target)
        finally:
            batch.unpersist()
        ctx.fs.write_text(f"{records_dir}/{stream.record_name(batch_id)}", json.dumps({
            "batch_id": batch_id, "rows": outcome.rows, "anomaly_rows": outcome.anomaly_rows,
            "anomalies_written": outcome.anomalies_written, "results": _figures(outcome), "by_gx": outcome.by_gx,
        }, default=str))  # fmt: skip

    if meter_through is None:  # a re-run of a metered run only reports its batches again
        schema = ctx.spark.read.parquet(source).schema
        query = (ctx.spark.readStream.schema(schema).parquet(source).writeStream.foreachBatch(per_batch)
                 .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())  # fmt: skip
        query.awaitTermination()
        reports = [json.loads(p.json) for p in query.recentProgress]
        progress = {int(p["batchId"]): int(p["numInputRows"]) for p in reports if p["numInputRows"]}
    records = [json.loads(ctx.fs.read_text(f"{records_dir}/{n}")) for n in ctx.fs.list_names(records_dir)
               if n.endswith(".json") and int(n.split(".")[0]) > metered_through
               and (meter_through is None or int(n.split(".")[0]) <= meter_through)]  # fmt: skip
    ids = [r["batch_id"] for r in records]
    last = meter_through if meter_through is not None else max(ids, default=-1)
    if ids != list(range(metered_through + 1, last + 1)):
        raise RuntimeError(f"{records_dir}: batch records {ids} above {metered_through}, expected up to {last}")
    unrecorded = sorted(set(progress) - set(ids) - set(range(metered_through + 1)))
    if unrecorded:  # every batch the query ran has its record (progress counts each read of a
        # micro-batch, so its numInputRows is not the batch's size once a check reads it twice)
        raise RuntimeError(f"{suite.name}: batches {unrecorded} ran but left no record in {records_dir}")
    totals: dict[str, dict[str, Any]] = {}
    for r in records:
        for figure in r["results"]:
            seen = totals.setdefault(figure["rule"], {**figure, "element_count": 0, "missing_count": 0,
                                                      "unexpected_count": 0, "success": True})  # fmt: skip
            for field in ("element_count", "missing_count", "unexpected_count"):
                seen[field] += figure[field]
            seen["success"] = seen["success"] and figure["success"]
            seen["observed_value"] = figure["observed_value"]
    return {
        "rows": sum(r["rows"] for r in records), "batches": ids, "results": list(totals.values()),
        "anomaly_rows": sum(r["anomaly_rows"] or 0 for r in records),
        "anomalies_written": sum(r["anomalies_written"] or 0 for r in records),
        "by_gx": records[-1]["by_gx"] if records else [],
        "anomalies": None if a.anomaly_list == "off" else anomalies_root,
        "stream_id": stream.checkpoint_stream_id(ctx.fs, checkpoint),
    }  # fmt: skip


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--suite", required=True, help="the suite file (GX JSON) or its name under include/quality_suites")
    p.add_argument("--input", default=None, help="the dataset URI (default: <lake>/<the suite's dataset>)")
    p.add_argument("--mode", choices=("batch", "stream"), default="batch")
    p.add_argument("--anomaly-list", choices=("on", "off"), default="on", help="off: the figures only")
    p.add_argument("--metered-through", default=None, help="stream mode: the highest batch the ledger holds")
    p.add_argument("--meter-through", default=None, help="stream mode, a re-run: the last batch it metered")
    job.run("check_quality", p, check)


if __name__ == "__main__":
    main()
