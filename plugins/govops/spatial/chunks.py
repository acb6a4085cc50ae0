"""The verification job's units of work (spark_jobs/verify_spatial.py): the input cut into
chunks of Parquet row groups, read and written by its tasks with pyarrow, so the records
go from the files to numpy and back without a JVM row or a Python object per record.

1. ``plan``: the input's files and row groups, in order, as chunks; each record's
   position in that order is what "earlier" means for duplicates.
2. ``write_points`` (per chunk) and ``bucket_duplicates`` (per bucket), one shuffle of
   compact point blocks through the lake: every usable point goes to the bucket of its
   grid cell, and also visits the neighbouring cells it is within the tolerance of, so
   pairs across a cell border are found; each bucket flags only its own (home) records.
3. ``verify_chunk``: every check on the chunk's records (govops.spatial.verify), the
   duplicate flags from step 2, and the chunk's part of the verified and anomaly datasets;
   it returns its figures, which the driver adds up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from govops.spark import lake
from govops.spatial import address, boundaries, checks, verify

if TYPE_CHECKING:
    from numpy.typing import NDArray

CELL_DEG = 0.01  # about 1 km: the unit of the duplicate search's shuffle
CHUNK_ROWS = 250_000  # records per task, in whole Parquet row groups
QUANTILES = np.linspace(0, 1, 101)  # each chunk's distance sketch: its percentiles


@dataclass(frozen=True)
class Columns:
    """The input's column names; address and address id may be absent (None)."""

    id: str
    lon: str
    lat: str
    address: str | None
    address_id: str | None


@dataclass(frozen=True)
class Chunk:
    index: int
    path: str  # within the input's filesystem
    row_groups: tuple[int, ...]
    first: int  # the position of its first record in the input
    rows: int


def warm_up(_: Any) -> None:
    """Imports what the tasks use, so a Python worker started early is ready for them."""
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401
    import shapely  # noqa: F401

    task_threads()


def task_threads() -> None:
    """Arrow's thread pool as wide as the Spark task's CPUs (spark.task.cpus, 1 by default):
    otherwise every task reads, computes and writes on all the machine's cores, and tasks
    running side by side fight over them."""
    import pyarrow as pa
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None:
        pa.set_cpu_count(max(1, context.cpus()))


def filesystem(uri: str) -> tuple[Any, str]:
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(uri)


def plan(input_uri: str, chunk_rows: int) -> tuple[list[Chunk], Any]:
    """(chunks in input order, the input's Arrow schema). Whole row groups, gathered up to
    ``chunk_rows`` records per chunk (a bigger row group is a chunk of its own)."""
    import pyarrow.dataset as ds

    fs, path = filesystem(input_uri)
    dataset = ds.dataset(path, filesystem=fs, format="parquet")
    chunks: list[Chunk] = []
    first = 0
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        metadata = fragment.metadata
        groups: list[int] = []
        rows = 0
        for i in range(metadata.num_row_groups):
            n = metadata.row_group(i).num_rows
            if groups and rows + n > chunk_rows:
                chunks.append(Chunk(len(chunks), fragment.path, tuple(groups), first, rows))
                first, groups, rows = first + rows, [], 0
            groups.append(i)
            rows += n
        if rows:
            chunks.append(Chunk(len(chunks), fragment.path, tuple(groups), first, rows))
            first += rows
    return chunks, dataset.schema


def read(input_uri: str, chunk: Chunk, names: list[str]) -> Any:  # -> pyarrow.Table
    import pyarrow.parquet as pq

    fs, _ = filesystem(input_uri)
    with fs.open_input_file(chunk.path) as handle:
        table = pq.ParquetFile(handle).read_row_groups(list(chunk.row_groups), columns=names)
    if table.num_rows != chunk.rows:
        raise RuntimeError(f"{chunk.path}: row groups {chunk.row_groups} hold {table.num_rows} records, "
                           f"planned {chunk.rows}: the input changed during the run")  # fmt: skip
    return table


@dataclass(frozen=True)
class Library:
    """The standard address library's reference points, keyed by address id (``by`` =
    "id") or by the standard form of the address text (``by`` = "text": a form that several
    entries share is left out, it identifies none)."""

    by: str
    keys: Any  # pyarrow string Array, unique
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]

    def points(self, keys: Any) -> tuple[NDArray, NDArray]:
        """(ref_lon, ref_lat) of each key, NaN where the library has none."""
        import pyarrow.compute as pc

        at = pc.fill_null(pc.index_in(keys, value_set=self.keys), -1).to_numpy()
        found = at >= 0
        spot = np.where(found, at, 0)
        return np.where(found, self.lon[spot], np.nan), np.where(found, self.lat[spot], np.nan)

    def to_bytes(self) -> bytes:
        import pyarrow as pa

        table = pa.table({"key": self.keys, "lon": self.lon, "lat": self.lat})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as w:
            w.write_table(table)
        return json.dumps({"by": self.by}).encode() + b"\n" + sink.getvalue().to_pybytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Library:
        import pyarrow as pa

        header, _, body = data.partition(b"\n")
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        return cls(json.loads(header)["by"], table["key"].combine_chunks(), table["lon"].to_numpy(),
                   table["lat"].to_numpy())  # fmt: skip


def load_library(uri: str, columns: Columns) -> Library | None:
    """The library as the records can be matched to it: by address id when the records
    have one, else by address text; None when neither can be."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    fs, path = filesystem(uri)
    dataset = ds.dataset(path, filesystem=fs, format="parquet")
    missing = [c for c in ("lon", "lat") if c not in dataset.schema.names]
    if missing:
        raise ValueError(f"{uri}: the address library has no column(s) {', '.join(missing)}")
    if columns.address_id and "id" in dataset.schema.names:
        table = dataset.to_table(columns=["id", "lon", "lat"])
        keys, by = pc.cast(table["id"], pa.string()), "id"
    elif columns.address and "address" in dataset.schema.names:
        table = dataset.to_table(columns=["address", "lon", "lat"])
        keys, by = address.standard_forms(table["address"]), "text"
    else:
        return None
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    counts = pc.value_counts(pc.drop_null(keys))
    unique = pc.filter(counts.field("values"), pc.and_(pc.equal(counts.field("counts"), 1),
                                                       pc.not_equal(counts.field("values"), "")))  # fmt: skip
    at = pc.index_in(unique, value_set=keys).to_numpy(zero_copy_only=False).astype(np.int64)
    lon = pc.cast(table["lon"], pa.float64()).to_numpy()[at]
    lat = pc.cast(table["lat"], pa.float64()).to_numpy()[at]
    return Library(by, unique, lon, lat)


def records(input_uri: str, chunk: Chunk, columns: Columns, library: Library | None) -> Any:  # -> pyarrow.Table
    """The chunk as govops.spatial.verify takes it (``verify.INPUT``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [columns.id, columns.lon, columns.lat, columns.address, columns.address_id]
    table = read(input_uri, chunk, list(dict.fromkeys(c for c in names if c)))
    n = table.num_rows
    text = pa.array([None] * n, pa.string())
    address_text = pc.cast(table[columns.address], pa.string()) if columns.address else text
    ref_lon = ref_lat = np.full(n, np.nan)
    if library is not None:
        keys = (pc.cast(table[columns.address_id], pa.string()) if library.by == "id"
                else address.standard_forms(address_text))  # fmt: skip
        ref_lon, ref_lat = library.points(keys)
    return pa.table({
        "record_id": pc.cast(table[columns.id], pa.string()), "lon_raw": table[columns.lon],
        "lat_raw": table[columns.lat], "address": address_text,
        "ref_lon": pa.array(ref_lon, mask=np.isnan(ref_lon)), "ref_lat": pa.array(ref_lat, mask=np.isnan(ref_lat)),
    })  # fmt: skip


@dataclass(frozen=True)
class Job:
    """What every task needs, shipped once with the task closure."""

    input_uri: str
    columns: Columns
    rules: dict[str, Any]
    batch_system: str | None  # None: not checked (no reference)
    district: str | None
    buckets: int
    verified_uri: str
    anomalies_uri: str

    def checks_rules(self) -> checks.Rules:
        return checks.Rules(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.rules.items()})


def points_by_bucket(chunk: Chunk, job: Job) -> Iterator[tuple[int, tuple[NDArray, ...]]]:
    """(bucket, (positions, lon, lat, home)) blocks of the chunk's usable points: each point
    in its grid cell's bucket, plus a visit to each neighbouring cell it is within the
    tolerance of (home False)."""
    rules = job.checks_rules()
    table = read(job.input_uri, chunk, [job.columns.lon, job.columns.lat])
    lon, lat, usable, _ = verify.locate(table[job.columns.lon], table[job.columns.lat], rules, job.batch_system)
    at = np.flatnonzero(usable)
    lon, lat, position = lon[at], lat[at], chunk.first + at
    tol = rules.near_duplicate_m / 111_320.0 / 0.5  # degrees, generous for longitude up to 60° latitude
    cx, cy = np.floor(lon / CELL_DEG).astype(np.int64), np.floor(lat / CELL_DEG).astype(np.int64)
    fx, fy = lon - cx * CELL_DEG, lat - cy * CELL_DEG
    side = {-1: (fx < tol, fy < tol), 1: (CELL_DEG - fx < tol, CELL_DEG - fy < tol)}
    pieces = [(np.arange(len(at)), cx, cy, np.ones(len(at), dtype=bool))]
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx == dy == 0:
                continue
            close = np.ones(len(at), dtype=bool)
            if dx:
                close &= side[dx][0]
            if dy:
                close &= side[dy][1]
            which = np.flatnonzero(close)
            pieces.append((which, cx[which] + dx, cy[which] + dy, np.zeros(len(which), dtype=bool)))
    which = np.concatenate([p[0] for p in pieces])
    bucket = ((np.concatenate([p[1] for p in pieces]) * 73856093) ^ (np.concatenate([p[2] for p in pieces])
                                                                    * 19349663)) % job.buckets  # fmt: skip
    home = np.concatenate([p[3] for p in pieces])
    order = np.argsort(bucket)
    bucket, which, home = bucket[order], which[order], home[order]
    bounds = np.flatnonzero(np.diff(bucket)) + 1
    for b, w, h in zip(np.split(bucket, bounds), np.split(which, bounds), np.split(home, bounds), strict=True):
        if len(b):
            yield int(b[0]), (position[w], lon[w], lat[w], h)


def write_points(chunk: Chunk, job: Job, work_uri: str) -> int:
    """The chunk's point blocks as Arrow IPC files, one per bucket: ``<work>/b<bucket>/c<chunk>.arrow``
    (the duplicate search's shuffle, through the lake: plain numbers, no pickling, no
    compression that random coordinates would defeat). Returns the blocks written."""
    import pyarrow as pa

    task_threads()
    fs, folder = filesystem(work_uri)
    written = 0
    for bucket, (position, lon, lat, home) in points_by_bucket(chunk, job):
        table = pa.table({"position": position, "lon": lon, "lat": lat, "home": home})

        def write(path: str, table: Any = table) -> None:
            with fs.open_output_stream(path) as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)

        fs.create_dir(f"{folder}/b{bucket:05d}", recursive=True)
        lake.write_part(fs, f"{folder}/b{bucket:05d}", f"c{chunk.index:05d}.arrow", write)
        written += 1
    return written


def bucket_duplicates(bucket: int, work_uri: str, tolerance_m: float) -> tuple[NDArray, NDArray]:
    """:func:`duplicates_in_bucket` over the blocks :func:`write_points` left for ``bucket``."""
    import pyarrow as pa
    from pyarrow import fs as pafs

    task_threads()
    fs, folder = filesystem(work_uri)
    blocks = []
    for info in fs.get_file_info(pafs.FileSelector(f"{folder}/b{bucket:05d}", allow_not_found=True)):
        if info.base_name.endswith(".arrow") and not info.base_name.startswith("."):
            with fs.open_input_file(info.path) as handle:
                table = pa.ipc.open_file(handle).read_all()
            blocks.append(tuple(table[c].to_numpy() for c in ("position", "lon", "lat", "home")))
    return duplicates_in_bucket(blocks, tolerance_m)


def duplicates_in_bucket(blocks: Iterable[tuple[NDArray, ...]], tolerance_m: float) -> tuple[NDArray, NDArray]:
    """(positions, kind) of the bucket's home records that duplicate an earlier record:
    kind 1 exact, 2 near."""
    blocks = list(blocks)
    if not blocks:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    position, lon, lat, home = (np.concatenate([b[i] for b in blocks]) for i in range(4))
    # A record may be here twice (its own cell and a neighbour in the same bucket): once,
    # in input order, home if either copy is.
    order = np.argsort(position * 2 + ~home)  # by position, the home copy first
    position, lon, lat, home = position[order], lon[order], lat[order], home[order]
    first = np.concatenate(([True], position[1:] != position[:-1]))
    position, lon, lat, home = position[first], lon[first], lat[first], home[first]
    exact, near = checks.duplicates(lon, lat, np.ones(len(lon), dtype=bool), tolerance_m)
    flagged = home & (exact | near)
    return position[flagged], np.where(exact[flagged], 1, 2).astype(np.int8)


def write_part(uri: str, name: str, table: Any) -> None:
    import pyarrow.parquet as pq

    fs, folder = filesystem(uri)
    # Dictionaries only where values repeat: ids, coordinates and addresses are near unique.
    lake.write_part(fs, folder, name, lambda path: pq.write_table(
        table, path, filesystem=fs, use_dictionary=["district_found", "district_named", "reasons", "outcome"]))


def verify_chunk(chunk: Chunk, job: Job, area: boundaries.Boundaries, library: Library | None,
                 duplicate_positions: NDArray, duplicate_kinds: NDArray) -> dict[str, Any]:  # fmt: skip
    """Every check on the chunk, its parts of the verified and anomaly datasets written;
    returns its figures."""
    import pyarrow as pa

    task_threads()
    table = records(job.input_uri, chunk, job.columns, library)
    lo, hi = np.searchsorted(duplicate_positions, [chunk.first, chunk.first + chunk.rows])
    exact = np.zeros(chunk.rows, dtype=bool)
    near = np.zeros(chunk.rows, dtype=bool)
    at = duplicate_positions[lo:hi] - chunk.first
    exact[at[duplicate_kinds[lo:hi] == 1]] = True
    near[at[duplicate_kinds[lo:hi] == 2]] = True
    out, mask = verify.verify_table(table, area, job.checks_rules(), batch_system=job.batch_system,
                                    expected_district=job.district, exact=exact, near=near)  # fmt: skip
    name = f"part-{chunk.index:05d}.parquet"
    write_part(job.verified_uri, name, out)
    problems = out.filter(pa.array((mask & ~np.uint16(checks.CAVEAT_BITS)) != 0))  # a batch's caveat is no anomaly
    if problems.num_rows or chunk.index == 0:  # chunk 0 always writes: the dataset has a schema even if empty
        write_part(job.anomalies_uri, name, problems)
    distance = out["distance_to_reference_m"].drop_null().to_numpy()
    masks = np.bincount(mask, minlength=1 << len(checks.REASONS))
    return {
        "chunk": chunk.index, "rows": out.num_rows, "anomalies": problems.num_rows,
        "masks": {int(m): int(masks[m]) for m in np.flatnonzero(masks)},
        "compared": len(distance), "quantiles": np.quantile(distance, QUANTILES).tolist() if len(distance) else [],
    }  # fmt: skip


def merged_percentiles(summaries: list[dict[str, Any]], wanted: tuple[float, ...]) -> list[float]:
    """Percentiles of the distances of all chunks from their sketches (each chunk's 101
    percentiles, weighted by its count): approximate, within a percent of rank."""
    values, weights = [], []
    for s in summaries:
        if s["compared"]:
            values.append(np.asarray(s["quantiles"]))
            weights.append(np.full(len(QUANTILES), s["compared"] / len(QUANTILES)))
    if not values:
        return []
    v, w = np.concatenate(values), np.concatenate(weights)
    order = np.argsort(v)
    cumulative = np.cumsum(w[order]) / w.sum()
    return [float(v[order][min(np.searchsorted(cumulative, q), len(v) - 1)]) for q in wanted]
