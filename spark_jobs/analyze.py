"""Application services (items 14-18): run one analytics spec's logic over lake datasets and
publish each output as a new version.

    spark-submit --py-files govops.zip spark_jobs/analyze.py <contract arguments> \
        --spec '<spec JSON>' --parameters '<JSON>' --version <run label>

Each input ``<lake>/<dataset>`` (Parquet) becomes a temporary view named after its key in
the spec; its version (the commit marker of the run that published it), rows, files and
bytes go in the manifest. Each output is the spec's Spark SQL (parameters bound as
``:name``, never pasted into the text) or the output of the spec's module; it must have
exactly the declared columns. Outputs go to
``<lake>/analytics/<spec>/<output>/version=<run label>``, staged and published, counted and
checksummed in the pass that writes them. Counts: read = written = the input rows the
logic read (an aggregate uses them all); the outputs' own rows are in ``outputs``. The
Airflow task meters (a deliverable is billed once, not per run), so ``metering`` is empty.
A fusion or mining model (govops.analytics.models) adds its result and evaluation outputs,
and a mining model its fitted MLlib pipeline (``<output dir>/_model/version=<run label>``,
``kind: mllib_model``); a model below a floor of its spec fails the job.
"""

from __future__ import annotations

import importlib
import json

from govops.spark import job
from govops.spark.lake import COMMIT_MARKER
from govops.spark.manifest import _safe


def analyze(ctx: job.JobContext) -> None:
    from pyspark.sql import Observation

    from govops.analytics.runs import AnalyticsError
    from govops.analytics.spec import parse_spec

    spec = parse_spec(ctx.args.spec)
    parameters = json.loads(ctx.args.parameters or "{}")
    read_rows = 0
    views = {}
    for view, source in spec.inputs.items():
        uri = f"{ctx.lake_root}/{source.dataset}"
        if not ctx.fs.exists(uri):
            raise AnalyticsError(f"{spec.name}: input {view}: no dataset {source.dataset} in the lake ({uri})")
        marker = f"{uri}/{COMMIT_MARKER}"
        version = json.loads(ctx.fs.read_text(marker)) if ctx.fs.exists(marker) else None
        df = ctx.spark.read.parquet(uri)
        df.createOrReplaceTempView(view)
        views[view] = df
        with ctx.timed(f"count_{view}_s"):
            rows = df.count()
        files, size = ctx.fs.size(uri)
        read_rows += rows
        ctx.inputs.append({"name": view, "kind": "parquet", "dataset": source.dataset, "domain": source.domain,
                           "uri": uri, "rows": rows, "files": files, "bytes": size, "version": version})  # fmt: skip

    if spec.module:
        produced = importlib.import_module(spec.module).run(ctx.spark, views, parameters)
    else:
        produced = {name: ctx.spark.sql(out.sql, args=parameters) for name, out in spec.outputs.items() if out.sql}
    if spec.model is not None:  # evaluated (and refused below a floor) before anything is written
        from govops.analytics import models

        with ctx.timed("model_s"):
            made, fitted = models.run(ctx.spark, spec, produced[spec.model.table])
        produced.update(made)
        if fitted is not None:
            staged = ctx.staged_output("analytics", f"{spec.name}/_model/version={_safe(ctx.args.version)}")
            fitted.write().overwrite().save(staged.staging)
            staged.commit({"run": ctx.run, "spec": spec.name, "algorithm": spec.model.algorithm})
            ctx.outputs.append({"name": "_model", "kind": "mllib_model", "uri": staged.target})
    for name, out in spec.outputs.items():
        if name not in produced:
            raise AnalyticsError(f"{spec.name}: output {name}: the logic did not produce it")
        df = produced[name]
        declared = list(out.columns)
        if sorted(df.columns) != sorted(declared):
            raise AnalyticsError(
                f"{spec.name}: output {name}: columns {sorted(df.columns)} differ from the declared {sorted(declared)}"
            )
        observed = Observation(f"out_{name}")
        selected = df.select(*declared)
        df = selected.observe(observed, *job.checksum_columns(selected, declared))
        staged = ctx.staged_output("analytics", f"{spec.name}/{name}/version={_safe(ctx.args.version)}")
        with ctx.timed(f"write_{name}_s"):
            df.coalesce(1).write.mode("overwrite").parquet(staged.staging)
        figures = observed.get
        rows = int(figures["rows"])
        staged.commit({"run": ctx.run, "rows": rows, "spec": spec.name, "output": name})
        ctx.outputs.append({"name": name, "kind": "parquet", "uri": staged.target, "rows": rows,
                            "columns": declared, "checksum": job.checksum_value(figures["hash_sum"]),
                            "checksum_algorithm": job.CHECKSUM_ALGORITHM})  # fmt: skip
    ctx.counts.update(read=read_rows, written=read_rows, rejected=0)


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--spec", required=True, help="the analytics spec as JSON (govops.analytics.spec)")
    p.add_argument("--parameters", default="{}", help="the run's parameters as a JSON object")
    p.add_argument("--version", required=True, help="the version label of the outputs (the run's)")
    job.run("analyze", p, analyze)


if __name__ == "__main__":
    main()
