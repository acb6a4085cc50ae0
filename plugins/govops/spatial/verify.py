"""One batch of records through every per-record check, as plain pandas in and out, so the
Spark job (spark_jobs/verify_spatial.py) runs it per Arrow batch and tests run it as is.

Input columns: ``record_id``, ``lon_raw``, ``lat_raw`` (text or numbers as the source
holds them), ``address`` (text, may be null), ``ref_lon`` / ``ref_lat`` (the WGS-84
reference point of the record's standard address, null when it has none). Spark adds
what its JVM computes faster than Python: ``lon_num``, ``lat_num``, ``decimals`` and
``district_named`` (see ``jvm_columns``); without them, pandas computes the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from govops import coords
from govops.spatial import address, boundaries, checks

if TYPE_CHECKING:
    import pandas as pd

# Columns verify_batch adds: the WGS-84 point after automatic fixes, where it falls, and
# one boolean per reason code computed per record (duplicates are added across batches).
OUTPUT_SCHEMA = (
    "record_id string, lon_raw string, lat_raw string, address string, lon double, lat double, "
    "district_found string, district_named string, distance_to_reference_m double, "
    + ", ".join(f"{code} boolean" for code in checks.REASONS if code not in ("DUPLICATE", "NEAR_DUPLICATE"))
)


def verify_batch(
    frame: pd.DataFrame,
    area: boundaries.Boundaries,
    rules: checks.Rules,
    *,
    batch_system: str = "WGS-84",
    expected_district: str | None = None,
) -> pd.DataFrame:
    """The per-record checks of one batch. ``batch_system`` is what the whole batch was
    detected to be recorded in; usable points are converted from it to WGS-84."""
    import pandas as pd

    if "lon_num" in frame:
        missing = (frame["lon_raw"].isna() | frame["lat_raw"].isna()).to_numpy() | (
            (frame["lon_raw"].str.strip() == "") | (frame["lat_raw"].str.strip() == "")
        ).fillna(False).to_numpy(dtype=bool)
        lon_num = frame["lon_num"].to_numpy(dtype=float, na_value=np.nan)
        lat_num = frame["lat_num"].to_numpy(dtype=float, na_value=np.nan)
        parsed = checks.Parsed(lon_num, lat_num, missing, ~missing & (np.isnan(lon_num) | np.isnan(lat_num)),
                               frame["decimals"].to_numpy(dtype=np.int64, na_value=0))  # fmt: skip
    else:
        parsed = checks.parse(frame["lon_raw"], frame["lat_raw"])
    lon, lat, flags = checks.point_checks(parsed, rules)
    usable = ~(flags["MISSING"] | flags["NON_NUMERIC"] | flags["OUT_OF_RANGE"] | flags["PLACEHOLDER"])
    shifted = usable & (batch_system != "WGS-84")
    if shifted.any():
        wlon, wlat = coords.to_wgs84(lon, lat, batch_system)
        lon, lat = np.where(shifted, wlon, lon), np.where(shifted, wlat, lat)
    flags["CRS_SHIFTED"] = shifted
    lon, lat = np.where(usable, lon, np.nan), np.where(usable, lat, np.nan)

    where = boundaries.assign(area, lon, lat)
    names = np.array([*area.names, ""], dtype=object)
    found = names[where]  # -1 picks the trailing ""
    flags["OUTSIDE_AREA"] = usable & (where < 0)
    if "district_named" in frame:
        named = frame["district_named"].fillna("").to_numpy(dtype=object)
    elif "address" in frame:
        named = address.parse(frame["address"])["district"].to_numpy(dtype=object)
    else:
        named = np.full(len(frame), "", object)
    expected = np.where(named != "", named, expected_district or "")
    flags["WRONG_DISTRICT"] = usable & (where >= 0) & (expected != "") & (found != expected)

    nothing = np.full(len(lon), np.nan)
    ref_lon = frame["ref_lon"].to_numpy(dtype=float, na_value=np.nan) if "ref_lon" in frame else nothing
    ref_lat = frame["ref_lat"].to_numpy(dtype=float, na_value=np.nan) if "ref_lat" in frame else nothing
    distance = coords.distance_m(lon, lat, ref_lon, ref_lat)
    with np.errstate(invalid="ignore"):
        flags["FAR_FROM_ADDRESS"] = usable & (distance > rules.far_from_address_m)

    out = pd.DataFrame({
        "record_id": frame["record_id"].astype("string"),
        "lon_raw": frame["lon_raw"].astype("string"), "lat_raw": frame["lat_raw"].astype("string"),
        "address": frame["address"].astype("string") if "address" in frame else pd.Series(pd.NA, dtype="string"),
        "lon": lon, "lat": lat, "district_found": found.astype(str), "district_named": named.astype(str),
        "distance_to_reference_m": distance,
    })  # fmt: skip
    for code in checks.REASONS:
        if code in flags:
            out[code] = flags[code]
    return out


def jvm_columns(lon_raw: str, lat_raw: str, address_column: str) -> list[tuple[str, str]]:
    """(name, Spark SQL expression) of the columns Spark computes for verify_batch: the
    numbers, the written decimals and the district the address names."""
    number = "try_cast(trim({c}) AS double)"
    written = "length(regexp_extract(trim({c}), '\\\\.(\\\\d*)$', 1))"
    district = address.java_district_expression(address_column)
    return [
        ("lon_num", number.format(c=lon_raw)),
        ("lat_num", number.format(c=lat_raw)),
        ("decimals", f"least({written.format(c=lon_raw)}, {written.format(c=lat_raw)})"),
        ("district_named", district),
    ]
