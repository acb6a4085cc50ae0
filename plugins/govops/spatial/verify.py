"""Records through every per-record check, Arrow in and Arrow out, so the Spark job's tasks
(spark_jobs/verify_spatial.py, govops.spatial.chunks) run it on their chunk of the input
and tests run it as is. No Python object per record: Arrow kernels and numpy throughout.

Input columns (``INPUT``): ``record_id``, ``lon_raw``, ``lat_raw`` (text or numbers as the
source holds them), ``address`` (text, may be null), ``ref_lon`` / ``ref_lat`` (the WGS-84
reference point of the record's standard address, null when it has none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from govops import coords
from govops.spatial import address, boundaries, checks

if TYPE_CHECKING:
    from numpy.typing import NDArray

INPUT = ("record_id", "lon_raw", "lat_raw", "address", "ref_lon", "ref_lat")
# What the verified dataset holds per record: the source's values, the WGS-84 point after
# automatic fixes (null when unusable), where it falls, and the verdict.
OUTPUT_COLUMNS = {
    "record_id": "string", "lon_raw": "string", "lat_raw": "string", "address": "string", "lon": "float64",
    "lat": "float64", "district_found": "string", "district_named": "string",
    "distance_to_reference_m": "float64", "reasons": "string", "outcome": "string",
}  # fmt: skip
UNUSABLE = ("MISSING", "NON_NUMERIC", "OUT_OF_RANGE", "PLACEHOLDER")


def output_schema() -> Any:  # -> pyarrow.Schema
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in OUTPUT_COLUMNS.items()])


def locate(
    lon_raw: Any, lat_raw: Any, rules: checks.Rules, batch_system: str | None
) -> tuple[NDArray, NDArray, NDArray[np.bool_], dict[str, NDArray[np.bool_]]]:
    """(lon, lat, usable, flags): the WGS-84 point after automatic fixes (swaps restored,
    the batch's system converted; NaN where unusable) and the point checks' flags.
    ``batch_system`` is what the whole batch was detected to be recorded in; None when it
    could not be checked (no reference): taken as recorded, and every usable point says so."""
    lon, lat, flags = checks.point_checks(checks.parse(lon_raw, lat_raw), rules)
    usable = ~np.logical_or.reduce([flags[code] for code in UNUSABLE])
    shifted = usable & (batch_system not in (None, "WGS-84"))
    if shifted.any():
        wlon, wlat = coords.to_wgs84(lon, lat, str(batch_system))
        lon, lat = np.where(shifted, wlon, lon), np.where(shifted, wlat, lat)
    flags["CRS_SHIFTED"] = shifted
    flags["CRS_NOT_CHECKED"] = usable & (batch_system is None)
    return np.where(usable, lon, np.nan), np.where(usable, lat, np.nan), usable, flags


def verify_table(
    table: Any,
    area: boundaries.Boundaries,
    rules: checks.Rules,
    *,
    batch_system: str | None = "WGS-84",
    expected_district: str | None = None,
    exact: NDArray[np.bool_] | None = None,
    near: NDArray[np.bool_] | None = None,
) -> tuple[Any, NDArray[np.uint16]]:
    """(the verified records as an Arrow table of ``output_schema()``, their reason masks).
    ``exact`` / ``near`` are the duplicate flags, found across the whole input; ``area``
    names where each point falls, and its area (``area.in_area``) is where it should."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    lon, lat, usable, flags = locate(table["lon_raw"], table["lat_raw"], rules, batch_system)
    where = boundaries.assign(area, lon, lat)
    names = pa.array([*area.names, ""], pa.string())
    found = pc.take(names, pa.array(np.where(where < 0, len(area.names), where)))
    flags["OUTSIDE_AREA"] = usable & ~area.inside_area(where)
    named = address.districts(table["address"])
    expected = pc.if_else(pc.equal(named, ""), expected_district or "", named)
    differs = pc.and_(pc.not_equal(expected, ""), pc.not_equal(found, expected)).to_numpy(zero_copy_only=False)
    flags["WRONG_DISTRICT"] = usable & (where >= 0) & differs
    ref_lon = table["ref_lon"].to_numpy().astype(float)  # nulls become NaN
    ref_lat = table["ref_lat"].to_numpy().astype(float)
    compared = ~np.isnan(ref_lon)
    distance = coords.distance_m(lon, lat, ref_lon, ref_lat) if compared.any() else np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        flags["FAR_FROM_ADDRESS"] = usable & (distance > rules.far_from_address_m)
    flags["DUPLICATE"] = exact if exact is not None else np.zeros(n, dtype=bool)
    flags["NEAR_DUPLICATE"] = near if near is not None else np.zeros(n, dtype=bool)
    mask = checks.reason_mask(flags)
    outcome, reasons = checks.labels(mask)

    def text(column: str) -> Any:
        values = table[column]
        return values if values.type == pa.string() else pc.cast(values, pa.string())

    out = pa.table([
        text("record_id"), text("lon_raw"), text("lat_raw"), text("address"),
        pa.array(lon, mask=~usable), pa.array(lat, mask=~usable), found, named,
        pa.array(distance, mask=np.isnan(distance)), reasons, outcome,
    ], schema=output_schema())  # fmt: skip
    return out, mask
