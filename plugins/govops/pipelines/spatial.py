"""Spatial extraction (空间数据抽取, item 03): vector files or WKT / lon-lat tables into
GeoParquet, every geometry checked, metered in coordinate points.

``spark_jobs/extract_spatial.py`` uses this module in two places. On the driver,
:func:`describe` reads each file's metadata (feature count, CRS, attribute schema),
:func:`run_crs` settles the run's one CRS and :func:`plan` cuts the files into (file,
feature range) chunks. In each Spark task, :func:`extract_chunk` reads its slice with
pyogrio (``skip_features`` / ``max_features``), checks the geometries and writes its own
GeoParquet part and rejects part. Checks and counts are vectorized with shapely; nothing
loops over rows in Python except the JSON of rejected records.

Locations: a vector feature is ``<file>#feature=<i>`` with ``i`` its 0-based index in the
file (a GeoJSON array index, a shapefile record number); a CSV record is
``<file>#row=<n>`` with ``n`` counting data records from 1 (the header not counted). The
output keeps the attribute columns; in a CSV the WKT or lon/lat columns become the
geometry column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import shapely

from govops.errors import CodedError
from govops.spark.lake import write_part

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pyarrow as pa
    from pyproj import CRS

    from govops.pipelines.spec import SpatialSource

VECTOR_FORMATS = ("geojson", "shapefile", "geopackage")
GEOMETRY = "geometry"  # the output's geometry column
RUN_ID = "_govops_run_id"
# Sequential formats are parsed from the start by every chunk that reads them: cut them
# into no more chunks than Spark runs at once.
SEQUENTIAL_FORMATS = ("geojson", "wkt_csv", "lonlat_csv")


class SpatialSourceError(CodedError, ValueError):
    """A source file cannot be extracted as declared; the message names the file."""

    code = "SPATIAL_SOURCE_INVALID"


# -- coordinate points and checks ---------------------------------------------------------


def coordinate_points(geometries: Any) -> int:
    """Coordinate points as stored: a point counts 1, a line or polygon its vertices (each
    ring's closing vertex included, as stored), a multi-part geometry the sum of its parts,
    a missing one 0."""
    return int(shapely.get_num_coordinates(np.asarray(geometries, dtype=object)).sum())


@dataclass(frozen=True)
class Checked:
    """Geometries with a reason per rejected one (None for a good one).

    ``reason`` is the kind, stable enough to count by (``invalid geometry:
    Self-intersection``); ``detail`` says where or what (``Self-intersection[1 1]``).
    """

    geometries: np.ndarray
    reasons: np.ndarray
    details: np.ndarray
    repaired: int = 0

    @property
    def good(self) -> np.ndarray:
        return np.equal(self.reasons, None)

    @property
    def points(self) -> int:
        return coordinate_points(self.geometries[self.good])


def _reject(reasons: np.ndarray, details: np.ndarray, mask: np.ndarray, reason: str, detail: Any) -> None:
    """Give ``reason`` to the rows of ``mask`` that have none yet (the first failing check wins)."""
    mask = mask & np.equal(reasons, None)
    reasons[mask] = reason
    details[mask] = detail[mask] if isinstance(detail, np.ndarray) else detail


def _empty_reasons(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, None, dtype=object), np.full(n, None, dtype=object)


def from_wkb(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(geometries, reasons, details) from WKB as read; null is a missing geometry."""
    values = np.asarray(values, dtype=object)
    geometries = shapely.from_wkb(values, on_invalid="ignore")
    reasons, details = _empty_reasons(len(values))
    missing = np.equal(values, None)
    _reject(reasons, details, missing, "missing geometry", None)
    _reject(reasons, details, shapely.is_missing(geometries), "unreadable geometry", "WKB does not parse")
    return geometries, reasons, details


def from_wkt(texts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(geometries, reasons, details) from WKT text; blank is a missing geometry."""
    import pandas as pd

    text = pd.Series(np.asarray(texts, dtype=object), dtype=object).str.strip()
    blank = (text.isna() | (text == "")).to_numpy()
    values = np.where(blank, None, text.to_numpy(dtype=object))
    geometries = shapely.from_wkt(values, on_invalid="ignore")
    reasons, details = _empty_reasons(len(values))
    _reject(reasons, details, blank, "missing geometry", None)
    quoted = text.str.slice(0, 80).to_numpy(dtype=object)
    _reject(reasons, details, shapely.is_missing(geometries), "unparseable WKT", quoted)
    return geometries, reasons, details


def from_lonlat(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, reasons, details) from longitude and latitude text in degrees."""
    import pandas as pd

    reasons, details = _empty_reasons(len(lon))
    numbers = []
    for name, raw, limit in (("lon", lon, 180.0), ("lat", lat, 90.0)):
        text = pd.Series(np.asarray(raw, dtype=object), dtype=object).astype("string").str.strip()
        value = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        blank = (text.isna() | (text == "")).to_numpy(dtype=bool)
        quoted = text.fillna("").str.slice(0, 40).to_numpy(dtype=object)
        _reject(reasons, details, blank, f"missing {name}", None)
        _reject(reasons, details, np.isnan(value), f"{name} is not a number", quoted)
        with np.errstate(invalid="ignore"):
            _reject(reasons, details, ~(np.abs(value) <= limit), f"{name} out of range [-{limit:g}, {limit:g}]", quoted)
        numbers.append(value)
    ok = np.equal(reasons, None)
    geometries = np.full(len(reasons), None, dtype=object)
    geometries[ok] = shapely.points(numbers[0][ok], numbers[1][ok])
    return geometries, reasons, details


def check(
    geometries: np.ndarray,
    reasons: np.ndarray,
    details: np.ndarray,
    *,
    geographic: bool,
    make_valid: bool = False,
) -> Checked:
    """Reject empty geometries, coordinates outside lon/lat range (geographic CRS only) and
    invalid geometries with shapely's reason; with ``make_valid`` repair the invalid ones."""
    reasons, details, geometries = reasons.copy(), details.copy(), geometries.copy()
    present = np.equal(reasons, None) & ~shapely.is_missing(geometries)
    _reject(reasons, details, present & shapely.is_empty(geometries), "empty geometry", None)
    if geographic:
        with np.errstate(invalid="ignore"):
            b = shapely.bounds(geometries)
            inside = (b[:, 0] >= -180) & (b[:, 2] <= 180) & (b[:, 1] >= -90) & (b[:, 3] <= 90)
        outside = present & ~inside
        shown = np.full(len(geometries), None, dtype=object)
        shown[outside] = [f"bounds {x0:g} {y0:g} {x1:g} {y1:g}" for x0, y0, x1, y1 in b[outside]]
        _reject(reasons, details, outside, "coordinates out of lon/lat range", shown)
    candidates = np.equal(reasons, None) & present
    invalid = np.zeros(len(geometries), dtype=bool)
    invalid[candidates] = ~shapely.is_valid(geometries[candidates])
    repaired = 0
    if make_valid:
        geometries[invalid] = shapely.make_valid(geometries[invalid])
        repaired = int(invalid.sum())
    elif invalid.any():
        why = shapely.is_valid_reason(geometries[invalid]).astype(str)
        kind = np.char.partition(why, "[")[:, 0]  # the reason without its location, to count by
        reasons[invalid] = np.char.add("invalid geometry: ", kind).astype(object)
        details[invalid] = why.astype(object)
    return Checked(geometries=geometries, reasons=reasons, details=details, repaired=repaired)


# -- files, CRS and chunks (driver) -------------------------------------------------------


def local_path(uri: str) -> str:
    """The path GDAL opens. Files are read where the executors see them (file://)."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    if "://" not in uri:
        return uri
    raise SpatialSourceError(f"{uri}: spatial files are read with GDAL from a local or shared filesystem (file://)")


def wanted(uri: str, fmt: str) -> bool:
    """Whether a listed file is read: a shapefile's sidecars (.dbf, .shx, .prj, .cpg) are
    read with its .shp, not on their own."""
    return fmt != "shapefile" or uri.lower().endswith(".shp")


def _gdal_args(source: SpatialSource) -> tuple[str, dict[str, Any]]:
    """(path prefix, pyogrio keyword arguments) for the source's format."""
    if source.format in VECTOR_FORMATS:
        kwargs: dict[str, Any] = {"layer": source.layer}
        if source.format == "shapefile" and source.encoding:
            kwargs["ENCODING"] = source.encoding  # GDAL recodes to UTF-8, also for Arrow reads
        return "", kwargs
    # CSV: the header is a header, every value text; any extension.
    return "CSV:", {"encoding": source.encoding or "utf-8", "HEADERS": "YES", "AUTODETECT_TYPE": "NO"}


@dataclass(frozen=True)
class SourceFile:
    uri: str
    features: int
    crs: str | None  # as the file declares it
    schema: bytes  # the attribute columns, a serialized Arrow schema


def describe(uri: str, source: SpatialSource) -> SourceFile:
    """A file's feature count, CRS and attribute schema, from its metadata."""
    import warnings

    import pyarrow as pa
    import pyogrio

    prefix, kwargs = _gdal_args(source)
    path = prefix + local_path(uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "more than one layer": the spec says which
            info = pyogrio.read_info(path, **kwargs)
    except Exception as exc:
        raise SpatialSourceError(f"{uri}: cannot be read as {source.format}: {exc}") from exc
    features = int(info["features"])
    if features < 0:
        raise SpatialSourceError(f"{uri}: the driver cannot count its features")
    if source.format in VECTOR_FORMATS:
        from pyogrio.raw import open_arrow

        with open_arrow(path, use_pyarrow=True, **kwargs) as (meta, reader):
            schema = reader.schema
            geometry = meta["geometry_name"] or "wkb_geometry"
            schema = pa.schema([f.remove_metadata() for f in schema if f.name != geometry])
        return SourceFile(uri, features, info["crs"], schema.serialize().to_pybytes())
    columns = [str(c) for c in info["fields"]]
    needed = [source.wkt_column] if source.format == "wkt_csv" else [source.lon_column, source.lat_column]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise SpatialSourceError(f"{uri}: no column {', '.join(map(repr, missing))}; columns: {', '.join(columns)}")
    schema = pa.schema([(c, pa.string()) for c in columns if c not in needed])
    return SourceFile(uri, features, None, schema.serialize().to_pybytes())


def run_crs(files: list[SourceFile], declared: str | None) -> CRS:
    """The run's one CRS: each file's own, or the spec's for a file that has none."""
    from pyproj import CRS

    spec_crs = CRS.from_user_input(declared) if declared else None
    chosen: tuple[str, CRS] | None = None
    for f in files:
        crs = CRS.from_user_input(f.crs) if f.crs else spec_crs
        if crs is None:
            raise SpatialSourceError(f"{f.uri}: the file has no CRS and the spec gives none: set source.crs")
        if f.crs and spec_crs and not crs.equals(spec_crs, ignore_axis_order=True):
            raise SpatialSourceError(f"{f.uri}: the file's CRS {crs.to_string()} is not the spec's {declared}")
        if chosen and not crs.equals(chosen[1], ignore_axis_order=True):
            raise SpatialSourceError(
                f"{f.uri}: CRS {crs.to_string()} differs from {chosen[0]}'s {chosen[1].to_string()}; "
                "one run writes one CRS"
            )
        chosen = chosen or (f.uri, crs)
    if chosen is None:
        raise SpatialSourceError("no files to extract")
    return chosen[1]


def attribute_schema(files: list[SourceFile]) -> pa.Schema:
    """One schema for all parts: the files' attribute columns, types promoted where safe."""
    import pyarrow as pa

    schemas = [pa.ipc.read_schema(pa.py_buffer(f.schema)) for f in files]
    try:
        unified = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        pairs = zip(files, schemas, strict=True)
        listed = "; ".join(f"{f.uri}: {s.to_string(show_schema_metadata=False)}" for f, s in pairs)
        raise SpatialSourceError(f"the files' attribute columns do not agree ({exc}): {listed}") from exc
    clash = [n for n in (GEOMETRY, RUN_ID) if n in unified.names]
    if clash:
        raise SpatialSourceError(f"attribute column(s) {', '.join(clash)} clash with the output's own columns")
    return unified


@dataclass(frozen=True)
class Chunk:
    chunk: int
    uri: str
    skip: int
    count: int


def plan(files: Iterable[SourceFile], fmt: str, *, chunk_features: int, parallelism: int) -> list[Chunk]:
    """Feature ranges of at most ``chunk_features`` (sequential formats: at most
    ``parallelism`` per file); an empty file still gets one (empty) chunk."""
    chunks: list[Chunk] = []
    for f in files:
        pieces = max(1, -(-f.features // chunk_features))
        if fmt in SEQUENTIAL_FORMATS:
            pieces = min(pieces, max(1, parallelism))
        size = -(-f.features // pieces) if f.features else 0
        for start in range(0, max(f.features, 1), max(size, 1)):
            chunks.append(Chunk(len(chunks), f.uri, start, min(size, f.features - start)))
    return chunks


# -- one chunk (Spark task) ---------------------------------------------------------------


SUMMARY_DDL = (
    "chunk long, uri string, read long, written long, rejected long, points long, repaired long, reasons string"
)


@dataclass(frozen=True)
class ChunkJob:
    """What every task needs besides its chunk; pickled once into the Spark closure."""

    source: dict[str, Any]  # SpatialSource.model_dump()
    crs: str  # PROJJSON
    schema: bytes  # attribute_schema(), serialized
    output: str  # staging URI of the GeoParquet dataset
    rejects: str  # staging URI of the rejects
    run_id: str


def read_chunk(chunk: Chunk, source: SpatialSource) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
    """(attributes as read, geometries, reasons, details) of one feature range."""
    import pyarrow as pa
    import pyogrio

    prefix, kwargs = _gdal_args(source)
    path = prefix + local_path(chunk.uri)
    window = {"skip_features": chunk.skip, "max_features": chunk.count}
    if source.format in VECTOR_FORMATS:
        if chunk.count == 0:
            attributes, wkb = pa.table({}), np.array([], dtype=object)
        else:
            meta, table = pyogrio.read_arrow(path, **window, **kwargs)
            geometry = meta["geometry_name"] or "wkb_geometry"
            wkb = table.column(geometry).to_numpy(zero_copy_only=False)
            attributes = table.drop_columns([geometry])
        return attributes, *from_wkb(wkb)
    if chunk.count == 0:  # pyogrio reads everything when told to read 0 without Arrow
        frame = None
    else:
        frame = pyogrio.read_dataframe(path, read_geometry=False, use_arrow=False, **window, **kwargs)
    columns = [source.wkt_column] if source.format == "wkt_csv" else [source.lon_column, source.lat_column]
    if frame is None or len(frame) == 0:
        return pa.table({}), np.array([], dtype=object), *_empty_reasons(0)
    table = pa.Table.from_pandas(frame.astype(object), preserve_index=False)
    if source.format == "wkt_csv":
        return table, *from_wkt(frame[columns[0]].to_numpy(dtype=object))
    return table, *from_lonlat(frame[columns[0]].to_numpy(dtype=object), frame[columns[1]].to_numpy(dtype=object))


def _conform(table: pa.Table, schema: pa.Schema, rows: int) -> pa.Table:
    """The table with exactly the schema's columns and types (absent columns null)."""
    import pyarrow as pa

    if not schema:
        return table.select([])  # no attributes: the rows remain
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(rows, f.type)
              for f in schema]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=schema)


def _records(table: pa.Table, mask: np.ndarray, geometry_text: np.ndarray | None) -> list[str]:
    rows = table.filter(mask).to_pylist()
    if geometry_text is not None:
        for row, text in zip(rows, geometry_text, strict=True):
            row[GEOMETRY] = text
    return [json.dumps(r, ensure_ascii=False, default=str) for r in rows]


def extract_chunk(chunk: Chunk, job: ChunkJob) -> dict[str, Any]:
    """Read, check and write one chunk; returns its figures (SUMMARY_DDL)."""
    import geopandas as gpd
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs
    from pyproj import CRS

    from govops.pipelines.spec import SpatialSource

    source = SpatialSource.model_validate(job.source)
    crs = CRS.from_user_input(job.crs)
    schema = pa.ipc.read_schema(pa.py_buffer(job.schema))
    attributes, geometries, reasons, details = read_chunk(chunk, source)
    n = len(geometries)
    checked = check(geometries, reasons, details, geographic=crs.is_geographic, make_valid=source.make_valid)
    good = checked.good
    part = f"part-{chunk.chunk:05d}.parquet"

    out_fs, out_dir = pafs.FileSystem.from_uri(job.output)
    kept = _conform(attributes.filter(pa.array(good)) if n else attributes, schema, int(good.sum()))
    frame = kept.to_pandas(types_mapper=pd.ArrowDtype)
    frame[RUN_ID] = pd.Series([job.run_id] * len(frame), dtype=pd.ArrowDtype(pa.string()))
    data = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(checked.geometries[good], crs=crs))
    if len(data) or chunk.chunk == 0:  # chunk 0 always writes: the dataset has a schema even if empty
        write_part(out_fs, out_dir, part, lambda p: data.to_parquet(p, filesystem=out_fs, index=False))

    rejected = ~good
    reasons_count: dict[str, int] = {}
    if rejected.any() or chunk.chunk == 0:
        vector = source.format in VECTOR_FORMATS
        index = np.arange(chunk.skip, chunk.skip + n)[rejected]
        where = [f"{chunk.uri}#feature={i}" if vector else f"{chunk.uri}#row={i + 1}" for i in index]
        text = shapely.to_wkt(geometries[rejected]) if vector else None
        rows = pa.table({
            "reason": pa.array(checked.reasons[rejected], pa.string()),
            "detail": pa.array(checked.details[rejected], pa.string()),
            "source_location": pa.array(where, pa.string()),
            "record": pa.array(_records(attributes, rejected, text) if n else [], pa.string()),
        })  # fmt: skip
        rej_fs, rej_dir = pafs.FileSystem.from_uri(job.rejects)
        write_part(rej_fs, rej_dir, part, lambda p: pq.write_table(rows, p, filesystem=rej_fs))
        values, counts = np.unique(checked.reasons[rejected].astype(str), return_counts=True)
        reasons_count = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    return {
        "chunk": chunk.chunk, "uri": chunk.uri, "read": n, "written": int(good.sum()),
        "rejected": int(rejected.sum()), "points": checked.points, "repaired": checked.repaired,
        "reasons": json.dumps(reasons_count, ensure_ascii=False),
    }  # fmt: skip


def extract_batches(batches: Iterator[pa.RecordBatch], job: ChunkJob) -> Iterator[pa.RecordBatch]:
    """The mapInArrow body: one summary row per chunk of the task's partition."""
    import pyarrow as pa

    for batch in batches:
        for row in batch.to_pylist():
            summary = extract_chunk(Chunk(row["chunk"], row["uri"], row["skip"], row["count"]), job)
            yield pa.RecordBatch.from_pylist([summary])


def reason_counts(rejects_uri: str) -> dict[str, int]:
    """Rejected records per reason, read back from a rejects dataset's part files."""
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(rejects_uri)
    table = ds.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=["reason"])
    return {str(r["values"]): int(r["counts"]) for r in table.column("reason").value_counts().to_pylist()}
