"""Sample "new spatial records" to verify, made from the standard address library: each
record is a surveyed point of a standard address (a metre or two off), and chosen records
carry one known defect, so tests and benchmarks know every record's expected reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from govops import coords

if TYPE_CHECKING:
    import pandas as pd

DEFECTS = ("MISSING", "NON_NUMERIC", "OUT_OF_RANGE", "PLACEHOLDER", "SWAPPED", "LOW_PRECISION",
           "DUPLICATE", "NEAR_DUPLICATE", "FAR_FROM_ADDRESS", "WRONG_DISTRICT")  # fmt: skip


def clean_library(addresses: pd.DataFrame) -> pd.DataFrame:
    """The sample address table without its injected coordinate defects, without addresses
    within 3 m of an earlier one, and without those whose point lies outside the district
    the address names in the bundled boundaries: the reference, one place per address. (The
    sample generator places points in a coarser Qingpu outline, include/geo/README.md: 53 of
    the 1,789 places of the tests' sample lie across the finer border.)"""
    from govops.spatial import address, boundaries
    from govops.spatial.checks import duplicates

    ok = addresses["lon"].between(120.8, 121.4) & addresses["lat"].between(30.9, 31.4)
    library = addresses.loc[ok, ["id", "address", "lon", "lat"]].reset_index(drop=True)
    lon, lat = library["lon"].to_numpy(float), library["lat"].to_numpy(float)
    exact, near = duplicates(lon, lat, np.ones(len(library), dtype=bool), 3.0)
    area = boundaries.load()
    found = np.array([*area.names, ""], dtype=object)[boundaries.assign(area, lon, lat)]
    named = np.array(address.districts(library["address"]).to_pylist(), dtype=object)
    return library[~(exact | near) & ((named == "") | (found == named))].reset_index(drop=True)


def new_records(
    library: pd.DataFrame, n: int, *, seed: int = 0, per_defect: int = 5, system: str = "WGS-84"
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(records, expected record ids per defect). ``system`` records the whole batch in
    another coordinate system (a GCJ-02 batch from a web map, say)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(library), n, replace=n > len(library))  # distinct places when it can
    ref = library.iloc[pick].reset_index(drop=True)
    # A survey within about a metre; then as the batch's system records it.
    lon = ref["lon"].to_numpy() + rng.normal(0, 5e-6, n)
    lat = ref["lat"].to_numpy() + rng.normal(0, 5e-6, n)
    lon, lat = coords.from_wgs84(lon, lat, system)
    lon_text = np.char.mod("%.6f", lon).astype(object)
    lat_text = np.char.mod("%.6f", lat).astype(object)
    ids = np.char.add("R", np.char.zfill(np.arange(1, n + 1).astype(str), 8)).astype(object)
    address = ref["address"].to_numpy(dtype=object).copy()
    expected: dict[str, list[str]] = {}
    # Odd rows only, so the record before a defective one (a duplicate's original) is clean.
    if 2 * per_defect * len(DEFECTS) > n:
        raise ValueError(f"{n} records cannot hold {per_defect} of each of {len(DEFECTS)} defects")
    odd = np.arange(1, n, 2)
    chosen = rng.permutation(odd)[: per_defect * len(DEFECTS)].reshape(len(DEFECTS), per_defect)
    for defect, rows in zip(DEFECTS, chosen, strict=True):
        expected[defect] = sorted(ids[rows].tolist())
        if not len(rows):  # per_defect=0: a clean batch
            continue
        if defect == "MISSING":
            lon_text[rows] = None
        elif defect == "NON_NUMERIC":
            lat_text[rows] = "31.1度"
        elif defect == "OUT_OF_RANGE":
            lon_text[rows] = "200.123456"
        elif defect == "PLACEHOLDER":
            lon_text[rows], lat_text[rows] = "0", "0"
        elif defect == "SWAPPED":
            lon_text[rows], lat_text[rows] = lat_text[rows], lon_text[rows].copy()
        elif defect == "LOW_PRECISION":
            lon_text[rows] = np.char.mod("%.3f", lon[rows]).astype(object)
            lat_text[rows] = np.char.mod("%.3f", lat[rows]).astype(object)
        elif defect == "DUPLICATE":  # the same point as the record before it in id order
            lon_text[rows], lat_text[rows] = lon_text[rows - 1], lat_text[rows - 1]
            address[rows] = address[rows - 1]
            pick[rows] = pick[rows - 1]
        elif defect == "NEAR_DUPLICATE":  # 0.3 m east of the record before it
            lon_text[rows] = np.char.mod("%.7f", lon[rows - 1] + 3.2e-6).astype(object)
            lat_text[rows] = np.char.mod("%.7f", lat[rows - 1]).astype(object)
            address[rows] = address[rows - 1]
            pick[rows] = pick[rows - 1]
        elif defect == "FAR_FROM_ADDRESS":  # the point of another standard address, 500 m or more away
            lib_lon, lib_lat = library["lon"].to_numpy(), library["lat"].to_numpy()
            # An address no record surveys, so the moved point duplicates nobody's.
            free = np.setdiff1d(np.arange(len(library)), pick) if n < len(library) else np.arange(len(library))
            # Each to its own address (two moved to one place would duplicate each other).
            other = np.zeros(len(rows), dtype=np.int64)
            candidates = list(rng.permutation(free))
            for k, row in enumerate(rows):
                far = coords.distance_m(lib_lon[candidates], lib_lat[candidates], lon[row], lat[row]) >= 500
                other[k] = candidates.pop(int(np.argmax(far)))
            lon_text[rows] = np.char.mod("%.6f", lib_lon[other]).astype(object)
            lat_text[rows] = np.char.mod("%.6f", lib_lat[other]).astype(object)
        elif defect == "WRONG_DISTRICT":
            address[rows] = np.char.replace(address[rows].astype(str), "青浦区", "松江区").astype(object)
    records = pd.DataFrame({"id": ids, "lon": lon_text, "lat": lat_text, "address": address,
                            "address_id": library["id"].to_numpy()[pick]})  # fmt: skip
    return records, expected
