"""Spatial extraction (空间数据抽取 item 03): vector files or WKT / lon-lat CSV into GeoParquet.

    spark-submit --py-files govops.zip spark_jobs/extract_spatial.py <contract arguments> \
        --spec '<the pipeline spec as JSON>' --landing-root URI [--option chunk_features=N]

The driver reads each file's metadata (features, CRS, attribute schema), settles the
run's one CRS (a file without one takes the spec's; with neither the run fails naming the
file) and cuts the files into (file, feature range) chunks. One Spark task per chunk
(mapInArrow) reads its slice with pyogrio, checks the geometries (govops.pipelines.spatial),
counts their coordinate points and writes its own GeoParquet part and rejects part under
the run's staging directories; a retried task replaces its parts. The driver then reads
the staged output back with Spark for its row count and checksum, checks read = written +
rejected per file and in total, and publishes both directories atomically. Metering:
item 03, the coordinate points of the written geometries.
"""

from __future__ import annotations

from collections import Counter

from govops.pipelines import spatial
from govops.pipelines.readers import resolve, source_files
from govops.pipelines.spec import Cleansing, SpatialSource, parse_spec
from govops.spark import job
from govops.spark.manifest import run_key

CHUNK_FEATURES = 100_000  # features per task; --option chunk_features=N


def extract(ctx: job.JobContext) -> None:
    a = ctx.args
    spec = parse_spec(a.spec)
    source = spec.source
    if not isinstance(source, SpatialSource):
        raise ValueError(f"{spec.pipeline}: extract_spatial runs spatial sources, not {source.kind}")
    if spec.mode != "full" or spec.cleansing != Cleansing():
        raise ValueError(f"{spec.pipeline}: spatial extraction loads full snapshots without cleansing rules")
    key = run_key(a.dag_id, a.run_id, a.task_id, a.map_index)
    out = ctx.staged_output(spec.target.zone, spec.target.dataset)
    rejects = ctx.staged_output("rejects", f"{spec.target.dataset}/{key.replace('/', '__')}")

    with ctx.timed("plan_s"):
        files = [f for f in source_files(ctx, resolve(source.path, a.landing_root)) if spatial.wanted(f, source.format)]
        if not files:
            raise FileNotFoundError(f"{source.path}: no {source.format} files")
        described = [spatial.describe(f, source) for f in files]
        crs = spatial.run_crs(described, source.crs)
        schema = spatial.attribute_schema(described)
        parallelism = ctx.spark.sparkContext.defaultParallelism
        size = int(ctx.options.get("chunk_features", CHUNK_FEATURES))
        chunks = spatial.plan(described, source.format, chunk_features=size, parallelism=parallelism)
    for staged in (out, rejects):
        ctx.fs.mkdirs(staged.staging)
    task = spatial.ChunkJob(source=source.model_dump(), crs=crs.to_json(), schema=schema.serialize().to_pybytes(),
                            output=out.staging, rejects=rejects.staging, run_id=a.run_id)  # fmt: skip
    # One partition per chunk: parallelize slices a list evenly, repartition would not.
    rows = [(c.chunk, c.uri, c.skip, c.count) for c in chunks]
    plan = ctx.spark.createDataFrame(ctx.spark.sparkContext.parallelize(rows, len(rows)),
                                     "chunk long, uri string, skip long, count long")  # fmt: skip
    with ctx.timed("read_write_s"):
        summaries = plan.mapInArrow(lambda b: spatial.extract_batches(b, task), spatial.SUMMARY_DDL).collect()

    with ctx.timed("verify_s"):
        read = sum(s["read"] for s in summaries)
        written = sum(s["written"] for s in summaries)
        rejected = sum(s["rejected"] for s in summaries)
        points = sum(s["points"] for s in summaries)
        repaired = sum(s["repaired"] for s in summaries)
        ctx.counts.update(read=read, written=written, rejected=rejected)
        per_file = Counter[str]()
        for s in summaries:
            per_file[s["uri"]] += s["read"]
        short = [f"{f.uri}: {per_file[f.uri]} of {f.features}" for f in described if per_file[f.uri] != f.features]
        if short or len(summaries) != len(chunks):
            raise RuntimeError(f"{spec.pipeline}: features read differ from the files' counts: {'; '.join(short)}")
        # The staged files themselves, read back: the output's rows and content checksum
        # (one Spark pass), the rejects' reasons (small: pyarrow, no shuffle).
        staged = ctx.spark.read.parquet(out.staging)
        stats = staged.agg(*job.checksum_columns(staged, staged.columns)).first()
        reasons = spatial.reason_counts(rejects.staging)
        if read != written + rejected or int(stats["rows"]) != written or sum(reasons.values()) != rejected:
            raise RuntimeError(
                f"{spec.pipeline}: counts do not reconcile: read {read}, written {written} (staged "
                f"{stats['rows']}), rejected {rejected} (staged {sum(reasons.values())})"
            )
    checksum = job.checksum_value(stats["hash_sum"])
    with ctx.timed("commit_s"):
        out.commit({"run": ctx.run, "rows": written, "points": points, "checksum": checksum})
        rejects.commit({"run": ctx.run, "rows": rejected})
    files_out, size = ctx.fs.size(out.target)
    ctx.inputs.append({"kind": f"spatial ({source.format})", "uri": source.path, "files": files, "rows": read})
    ctx.outputs.append({
        "uri": out.target, "zone": spec.target.zone, "dataset": spec.target.dataset, "format": "geoparquet",
        "rows": written, "points": points, "crs": crs.to_string(), "crs_name": crs.name, "geometry_column":
        spatial.GEOMETRY, "repaired": repaired, "chunks": len(chunks), "files": files_out, "bytes": size,
        "schema": {n: t for n, t in staged.dtypes}, "checksum": {"algorithm": job.CHECKSUM_ALGORITHM,
                                                                 "value": checksum},
    })  # fmt: skip
    ctx.outputs.append({"uri": rejects.target, "zone": "rejects", "rows": rejected, "reasons": reasons})
    ctx.metering.append({"service_item": "03", "unit": "coordinate_point", "quantity": points, "records": written,
                         "data_source": spec.pipeline})  # fmt: skip


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--spec", required=True, help="the pipeline spec as JSON")
    p.add_argument("--landing-root", default=None, help="where relative file paths of the spec are read")
    job.run("extract_spatial", p, extract)


if __name__ == "__main__":
    main()
