"""Per-record coordinate checks of the spatial verification service (item 10), vectorized.

Every function takes whole columns (numpy arrays or pandas Series) and returns arrays: no
per-row Python on the hot path. A record's reason codes are the checks it fails; its
outcome is what the service does about them:

- ``verified``: no reason.
- ``corrected``: every reason has a safe automatic fix (swapped coordinates restored, a
  batch recorded in GCJ-02 or BD-09 converted to WGS-84) and the fixed point passes.
- ``field_verification`` (外业核实): anything else; a person has to go and look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from govops import coords

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

# Reason codes, in the order a record reports them. The first one is its main reason.
REASONS = {
    "MISSING": "a coordinate is missing",
    "NON_NUMERIC": "a coordinate is not a number",
    "OUT_OF_RANGE": "longitude outside ±180 or latitude outside ±90",
    "PLACEHOLDER": "a placeholder point: (0,0), equal or whole-degree coordinates",
    "SWAPPED": "latitude and longitude swapped",
    "LOW_PRECISION": "fewer decimals than the survey standard asks for",
    "CRS_SHIFTED": "recorded in GCJ-02 or BD-09, not WGS-84 (detected for the whole batch)",
    "OUTSIDE_AREA": "the point falls in no boundary polygon of the deployment",
    "WRONG_DISTRICT": "the point falls in another district than its address names",
    "FAR_FROM_ADDRESS": "the point is far from its standard address's reference point",
    "DUPLICATE": "the same coordinates as an earlier record",
    "NEAR_DUPLICATE": "within the tolerance of an earlier record's point",
}
AUTO_FIXABLE = {"SWAPPED", "CRS_SHIFTED"}


@dataclass(frozen=True)
class Rules:
    """Thresholds; a deployment sets them in its spec."""

    min_decimals: int = 5  # 1e-5 degrees is about a metre
    near_duplicate_m: float = 1.0
    far_from_address_m: float = 200.0
    # The deployment's area, to tell a swapped pair from a point that is simply elsewhere.
    area_bounds: tuple[float, float, float, float] = (120.8, 30.9, 121.4, 31.4)  # lon/lat min, max


def parse_coordinates(raw_lon: pd.Series, raw_lat: pd.Series) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """(lon, lat, missing, non_numeric) from text or numbers as the source holds them."""
    import pandas as pd

    def one(raw: pd.Series) -> tuple[NDArray, NDArray, NDArray]:
        text = raw.astype("string").str.strip()
        missing = (text.isna() | (text == "")).to_numpy(dtype=bool)
        value = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return value, missing, ~missing & np.isnan(value)

    lon, miss_lon, bad_lon = one(raw_lon)
    lat, miss_lat, bad_lat = one(raw_lat)
    return lon, lat, miss_lon | miss_lat, (bad_lon | bad_lat) & ~(miss_lon | miss_lat)


def decimals(raw: pd.Series) -> NDArray[np.int64]:
    """Decimals written in the source text (a float column counts its shortest repr)."""
    text = raw.astype("string").str.strip()
    fraction = text.str.extract(r"\.(\d*)$", expand=False).fillna("")
    return fraction.str.len().to_numpy(dtype=np.int64, na_value=0)


def in_bounds(lon: NDArray, lat: NDArray, bounds: tuple[float, float, float, float]) -> NDArray[np.bool_]:
    return (lon >= bounds[0]) & (lon <= bounds[2]) & (lat >= bounds[1]) & (lat <= bounds[3])


@dataclass(frozen=True)
class Parsed:
    """Coordinates as numbers, with what parsing found. Spark computes these on the JVM
    (see spark_jobs/verify_spatial.py); :func:`parse` is the same in pandas."""

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    missing: NDArray[np.bool_]
    non_numeric: NDArray[np.bool_]
    decimals: NDArray[np.int64]  # the fewer of the two coordinates' written decimals


def parse(raw_lon: pd.Series, raw_lat: pd.Series) -> Parsed:
    lon, lat, missing, non_numeric = parse_coordinates(raw_lon, raw_lat)
    return Parsed(lon, lat, missing, non_numeric, np.minimum(decimals(raw_lon), decimals(raw_lat)))


def point_checks(parsed: Parsed, rules: Rules) -> tuple[NDArray, NDArray, dict[str, NDArray[np.bool_]]]:
    """The checks a point fails on its own: (lon, lat with swaps restored, flags by code)."""
    lon, lat, missing, non_numeric = parsed.lon, parsed.lat, parsed.missing, parsed.non_numeric
    valid = ~missing & ~non_numeric
    # A swapped pair is often out of range as recorded (latitude 121): look for it first.
    swapped = valid & ~in_bounds(lon, lat, rules.area_bounds) & in_bounds(lat, lon, rules.area_bounds)
    lon, lat = np.where(swapped, lat, lon), np.where(swapped, lon, lat)
    out_of_range = valid & ((np.abs(lon) > 180) | (np.abs(lat) > 90))
    usable = valid & ~out_of_range
    with np.errstate(invalid="ignore"):
        placeholder = usable & (
            ((lon == 0) & (lat == 0)) | (lon == lat) | ((lon == np.round(lon)) & (lat == np.round(lat)))
        )
    usable &= ~placeholder
    low_precision = usable & (parsed.decimals < rules.min_decimals)
    flags = {"MISSING": missing, "NON_NUMERIC": non_numeric, "OUT_OF_RANGE": out_of_range,
             "PLACEHOLDER": placeholder, "SWAPPED": swapped, "LOW_PRECISION": low_precision}  # fmt: skip
    return lon, lat, flags


def duplicates(lon: NDArray, lat: NDArray, usable: NDArray[np.bool_], tolerance_m: float) -> tuple[NDArray, NDArray]:
    """(exact, near) duplicate flags; the first record of a group in input order is kept
    unflagged. Near duplicates use a spatial index on the points (shapely STRtree)."""
    import pandas as pd
    import shapely

    exact = np.zeros(len(lon), dtype=bool)
    near = np.zeros(len(lon), dtype=bool)
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return exact, near
    frame = pd.DataFrame({"lon": lon[idx], "lat": lat[idx]})
    exact[idx] = frame.duplicated(keep="first").to_numpy()
    # Tolerance in degrees of latitude; longitude degrees are shorter, so this is generous
    # and the metric distance decides.
    tol_deg = tolerance_m / 111_320.0 / max(np.cos(np.radians(np.nanmax(np.abs(lat[idx])))), 0.1)
    points = shapely.points(lon[idx], lat[idx])
    tree = shapely.STRtree(points)
    left, right = tree.query(points, predicate="dwithin", distance=tol_deg)
    later = right > left  # each pair once, flagging the later record
    left, right = left[later], right[later]
    close = coords.distance_m(lon[idx][left], lat[idx][left], lon[idx][right], lat[idx][right]) <= tolerance_m
    flagged = np.zeros(len(idx), dtype=bool)
    flagged[right[close]] = True
    near[idx] = flagged & ~exact[idx]
    return exact, near


@dataclass(frozen=True)
class BatchSystem:
    """Which coordinate system a batch most likely uses, from its records' offsets to the
    reference points of their standard addresses."""

    system: str
    matched: int  # records within the match radius of their reference under that system
    compared: int
    median_error_m: dict[str, float]  # per candidate system
    shift_m: tuple[float, float]  # median (east, north) offset of the records from their references


def detect_system(
    lon: NDArray, lat: NDArray, ref_lon: NDArray, ref_lat: NDArray, *, match_m: float = 30.0
) -> BatchSystem | None:
    """A GCJ-02 shift is a few hundred metres, consistent across a batch: compare each
    record with its reference point as every system would record it, and pick the system
    under which most records sit on their reference. None without comparable records."""
    ok = ~(np.isnan(lon) | np.isnan(lat) | np.isnan(ref_lon) | np.isnan(ref_lat))
    if not ok.any():
        return None
    lon, lat, ref_lon, ref_lat = lon[ok], lat[ok], ref_lon[ok], ref_lat[ok]
    errors, matched = {}, {}
    for system in coords.SYSTEMS:
        expect_lon, expect_lat = coords.from_wgs84(ref_lon, ref_lat, system)
        distance = coords.distance_m(lon, lat, expect_lon, expect_lat)
        errors[system] = float(np.median(distance))
        matched[system] = int((distance <= match_m).sum())
    best = max(coords.SYSTEMS, key=lambda s: (matched[s], -errors[s]))
    east = (lon - ref_lon) * 111_320.0 * np.cos(np.radians(ref_lat))
    north = (lat - ref_lat) * 111_320.0
    return BatchSystem(best, matched[best], int(ok.sum()), errors,
                       (float(np.median(east)), float(np.median(north))))  # fmt: skip


def outcomes(flags: dict[str, NDArray[np.bool_]]) -> tuple[NDArray, NDArray]:
    """(outcome, reasons) per record; reasons as 'A;B' in REASONS order, '' when verified."""
    n = len(next(iter(flags.values())))
    codes = [c for c in REASONS if c in flags]
    matrix = np.column_stack([flags[c] for c in codes]) if codes else np.zeros((n, 0), dtype=bool)
    text = np.full(n, "", dtype="<U200")
    for code in codes:
        text = np.char.add(text, np.where(flags[code], code + ";", ""))
    reasons = np.char.rstrip(text, ";").astype(object)
    any_reason = matrix.any(axis=1)
    fixable = np.array([c in AUTO_FIXABLE for c in codes], dtype=bool)
    only_fixable = any_reason & ~(matrix & ~fixable).any(axis=1)
    outcome = np.where(~any_reason, "verified", np.where(only_fixable, "corrected", "field_verification"))
    return outcome.astype(object), reasons
