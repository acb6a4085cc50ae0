"""Per-record coordinate checks of the spatial verification service (item 10), vectorized.

Every function takes whole columns (numpy arrays or pandas Series) and returns arrays: no
per-row Python on the hot path. A record's reason codes are the checks it fails; its
outcome is what the service does about them:

- ``verified``: no reason.
- ``crs_not_checked``: no reason of its own, but the batch's coordinate system could not be
  checked (no record matched a standard address): a GCJ-02 batch would look the same,
  about 500 m off, so such a record is not called verified.
- ``corrected``: every reason has a safe automatic fix (swapped coordinates restored, a
  batch recorded in GCJ-02 or BD-09 converted to WGS-84) and the fixed point passes
  (``CRS_NOT_CHECKED`` among its reasons when the batch's system could not be checked).
- ``field_verification`` (外业核实): anything else; a person has to go and look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from govops import coords

if TYPE_CHECKING:
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
    "CRS_NOT_CHECKED": "CRS not checked: no reference",
    "OUTSIDE_AREA": "the point falls outside the deployment's area (its administrative code's polygons)",
    "WRONG_DISTRICT": "the point falls in another district than its address names",
    "FAR_FROM_ADDRESS": "the point is far from its standard address's reference point",
    "DUPLICATE": "the same coordinates as an earlier record",
    "NEAR_DUPLICATE": "within the tolerance of an earlier record's point",
}
AUTO_FIXABLE = {"SWAPPED", "CRS_SHIFTED"}
# Said of the whole batch, not found in the record: it keeps a record from being verified,
# and is no anomaly of the record's (the anomaly list leaves it out).
CAVEATS = {"CRS_NOT_CHECKED"}
CAVEAT_BITS = sum(1 << bit for bit, code in enumerate(REASONS) if code in CAVEATS)


@dataclass(frozen=True)
class Rules:
    """Thresholds; a deployment sets them in its spec."""

    min_decimals: int = 5  # 1e-5 degrees is about a metre
    near_duplicate_m: float = 1.0
    far_from_address_m: float = 200.0
    # The deployment's area, to tell a swapped pair from a point that is simply elsewhere.
    area_bounds: tuple[float, float, float, float] = (120.8, 30.9, 121.4, 31.4)  # lon/lat min, max


def in_bounds(lon: NDArray, lat: NDArray, bounds: tuple[float, float, float, float]) -> NDArray[np.bool_]:
    return (lon >= bounds[0]) & (lon <= bounds[2]) & (lat >= bounds[1]) & (lat <= bounds[3])


@dataclass(frozen=True)
class Parsed:
    """Coordinates as numbers, with what parsing found."""

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    missing: NDArray[np.bool_]
    non_numeric: NDArray[np.bool_]
    decimals: NDArray[np.int64]  # the fewer of the two coordinates' written decimals


# A coordinate as text: what a number cast accepts, so the slow path agrees with the fast one.
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _as_text(raw: Any) -> Any:  # -> pyarrow string Array
    """Text or numbers as the source holds them (an Arrow array, a pandas Series or a list,
    even of mixed text and numbers) as one Arrow string array, trimmed."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    if not isinstance(raw, pa.Array):
        raw = pa.array(pd.Series(raw, dtype=object).astype("string"), type=pa.string(), from_pandas=True)
    if not pa.types.is_string(raw.type):
        raw = pc.cast(raw, pa.string())
    return pc.utf8_trim_whitespace(raw)


def _parse_one(raw: Any) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """(value, missing, non_numeric, decimals) of one coordinate column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _as_text(raw)
    blank = pc.fill_null(pc.equal(text, ""), True)
    text = pc.if_else(blank, pa.scalar(None, pa.string()), text)
    try:  # clean columns, the usual case: one cast
        value = pc.cast(text, pa.float64())
    except pa.ArrowInvalid:  # some text is not a number: null it first, so it reads as NaN
        value = pc.cast(pc.if_else(pc.match_substring_regex(text, NUMBER), text, None), pa.float64())
    value = value.to_numpy(zero_copy_only=False)  # nulls become NaN
    missing = blank.to_numpy(zero_copy_only=False)
    # Decimals as written: the digits after the point of a plain decimal (none with an exponent).
    dot = pc.find_substring(text, ".")
    # Two plain searches: match_substring's ignore_case runs a regex, ten times slower.
    exponent = pc.or_(pc.match_substring(text, "e"), pc.match_substring(text, "E"))
    plain = pc.and_(pc.greater_equal(dot, 0), pc.invert(exponent))
    written = pc.if_else(plain, pc.subtract(pc.subtract(pc.binary_length(text), dot), 1), 0)
    decimals = pc.fill_null(written, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return value, missing, ~missing & np.isnan(value), decimals


def parse(raw_lon: Any, raw_lat: Any) -> Parsed:
    """Both coordinates from text or numbers (Arrow arrays, pandas Series or lists), with
    Arrow's kernels: no Python object per value."""
    lon, miss_lon, bad_lon, dec_lon = _parse_one(raw_lon)
    lat, miss_lat, bad_lat, dec_lat = _parse_one(raw_lat)
    missing = miss_lon | miss_lat
    return Parsed(lon, lat, missing, (bad_lon | bad_lat) & ~missing, np.minimum(dec_lon, dec_lat))


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
    """(exact, near) duplicate flags: a record is flagged when an earlier one (in input
    order) has the same point, or one within ``tolerance_m``; the first stays unflagged.

    A grid of cells one tolerance wide, sorted by cell: a point's partners are in its own
    cell or the four neighbours after it (the other four see it from theirs), and the
    neighbour lookups are sorted, so each is one cache-friendly merge. Which of a pair is
    the later comes from the input positions, not from the sort. Exact copies are found
    within crowded cells first, so a place recorded a thousand times costs a sort, not a
    million pairs. Candidate pairs are then measured in metres.
    """
    exact = np.zeros(len(lon), dtype=bool)
    near = np.zeros(len(lon), dtype=bool)
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return exact, near
    x, y = lon[idx], lat[idx]
    # Cell width in degrees of latitude; longitude degrees are shorter, so this is generous
    # and the metric distance decides.
    width = tolerance_m / 111_320.0 / max(float(np.cos(np.radians(np.max(np.abs(y))))), 0.1)
    key = (np.floor(x / width).astype(np.int64) << 32) + np.floor(y / width).astype(np.int64)
    order = np.argsort(key)
    key, x, y, idx = key[order], x[order], y[order], idx[order]

    def runs(sorted_key: NDArray) -> tuple[NDArray, NDArray]:
        start = np.flatnonzero(np.concatenate(([True], sorted_key[1:] != sorted_key[:-1])))
        return start, np.diff(np.append(start, len(sorted_key)))

    start, count = runs(key)
    crowded = np.flatnonzero(np.repeat(count > 1, count))
    if len(crowded):
        # Exact copies: equal points share a cell; the earliest of each stays.
        same_order = crowded[np.lexsort((idx[crowded], y[crowded], x[crowded]))]
        same = (x[same_order][1:] == x[same_order][:-1]) & (y[same_order][1:] == y[same_order][:-1])
        exact[idx[same_order[1:][same]]] = True
        leader = ~exact[idx]
        key, x, y, idx = key[leader], x[leader], y[leader], idx[leader]
        start, count = runs(key)
    cells = key[start]
    left: list[NDArray] = []
    right: list[NDArray] = []
    busy = count > 1  # the same cell: every pair of its points
    a, b = _pairs(start[busy], count[busy], start[busy], count[busy])
    left.append(a[a < b])
    right.append(b[a < b])
    for dx, dy in ((0, 1), (1, -1), (1, 0), (1, 1)):
        target = cells + (dx << 32) + dy  # sorted, as cells are
        at = np.minimum(np.searchsorted(cells, target), len(cells) - 1)
        hit = cells[at] == target
        a, b = _pairs(start[hit], count[hit], start[at[hit]], count[at[hit]])
        left.append(a)
        right.append(b)
    a, b = np.concatenate(left), np.concatenate(right)
    close = coords.distance_m(x[a], y[a], x[b], y[b]) <= tolerance_m
    near[np.maximum(idx[a], idx[b])[close]] = True
    near &= ~exact
    return exact, near


def _pairs(start_a: NDArray, count_a: NDArray, start_b: NDArray, count_b: NDArray) -> tuple[NDArray, NDArray]:
    """Every (i, j) with i in run a and j in run b, for each pair of runs, vectorized."""
    sizes = count_a * count_b
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run = np.repeat(np.arange(len(sizes)), sizes)
    within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return start_a[run] + within // count_b[run], start_b[run] + within % count_b[run]


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


def reason_mask(flags: dict[str, NDArray[np.bool_]]) -> NDArray[np.uint16]:
    """One bit per reason code (REASONS order) per record: the outcome, the reason text and
    every count follow from it."""
    n = len(next(iter(flags.values())))
    mask = np.zeros(n, dtype=np.uint16)
    for bit, code in enumerate(REASONS):
        if code in flags:
            mask |= np.asarray(flags[code], dtype=bool).astype(np.uint16) << np.uint16(bit)
    return mask


def mask_reasons(mask: int) -> list[str]:
    return [code for bit, code in enumerate(REASONS) if mask >> bit & 1]


def mask_outcome(mask: int) -> str:
    reasons = mask_reasons(mask)
    problems = [code for code in reasons if code not in CAVEATS]
    if not problems:
        return "crs_not_checked" if reasons else "verified"
    return "corrected" if all(code in AUTO_FIXABLE for code in problems) else "field_verification"


def labels(mask: NDArray[np.uint16]) -> tuple[Any, Any]:
    """(outcome, reasons) per record as Arrow string arrays; reasons as 'A;B' in REASONS
    order, '' when verified. Labels are made once per distinct mask, not per record."""
    import pyarrow as pa

    seen = np.bincount(mask, minlength=1 << len(REASONS)).astype(bool)
    present = np.flatnonzero(seen)
    lookup = np.cumsum(seen, dtype=np.int32) - 1  # the position of a mask among those present
    index = pa.array(lookup[mask])
    outcome = pa.DictionaryArray.from_arrays(index, pa.array([mask_outcome(int(m)) for m in present], pa.string()))
    reasons = pa.DictionaryArray.from_arrays(index, pa.array([";".join(mask_reasons(int(m))) for m in present]))
    return outcome.cast(pa.string()), reasons.cast(pa.string())
