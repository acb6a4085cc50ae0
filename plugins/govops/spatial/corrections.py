"""The correction log of spatial verification and the write-back it governs.

A verification run proposes one correction per ``corrected`` record. A person applies a
run's proposals (or some of them) under their name; only then does the written-back
dataset ``<lake>/curated/<dataset>`` carry the corrected point. Reverting puts the
recorded before-values back. The curated dataset is rebuilt from the verified one and the
log on every apply and revert, and swapped in atomically, so it always equals "verified
records + applied corrections".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine


class CorrectionError(ValueError):
    pass


def propose(engine: Engine, verified_uri: str, dataset: str, dag_id: str, run_id: str) -> int:
    """One proposal per corrected record of the run's verified dataset; idempotent."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from sqlalchemy import text

    table = ds.dataset(_path(verified_uri), format="parquet", filesystem=_fs(verified_uri)).to_table(
        columns=["record_id", "reasons", "lon_raw", "lat_raw", "lon", "lat", "outcome"],
        filter=pc.field("outcome") == "corrected",
    )
    rows = [
        {"ds": dataset, "rid": r["record_id"], "dag": dag_id, "run": run_id, "rule": r["reasons"],
         "bl": r["lon_raw"], "bt": r["lat_raw"], "al": r["lon"], "at": r["lat"]}
        for r in table.to_pylist()
    ]  # fmt: skip
    if not rows:
        return 0
    with engine.begin() as conn:
        result = conn.execute(
            text(
                """INSERT INTO govops.spatial_correction (dataset, record_id, dag_id, run_id, rule, before_lon,
                       before_lat, after_lon, after_lat)
                   VALUES (:ds, :rid, :dag, :run, :rule, :bl, :bt, :al, :at)
                   ON CONFLICT (dataset, record_id, run_id) DO NOTHING"""
            ),
            rows,
        )
    return result.rowcount


def apply(engine: Engine, dataset: str, run_id: str, approver: str, record_ids: list[str] | None = None) -> int:
    """Apply the run's proposals (all, or the given records) under the approver's name."""
    return _transition(engine, dataset, run_id, "proposed", "applied", approver, record_ids)


def revert(engine: Engine, dataset: str, run_id: str, by: str, record_ids: list[str] | None = None) -> int:
    """Revert applied corrections: the curated dataset gets the before-values back."""
    return _transition(engine, dataset, run_id, "applied", "reverted", by, record_ids)


def _transition(engine: Engine, dataset: str, run_id: str, old: str, new: str, who: str,
                record_ids: list[str] | None) -> int:  # fmt: skip
    from sqlalchemy import text

    if not who.strip():
        raise CorrectionError("a correction is applied or reverted by a named person")
    stamp = "approver = :who, applied_at = now()" if new == "applied" else "reverted_by = :who, reverted_at = now()"
    with engine.begin() as conn:
        n = conn.execute(
            text(
                f"""UPDATE govops.spatial_correction SET state = :new, {stamp}
                     WHERE dataset = :ds AND run_id = :run AND state = :old
                       AND (CAST(:ids AS text[]) IS NULL OR record_id = ANY(CAST(:ids AS text[])))"""
            ),
            {"new": new, "who": who, "ds": dataset, "run": run_id, "old": old, "ids": record_ids},
        ).rowcount
    if n == 0:
        raise CorrectionError(f"{dataset} run {run_id}: no {old} correction(s) to mark {new}")
    return n


def write_back(engine: Engine, lake_root: str, dataset: str) -> dict[str, Any]:
    """Rebuild <lake>/curated/<dataset>: the verified records with their applied corrections."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sqlalchemy import text

    verified_uri = f"{lake_root.rstrip('/')}/verified/{dataset}"
    fs = _fs(verified_uri)
    table = pq.ParquetDataset(_path(verified_uri), filesystem=fs).read(
        columns=["record_id", "lon_raw", "lat_raw", "address", "outcome", "reasons"]
    )
    with engine.connect() as conn:
        applied = conn.execute(
            text("""SELECT DISTINCT ON (record_id) record_id, after_lon, after_lat, id
                      FROM govops.spatial_correction WHERE dataset = :ds AND state = 'applied'
                     ORDER BY record_id, applied_at DESC"""),
            {"ds": dataset},
        ).all()  # fmt: skip
    fixes = pa.table({"record_id": [r[0] for r in applied], "fixed_lon": [r[1] for r in applied],
                      "fixed_lat": [r[2] for r in applied], "correction_id": [r[3] for r in applied]},
                     schema=pa.schema([("record_id", pa.string()), ("fixed_lon", pa.float64()),
                                       ("fixed_lat", pa.float64()), ("correction_id", pa.int64())]))  # fmt: skip
    joined = table.join(fixes, "record_id", join_type="left outer")
    out = joined.append_column("lon", pc.coalesce(joined["fixed_lon"], _to_float(joined["lon_raw"])))
    out = out.append_column("lat", pc.coalesce(joined["fixed_lat"], _to_float(joined["lat_raw"])))
    out = out.drop_columns(["fixed_lon", "fixed_lat"])
    target = f"{lake_root.rstrip('/')}/curated/{dataset}"
    staging = f"{lake_root.rstrip('/')}/_staging/curated/{dataset}"
    fs.delete_dir_contents(_path(staging), missing_dir_ok=True)
    fs.create_dir(_path(staging), recursive=True)
    pq.write_table(out.sort_by("record_id"), f"{_path(staging)}/part-0.parquet", filesystem=fs)
    if fs.get_file_info(_path(target)).type != 0:  # 0: not found
        fs.delete_dir(_path(target))
    fs.create_dir(_path(target).rsplit("/", 1)[0], recursive=True)
    fs.move(_path(staging), _path(target))
    return {"uri": target, "rows": out.num_rows, "applied": len(applied)}


def _to_float(column: Any) -> Any:
    """Recorded text to numbers; what does not parse (the anomalies) stays null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numeric = pc.match_substring_regex(column, r"^\s*-?\d+(\.\d+)?\s*$")
    only_numbers = pc.if_else(numeric, pc.utf8_trim_whitespace(column), pa.scalar(None, pa.string()))
    return pc.cast(only_numbers, pa.float64())


def _fs(uri: str) -> Any:
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(uri)[0]


def _path(uri: str) -> str:
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(uri)[1]
