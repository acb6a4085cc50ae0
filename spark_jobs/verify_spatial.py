"""Spatial verification (空间地理数据核实, item 10): check every record's coordinates,
coordinate system, district and address, and say what to do with it.

    spark-submit --py-files govops.zip spark_jobs/verify_spatial.py <contract arguments> \
        --input <lake dataset of new spatial records> --reference <standard address library> \
        --dataset <name> [--id-column id --lon-column lon --lat-column lat
        --address-column address --address-id-column address_id] [--boundaries FILE]

1. The batch's coordinate system: records joined to their standard address (by the
   address id column, or else by the standard form of the address text: street, road,
   house number), a sample of the pairs compared on the driver (checks.detect_system).
2. Per record, per Arrow batch (govops.spatial.verify): point checks, the batch's
   system converted to WGS-84, point-in-polygon against the boundaries (shipped to each
   executor once, as a broadcast variable), address district, distance to the reference.
3. Duplicates across the whole input, exact and near, in one shuffle: per grid cell with
   a spatial index, each point also visiting the neighbouring cells it is within the
   tolerance of, so pairs across a cell border are found too.
4. Outcome per record (verified / corrected / field_verification) and its reasons; the
   run's counts are observed on the pass that writes them.

Outputs: <lake>/verified/<dataset> (every record with outcome, reasons and the corrected
WGS-84 point), <lake>/anomalies/spatial/<dataset>/<run> (the records with a reason), the
run's figures for the report, and metering: item 10, one coordinate point per record.
"""

from __future__ import annotations

import json
from pathlib import Path

from govops.spark import job
from govops.spark.manifest import run_key

CELL_DEG = 0.01  # about 1 km: the unit of work of the near-duplicate search
OUTCOMES = ("verified", "corrected", "field_verification")


def _source(ctx: job.JobContext):  # -> (DataFrame with the verify.py input columns, how references matched)
    from pyspark.sql import functions as F

    from govops.spatial import address

    a = ctx.args
    records = ctx.spark.read.parquet(a.input)
    missing = [c for c in (a.id_column, a.lon_column, a.lat_column) if c not in records.columns]
    if missing:
        raise ValueError(f"{a.input}: no column(s) {', '.join(missing)}; columns: {', '.join(records.columns)}")
    cols = [
        F.col(a.id_column).cast("string").alias("record_id"),
        F.col(a.lon_column).cast("string").alias("lon_raw"),
        F.col(a.lat_column).cast("string").alias("lat_raw"),
        (F.col(a.address_column).cast("string") if a.address_column in records.columns
         else F.lit(None).cast("string")).alias("address"),
    ]  # fmt: skip
    library = ctx.spark.read.parquet(a.reference) if a.reference else None
    point = [F.col("lon").cast("double").alias("ref_lon"), F.col("lat").cast("double").alias("ref_lat")]
    if library is not None and a.address_id_column in records.columns:
        reference = library.select(F.col("id").alias("__ref_id"), *point)
        joined = records.join(F.broadcast(reference), records[a.address_id_column] == reference["__ref_id"], "left")
        return joined.select(*cols, "ref_lon", "ref_lat"), a.address_id_column
    if library is not None and a.address_column in records.columns and "address" in library.columns:
        # No address id: match the address text's standard form (street, road, house
        # number) to the library's; a form that several library entries share matches none.
        form = address.java_standard_form_expression
        reference = (library.select(F.expr(form("address")).alias("__form"), *point).where(F.col("__form") != "")
                     .groupBy("__form").agg(F.count(F.lit(1)).alias("__n"), F.first("ref_lon").alias("ref_lon"),
                                            F.first("ref_lat").alias("ref_lat"))
                     .where(F.col("__n") == 1).drop("__n"))  # fmt: skip
        keyed = records.withColumn("__form", F.expr(form(a.address_column)))
        return keyed.join(F.broadcast(reference), "__form", "left").select(*cols, "ref_lon", "ref_lat"), "address text"
    return records.select(*cols, F.lit(None).cast("double").alias("ref_lon"),
                          F.lit(None).cast("double").alias("ref_lat")), None  # fmt: skip


def verify(ctx: job.JobContext) -> None:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from govops.spatial import boundaries, checks, verify

    a = ctx.args
    a.reference, a.district = a.reference or None, a.district or None  # "" from a template means none
    rules = checks.Rules(min_decimals=a.min_decimals, near_duplicate_m=a.near_duplicate_m,
                         far_from_address_m=a.far_from_address_m)  # fmt: skip
    area = boundaries.load(Path(a.boundaries) if a.boundaries else None)
    rules = checks.Rules(**{**rules.__dict__, "area_bounds": area.bounds})
    source, reference_match = _source(ctx)

    with ctx.timed("detect_system_s"):
        sample = source.where(F.col("ref_lon").isNotNull()).select("lon_raw", "lat_raw", "ref_lon", "ref_lat")
        pairs = sample.limit(50_000).toPandas()
        system = None
        if len(pairs):
            lon, lat, _ = checks.point_checks(checks.parse(pairs["lon_raw"], pairs["lat_raw"]), rules)
            system = checks.detect_system(lon, lat, pairs["ref_lon"].to_numpy(float), pairs["ref_lat"].to_numpy(float))
        # A batch is converted only when most of its records sit on their references under
        # another system; otherwise it stays as recorded and the distances speak.
        batch_system = system.system if system and system.matched >= 0.5 * system.compared else "WGS-84"

    polygons = ctx.spark.sparkContext.broadcast((Path(area.source).suffix, Path(area.source).read_bytes()))
    district, rules_json = a.district, json.dumps(rules.__dict__)

    def per_batch(frames):  # runs on the executors
        from govops.spatial import boundaries as b
        from govops.spatial import checks as c
        from govops.spatial import verify as v

        local = b.from_bytes(*polygons.value)  # parsed once per Python worker
        local_rules = c.Rules(**{k: tuple(x) if isinstance(x, list) else x for k, x in json.loads(rules_json).items()})
        for frame in frames:
            yield v.verify_batch(frame, local, local_rules, batch_system=batch_system, expected_district=district)

    with ctx.timed("checks_s"):
        # Text to numbers, decimals and the address's district on the JVM; the rest per
        # Arrow batch in Python, vectorized.
        prepared = source.selectExpr("*", *[f"{expr} AS {name}" for name, expr in
                                            verify.jvm_columns("lon_raw", "lat_raw", "address")])  # fmt: skip
        checked = prepared.mapInPandas(per_batch, verify.OUTPUT_SCHEMA)
        checked = _with_duplicates(ctx, checked, rules.near_duplicate_m)
        codes = list(checks.REASONS)
        reasons = F.concat_ws(";", *[F.when(F.col(code), F.lit(code)) for code in codes])
        fixable = F.lit(False)
        unfixable = F.lit(False)
        for code in codes:
            if code in checks.AUTO_FIXABLE:
                fixable = fixable | F.col(code)
            else:
                unfixable = unfixable | F.col(code)
        outcome = (F.when(~(fixable | unfixable), "verified").when(~unfixable, "corrected")
                   .otherwise("field_verification"))  # fmt: skip
        # The run's figures come from the pass that writes: one metrics node, no re-reads.
        figures = Observation("verify")
        measures = [F.count(F.lit(1)).alias("total"),
                    *[F.count_if(outcome == o).alias(f"outcome:{o}") for o in OUTCOMES],
                    *[F.count_if(F.col(code)).alias(f"reason:{code}") for code in codes],
                    F.count_if(F.col("distance_to_reference_m").isNotNull()).alias("compared"),
                    F.percentile_approx("distance_to_reference_m", [0.5, 0.9, 0.99]).alias("distances")]  # fmt: skip
        result = checked.observe(figures, *measures).select(
            "record_id", "lon_raw", "lat_raw", "address", "lon", "lat", "district_found", "district_named",
            "distance_to_reference_m", reasons.alias("reasons"), outcome.alias("outcome"),
        )  # fmt: skip

    out = ctx.staged_output("verified", a.dataset)
    key = run_key(a.dag_id, a.run_id, a.task_id, a.map_index).replace("/", "__")
    anomalies = ctx.staged_output("anomalies", f"spatial/{a.dataset}/{key}")
    with ctx.timed("write_s"):
        result.write.mode("overwrite").parquet(out.staging)
        stats = figures.get
        written = ctx.spark.read.parquet(out.staging)
        written.where(F.col("reasons") != "").write.mode("overwrite").parquet(anomalies.staging)
    by_outcome = {o: int(stats[f"outcome:{o}"]) for o in OUTCOMES if stats[f"outcome:{o}"]}
    reasons_count = {c: int(stats[f"reason:{c}"]) for c in codes if stats[f"reason:{c}"]}
    total, read = int(stats["total"]), ctx.spark.read.parquet(a.input).count()
    if not read == total == written.count() == sum(by_outcome.values()):
        raise RuntimeError(f"{a.dataset}: counts do not reconcile: read {read}, verified {total}, "
                           f"written {written.count()}, by outcome {by_outcome}")  # fmt: skip
    distances = stats["distances"] or []
    out.commit({"run": ctx.run, "rows": total})
    anomalies.commit({"run": ctx.run, "rows": sum(n for o, n in by_outcome.items() if o != "verified")})
    ctx.counts.update(read=read, written=total, rejected=0)
    ctx.inputs.append({"kind": "parquet", "uri": a.input, "rows": read})
    ctx.outputs.append({"uri": out.target, "zone": "verified", "dataset": a.dataset, "rows": total,
                        "outcomes": by_outcome, "reasons": reasons_count,
                        "batch_system": batch_system, "reference_match": reference_match,
                        "compared_to_reference": int(stats["compared"]),
                        "system_evidence": system.__dict__ if system else None,
                        "distance_to_reference_m": dict(zip(("p50", "p90", "p99"), distances, strict=False)),
                        })  # fmt: skip
    ctx.outputs.append({"uri": anomalies.target, "zone": "anomalies", "rows": total - by_outcome.get("verified", 0)})
    ctx.metering.append({"service_item": "10", "unit": "coordinate_point", "quantity": total, "records": total,
                         "data_source": a.dataset})  # fmt: skip


def _with_duplicates(ctx: job.JobContext, checked, tolerance_m: float):  # -> DataFrame
    """DUPLICATE and NEAR_DUPLICATE across the whole input, in one shuffle.

    Each record goes to its grid cell; a point within the tolerance of a neighbouring cell
    also visits that cell (a copy of its row, for its point). Cells are hashed to partitions, and each
    partition compares its points with one spatial index, flagging only its own records:
    every pair is decided once and none across a cell border is missed."""
    from pyspark.sql import functions as F

    from govops.spatial import verify

    tol = tolerance_m / 111_320.0 / 0.5  # degrees, generous for longitude up to 60° latitude
    cx, cy = F.floor(F.col("lon") / CELL_DEG), F.floor(F.col("lat") / CELL_DEG)
    # Each record's home cell, and the neighbouring cells it is within the tolerance of
    # (few: points near a cell border), as rows of one explode: one pass over the checks.
    cells = [F.struct(cx.alias("cx"), cy.alias("cy"), F.lit(False).alias("visitor"))]
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx == dy == 0:
                continue
            near_x = F.lit(True) if dx == 0 else (
                (F.col("lon") - cx * CELL_DEG < tol) if dx < 0 else ((cx + 1) * CELL_DEG - F.col("lon") < tol))
            near_y = F.lit(True) if dy == 0 else (
                (F.col("lat") - cy * CELL_DEG < tol) if dy < 0 else ((cy + 1) * CELL_DEG - F.col("lat") < tol))
            cells.append(F.when(F.col("lon").isNotNull() & near_x & near_y, F.struct(
                (cx + dx).alias("cx"), (cy + dy).alias("cy"), F.lit(True).alias("visitor"))))  # fmt: skip
    visits = F.explode(F.filter(F.array(*cells), lambda cell: cell.isNotNull())).alias("cell")
    everything = checked.select("*", visits).select(*checked.columns, "cell.cx", "cell.cy", "cell.visitor")

    def per_partition(batches):  # Arrow in and out: the wide rows never become Python objects
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from govops.spatial import checks as c

        batches = list(batches)
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        # One point per record (a record may visit several cells of this partition), in id
        # order: "earlier" means the lower record id.
        placed = table.filter(pc.is_valid(table["lon"])).select(["record_id", "lon", "lat"])
        placed = placed.take(pc.sort_indices(placed, sort_keys=[("record_id", "ascending")]))
        ids = placed["record_id"]
        first = np.ones(len(ids), dtype=bool)
        if len(ids) > 1:
            first[1:] = pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
        placed = placed.filter(pa.array(first))
        lon, lat = placed["lon"].to_numpy(), placed["lat"].to_numpy()
        exact, near = c.duplicates(lon, lat, np.ones(len(lon), dtype=bool), tolerance_m)
        home = table.filter(pc.invert(table["visitor"])).drop_columns(["cx", "cy", "visitor"])
        at = pc.index_in(home["record_id"], value_set=placed["record_id"].combine_chunks())
        found = pc.is_valid(at).to_numpy(zero_copy_only=False)
        spot = pc.fill_null(at, 0).to_numpy(zero_copy_only=False)
        exact = np.append(exact, False)[np.where(found, spot, len(exact))]
        near = np.append(near, False)[np.where(found, spot, len(near))]
        out = home.append_column("DUPLICATE", pa.array(exact)).append_column("NEAR_DUPLICATE", pa.array(near))
        yield from out.to_batches()

    by_cell = everything.repartition(max(2, ctx.spark.sparkContext.defaultParallelism * 2), "cx", "cy")
    schema = verify.OUTPUT_SCHEMA + ", DUPLICATE boolean, NEAR_DUPLICATE boolean"
    return by_cell.mapInArrow(per_partition, schema)


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="the records to verify: a Parquet dataset URI")
    p.add_argument("--reference", default=None, help="the standard address library (id, lon, lat in WGS-84)")
    p.add_argument("--dataset", required=True, help="name of the verified dataset in the lake")
    p.add_argument("--id-column", default="id")
    p.add_argument("--lon-column", default="lon")
    p.add_argument("--lat-column", default="lat")
    p.add_argument("--address-column", default="address")
    p.add_argument("--address-id-column", default="address_id")
    p.add_argument("--district", default=None, help="the district every record should fall in (e.g. 青浦区)")
    p.add_argument("--boundaries", default=None, help="polygon file (default: GOVOPS_BOUNDARIES or the bundled one)")
    p.add_argument("--min-decimals", type=int, default=5)
    p.add_argument("--near-duplicate-m", type=float, default=1.0)
    p.add_argument("--far-from-address-m", type=float, default=200.0)
    job.run("verify_spatial", p, verify)


if __name__ == "__main__":
    main()
