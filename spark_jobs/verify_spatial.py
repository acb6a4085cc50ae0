"""Spatial verification (空间地理数据核实, item 10): check every record's coordinates,
coordinate system, district and address, and say what to do with it.

    spark-submit --py-files govops.zip spark_jobs/verify_spatial.py <contract arguments> \
        --input <lake dataset of new spatial records> --reference <standard address library> \
        --dataset <name> [--id-column id --lon-column lon --lat-column lat
        --address-column address --address-id-column address_id] [--boundaries FILE]
        [--area-code 310118]

Spark schedules; the records never become JVM rows. The input is cut into chunks of
Parquet row groups that the tasks read and write with pyarrow, checking them with Arrow
kernels and numpy (govops.spatial.chunks, govops.spatial.verify):

1. The batch's coordinate system, on the driver: the first records that match a standard
   address (by the address id column, or else by the standard form of the address text:
   street, road, house number), up to 50,000, compared under each system
   (checks.detect_system). Without a library, or when no record matches it, the system
   cannot be checked: the batch is taken as recorded and no record is called verified
   (outcome crs_not_checked, reason CRS_NOT_CHECKED, "CRS not checked: no reference").
2. Duplicates across the whole input, exact and near, in one shuffle of compact point
   blocks: per grid cell, each point also visiting the neighbouring cells it is within the
   tolerance of, so pairs across a cell border are found too. Only the duplicates come
   back to the driver.
3. Per chunk: point checks, the batch's system converted to WGS-84, point-in-polygon
   against the boundaries (shipped to each executor once, as a broadcast variable; the
   deployment's area chosen by its administrative code), the address's district, the
   distance to the reference, the duplicate flags; the outcome (verified /
   crs_not_checked / corrected / field_verification) and reasons; the chunk's part files.

Outputs: <lake>/verified/<dataset> (every record with outcome, reasons and the corrected
WGS-84 point), <lake>/anomalies/spatial/<dataset>/<run> (the records with a reason of their
own: CRS_NOT_CHECKED is the batch's), the run's figures for the report, and metering:
item 10, one coordinate point per record.
"""

from __future__ import annotations

import threading
from pathlib import Path

from govops.spark import job
from govops.spark.manifest import run_key

OUTCOMES = ("verified", "crs_not_checked", "corrected", "field_verification")
DETECT_SAMPLE = 50_000  # matched records compared to detect the batch's system
DETECT_READ = 1_000_000  # records read at most to find them
BUCKET_POINTS = 500_000


def _detect_system(input_uri, chunk_list, columns, library, rules):  # -> checks.BatchSystem | None
    import numpy as np

    from govops.spatial import checks, chunks

    found = []
    read = 0
    for chunk in chunk_list:
        if read >= DETECT_READ or sum(len(f[0]) for f in found) >= DETECT_SAMPLE:
            break
        table = chunks.records(input_uri, chunk, columns, library)
        read += table.num_rows
        ref_lon = table["ref_lon"].to_numpy().astype(float)
        matched = np.flatnonzero(~np.isnan(ref_lon))
        if len(matched):
            table = table.take(matched)
            lon, lat, _ = checks.point_checks(checks.parse(table["lon_raw"], table["lat_raw"]), rules)
            found.append((lon, lat, ref_lon[matched], table["ref_lat"].to_numpy().astype(float)))
    if not found:
        return None
    lon, lat, ref_lon, ref_lat = (np.concatenate([f[i] for f in found])[:DETECT_SAMPLE] for i in range(4))
    return checks.detect_system(lon, lat, ref_lon, ref_lat)


def verify(ctx: job.JobContext) -> None:
    import numpy as np
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    from govops.spatial import boundaries, checks, chunks

    a = ctx.args
    sc = ctx.spark.sparkContext
    # Start the Python workers (their fork and imports) while the driver reads the
    # boundaries and the library and plans.
    cores = sc.defaultParallelism
    warming = threading.Thread(target=lambda: sc.parallelize(range(cores), cores).foreach(chunks.warm_up), daemon=True)
    warming.start()
    a.reference, a.district = a.reference or None, a.district or None  # "" from a template means none
    area = boundaries.load(Path(a.boundaries) if a.boundaries else None, a.area_code or None)
    rules = checks.Rules(min_decimals=a.min_decimals, near_duplicate_m=a.near_duplicate_m,
                         far_from_address_m=a.far_from_address_m, area_bounds=area.bounds)  # fmt: skip

    with ctx.timed("plan_s"):
        chunk_list, schema = chunks.plan(a.input, int(ctx.options.get("chunk_rows", chunks.CHUNK_ROWS)))
        missing = [c for c in (a.id_column, a.lon_column, a.lat_column) if c not in schema.names]
        if missing:
            raise ValueError(f"{a.input}: no column(s) {', '.join(missing)}; columns: {', '.join(schema.names)}")
        columns = chunks.Columns(a.id_column, a.lon_column, a.lat_column,
                                 a.address_column if a.address_column in schema.names else None,
                                 a.address_id_column if a.address_id_column in schema.names else None)  # fmt: skip
        library = chunks.load_library(a.reference, columns) if a.reference else None
        reference_match = {"id": a.address_id_column, "text": "address text"}[library.by] if library else None

    with ctx.timed("detect_system_s"):
        system = _detect_system(a.input, chunk_list, columns, library, rules) if library else None
        # A batch is converted only when most of its records sit on their references under
        # another system; otherwise it stays as recorded and the distances speak. Without
        # a record to compare (None) it stays as recorded, unchecked, and says so.
        batch_system, crs_note = "WGS-84", None
        if system is None:
            batch_system = None
            crs_note = "CRS not checked: no reference (" + (
                "no record matched the standard address library)" if library else "no standard address library)")
        elif system.matched >= 0.5 * system.compared:
            batch_system = system.system

    out = ctx.staged_output("verified", a.dataset)
    key = run_key(a.dag_id, a.run_id, a.task_id, a.map_index).replace("/", "__")
    anomalies = ctx.staged_output("anomalies", f"spatial/{a.dataset}/{key}")
    work = ctx.staged_output("_work", f"spatial/{a.dataset}")  # the duplicate search's blocks, never published
    for staged in (out, anomalies, work):
        ctx.fs.mkdirs(staged.staging)
    # Buckets of the duplicate search: one per core at least, and about BUCKET_POINTS each
    # (sorting a few big ones costs more than many small ones).
    buckets = max(sc.defaultParallelism, -(-sum(c.rows for c in chunk_list) // BUCKET_POINTS))
    task = chunks.Job(a.input, columns, rules.__dict__, batch_system, a.district,
                      buckets, out.staging, anomalies.staging)  # fmt: skip
    # A task per core, each taking its chunks in turn: a Python task costs tens of
    # milliseconds to start (its function and broadcasts unpickled), a chunk a few hundred.
    slices = max(1, min(len(chunk_list), sc.defaultParallelism))
    polygons = sc.broadcast(boundaries.to_wkb(area))
    reference = sc.broadcast(library.to_bytes() if library else b"")

    warming.join()
    with ctx.timed("duplicates_s"):
        tolerance, points = rules.near_duplicate_m, work.staging
        sc.parallelize(chunk_list, slices).foreach(lambda c: chunks.write_points(c, task, points))
        found = sc.parallelize(range(buckets), slices).map(
            lambda b: chunks.bucket_duplicates(b, points, tolerance)).collect()  # fmt: skip
        ctx.fs.delete(work.staging)
        positions = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
        kinds = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.int8)
        order = np.argsort(positions)
        duplicates = sc.broadcast((positions[order], kinds[order]))

    def per_chunk(chunk):  # runs on the executors
        from govops.spatial import boundaries as b
        from govops.spatial import chunks as c

        local = b.from_wkb(*polygons.value)  # built once per Python worker
        lib = c.Library.from_bytes(reference.value) if reference.value else None
        return c.verify_chunk(chunk, task, local, lib, *duplicates.value)

    with ctx.timed("checks_write_s"):
        summaries = sc.parallelize(chunk_list, slices).map(per_chunk).collect()
        if not chunk_list:  # an empty input still gives both datasets, with their schema
            from govops.spatial import verify as v

            empty = v.output_schema().empty_table()
            chunks.write_part(out.staging, "part-00000.parquet", empty)
            chunks.write_part(anomalies.staging, "part-00000.parquet", empty)

    with ctx.timed("reconcile_s"):
        masks: dict[int, int] = {}
        for s in summaries:
            for m, n in s["masks"].items():
                masks[m] = masks.get(m, 0) + n
        by_outcome: dict[str, int] = {}
        reasons_count: dict[str, int] = {}
        for m, n in masks.items():
            by_outcome[checks.mask_outcome(m)] = by_outcome.get(checks.mask_outcome(m), 0) + n
            for code in checks.mask_reasons(m):
                reasons_count[code] = reasons_count.get(code, 0) + n
        by_outcome = {o: by_outcome[o] for o in OUTCOMES if by_outcome.get(o)}
        reasons_count = {c: reasons_count[c] for c in checks.REASONS if reasons_count.get(c)}
        read = sum(c.rows for c in chunk_list)
        total = sum(s["rows"] for s in summaries)
        flagged = sum(s["anomalies"] for s in summaries)

        def rows_in(uri: str) -> int:  # from the written files' footers
            fs, folder = chunks.filesystem(uri)
            parts = [f for f in fs.get_file_info(pafs.FileSelector(folder))
                     if f.base_name.endswith(".parquet") and not f.base_name.startswith(".")]  # fmt: skip
            return sum(pq.read_metadata(f.path, filesystem=fs).num_rows for f in parts)

        written, anomalies_written = rows_in(out.staging), rows_in(anomalies.staging)
        if not read == total == written == sum(by_outcome.values()) or anomalies_written != flagged:
            raise RuntimeError(f"{a.dataset}: counts do not reconcile: read {read}, verified {total}, "
                               f"written {written}, by outcome {by_outcome}, anomalies {flagged} counted, "
                               f"{anomalies_written} written")  # fmt: skip
        distances = chunks.merged_percentiles(summaries, (0.5, 0.9, 0.99))
    out.commit({"run": ctx.run, "rows": total})
    anomalies.commit({"run": ctx.run, "rows": flagged})
    ctx.counts.update(read=read, written=total, rejected=0)
    ctx.inputs.append({"kind": "parquet", "uri": a.input, "rows": read})
    ctx.outputs.append({"uri": out.target, "zone": "verified", "dataset": a.dataset, "rows": total,
                        "outcomes": by_outcome, "reasons": reasons_count,
                        "batch_system": batch_system, "crs_checked": system is not None, "crs_note": crs_note,
                        "reference_match": reference_match,
                        "boundaries": area.source, "area_code": area.area_code, "area": list(area.area_names),
                        "compared_to_reference": sum(s["compared"] for s in summaries),
                        "system_evidence": system.__dict__ if system else None,
                        "distance_to_reference_m": dict(zip(("p50", "p90", "p99"), distances, strict=False)),
                        })  # fmt: skip
    ctx.outputs.append({"uri": anomalies.target, "zone": "anomalies", "rows": flagged})
    ctx.metering.append({"service_item": "10", "unit": "coordinate_point", "quantity": total, "records": total,
                         "data_source": a.dataset})  # fmt: skip


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
    p.add_argument("--area-code", default=None,
                   help="administrative code of the deployment's area (default: GOVOPS_AREA_CODE, else 310118)")
    p.add_argument("--min-decimals", type=int, default=5)
    p.add_argument("--near-duplicate-m", type=float, default=1.0)
    p.add_argument("--far-from-address-m", type=float, default=200.0)
    job.run("verify_spatial", p, verify)


if __name__ == "__main__":
    main()
