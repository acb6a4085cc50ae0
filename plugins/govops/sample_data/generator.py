"""Generate the public data of one district, deterministically from a seed.

Frames are built with numpy (no per-row Python on the large datasets) so a million persons
take seconds. Defects are placed on distinct rows of each dataset, so every defect kind's
count is exact and the report lists the affected ids.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from govops import coords, settings
from govops.identifiers import RESIDENT_ID_CHECK_CHARS, USCC_ALPHABET, USCC_WEIGHTS, resident_id_check_chars
from govops.sample_data import vocab

if TYPE_CHECKING:
    import pandas as pd

BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)  # all timestamps count back from here
BOUNDARY_FILE = "include/geo/qingpu_district_wgs84.geojson"


@dataclass(frozen=True)
class DefectCounts:
    """How many defects of each kind to inject (0 turns a kind off)."""

    missing_name: int = 5  # persons.name NULL
    bad_id_check_digit: int = 5  # persons.id_number: wrong GB 11643 check character
    bad_id_birth_date: int = 3  # persons.id_number: impossible birth date (month 13), valid check
    bad_phone: int = 4  # persons.phone: 10 digits
    duplicate_person: int = 5  # persons: an exact copy of a row under a new id
    missing_company_name: int = 3  # legal_persons.name NULL
    bad_uscc_check_char: int = 4  # legal_persons.uscc: wrong GB 32100 check character
    missing_coordinates: int = 3  # addresses lon/lat NULL
    coordinates_out_of_range: int = 3  # addresses lon beyond 180
    coordinates_swapped: int = 3  # addresses lon and lat exchanged
    coordinates_placeholder: int = 2  # addresses at (0, 0)
    malformed_event_lines: int = 4  # events/*.jsonl: truncated JSON
    malformed_csv_rows: int = 3  # exports/persons.csv: a row with too few columns
    wrong_encoding_files: int = 1  # exports/*.csv written in GBK although declared UTF-8
    unreadable_files: int = 2  # files/: empty or binary where text is declared
    missing_files: int = 2  # catalog entries whose file does not exist
    incomplete_catalog_entries: int = 3  # catalog entries missing a required field
    self_intersecting_polygons: int = 2  # spatial/poi.geojson: a bowtie polygon
    empty_geometries: int = 1  # spatial/poi.geojson: an empty polygon
    missing_geometries: int = 1  # spatial/poi.geojson: "geometry": null


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 42
    persons: int = 500
    legal_persons: int | None = None  # default: 2/5 of persons
    addresses: int | None = None  # default: 3/5 of persons
    events: int | None = None  # default: 2 per person
    files: int = 20
    events_per_file: int = 1000
    spatial_features: int = 60  # spatial/poi.geojson: points, lines and polygons, a third each
    defects: DefectCounts = field(default_factory=DefectCounts)

    @property
    def n_legal_persons(self) -> int:
        return self.legal_persons if self.legal_persons is not None else max(1, self.persons * 2 // 5)

    @property
    def n_addresses(self) -> int:
        return self.addresses if self.addresses is not None else max(1, self.persons * 3 // 5)

    @property
    def n_events(self) -> int:
        return self.events if self.events is not None else self.persons * 2


@dataclass
class Defect:
    kind: str
    dataset: str
    field: str
    ids: list[Any]

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass
class SampleReport:
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    defects: list[Defect] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(d.count for d in self.defects if d.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rows": self.rows,
            "defects": [{**asdict(d), "count": d.count} for d in self.defects],
        }


@dataclass
class SampleFrames:
    persons: pd.DataFrame
    legal_persons: pd.DataFrame
    addresses: pd.DataFrame
    report: SampleReport


def _positions(rng: np.random.Generator, n: int, dataset: str, wanted: dict[str, int]) -> dict[str, np.ndarray]:
    """Distinct row positions per defect kind, so no row carries two defects."""
    total = sum(wanted.values())
    if total > n:
        raise ValueError(f"{dataset}: {total} defects requested ({wanted}) but only {n} rows; raise the row count")
    chosen = rng.choice(n, size=total, replace=False)
    out, start = {}, 0
    for kind, k in wanted.items():
        out[kind] = np.sort(chosen[start : start + k])
        start += k
    return out


def _digits(strings: np.ndarray, width: int) -> np.ndarray:
    """(n, width) matrix of the ASCII digits of fixed-width strings."""
    raw = np.char.encode(strings.astype(f"U{width}"), "ascii")
    return (np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(-1, width) - ord("0")).astype(np.int64)


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    surnames = rng.choice(np.array(list(vocab.SURNAMES)), n)
    given = rng.choice(np.array(list(vocab.GIVEN_CHARS)), n)
    second = rng.choice(np.array([*vocab.GIVEN_CHARS, *[""] * 25]), n)  # about a third have one-character given names
    return np.char.add(np.char.add(surnames, given), second)


def _timestamps(rng: np.random.Generator, n: int, days: int = 365) -> np.ndarray:
    seconds = rng.integers(0, days * 86400, n)
    return np.datetime64(BASE_TIME.replace(tzinfo=None), "s") - seconds.astype("timedelta64[s]")


def load_boundary() -> Any:  # -> shapely Polygon
    import shapely

    data = json.loads((settings.repo_root() / BOUNDARY_FILE).read_text(encoding="utf-8"))
    return shapely.from_geojson(json.dumps(data["features"][0]["geometry"]))


def _points_inside(rng: np.random.Generator, n: int, polygon: Any) -> tuple[np.ndarray, np.ndarray]:
    import shapely

    shapely.prepare(polygon)
    minx, miny, maxx, maxy = polygon.bounds
    lons, lats, have = [], [], 0
    while have < n:
        batch = max(1024, int((n - have) * 1.6))
        x, y = rng.uniform(minx, maxx, batch), rng.uniform(miny, maxy, batch)
        keep = shapely.contains_xy(polygon, x, y)
        lons.append(x[keep])
        lats.append(y[keep])
        have += int(keep.sum())
    return np.round(np.concatenate(lons)[:n], 6), np.round(np.concatenate(lats)[:n], 6)


def _addresses(rng: np.random.Generator, cfg: SampleConfig, report: SampleReport) -> pd.DataFrame:
    import pandas as pd

    n = cfg.n_addresses
    lon, lat = _points_inside(rng, n, load_boundary())
    seats = np.array([(s[1], s[2]) for s in vocab.TOWN_SEATS])
    # Nearest town seat, with longitude scaled by cos(latitude) to make degrees comparable.
    d2 = ((lon[:, None] - seats[None, :, 0]) * 0.856) ** 2 + (lat[:, None] - seats[None, :, 1]) ** 2
    town = np.array([s[0] for s in vocab.TOWN_SEATS])[d2.argmin(axis=1)]
    road = rng.choice(np.array(vocab.ROADS), n)
    number = np.char.add(rng.integers(1, 2000, n).astype(str), "号")
    address = np.char.add(np.char.add(np.char.add("上海市青浦区", town), road), number)
    glon, glat = coords.wgs84_to_gcj02(lon, lat)
    df = pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "province": "上海市",
            "city": "上海市",
            "district": "青浦区",
            "town": town,
            "road": road,
            "house_number": number,
            "address": address,
            "lon": lon,
            "lat": lat,
            "lon_gcj02": np.round(glon, 6),
            "lat_gcj02": np.round(glat, 6),
            "updated_at": _timestamps(rng, n),
        }
    )
    d = cfg.defects
    pos = _positions(
        rng,
        n,
        "addresses",
        {
            "missing_coordinates": d.missing_coordinates,
            "coordinates_out_of_range": d.coordinates_out_of_range,
            "coordinates_swapped": d.coordinates_swapped,
            "coordinates_placeholder": d.coordinates_placeholder,
        },
    )
    wgs, gcj = ["lon", "lat"], ["lon_gcj02", "lat_gcj02"]
    df.loc[pos["missing_coordinates"], wgs + gcj] = np.nan
    df.loc[pos["coordinates_out_of_range"], ["lon", "lon_gcj02"]] += 180.0
    p = pos["coordinates_swapped"]
    df.loc[p, ["lon", "lat"]] = df.loc[p, ["lat", "lon"]].to_numpy()
    df.loc[p, gcj] = df.loc[p, ["lat_gcj02", "lon_gcj02"]].to_numpy()
    df.loc[pos["coordinates_placeholder"], wgs + gcj] = 0.0
    for kind, field_name in (
        ("missing_coordinates", "lon,lat"),
        ("coordinates_out_of_range", "lon"),
        ("coordinates_swapped", "lon,lat"),
        ("coordinates_placeholder", "lon,lat"),
    ):
        report.defects.append(Defect(kind, "addresses", field_name, df["id"].iloc[pos[kind]].tolist()))
    return df


def _persons(
    rng: np.random.Generator, cfg: SampleConfig, addresses: pd.DataFrame, report: SampleReport
) -> pd.DataFrame:
    import pandas as pd

    n = cfg.persons
    codes, weights = zip(*vocab.REGION_CODES, strict=True)
    region = rng.choice(np.array(codes), n, p=np.array(weights) / sum(weights))
    birth = np.datetime64("1940-01-01") + rng.integers(0, (date(2006, 12, 31) - date(1940, 1, 1)).days, n)
    birth_digits = pd.Series(birth).dt.strftime("%Y%m%d").to_numpy().astype("U8")
    male = rng.integers(0, 2, n).astype(bool)
    seq = rng.integers(0, 500, n) * 2 + male  # the 17th digit is odd for men
    first17 = np.char.add(np.char.add(region, birth_digits), np.char.zfill(seq.astype(str), 3))
    id_number = np.char.add(first17, resident_id_check_chars(first17))
    phone = np.char.add(
        rng.choice(np.array(vocab.MOBILE_PREFIXES), n), np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8)
    )
    where = rng.integers(0, len(addresses), n)
    room = np.char.add(np.char.add(rng.integers(1, 30, n).astype(str), "号楼"), rng.integers(101, 2600, n).astype(str))
    df = pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "name": _names(rng, n).astype(object),
            "gender": np.where(male, "男", "女"),
            "id_number": id_number.astype(object),
            "birth_date": birth,
            "phone": phone.astype(object),
            "address_id": addresses["id"].to_numpy()[where],
            "address": np.char.add(np.char.add(addresses["address"].to_numpy()[where].astype(str), room), "室"),
            "updated_at": _timestamps(rng, n),
        }
    )
    d = cfg.defects
    pos = _positions(
        rng,
        n,
        "persons",
        {
            "missing_name": d.missing_name,
            "bad_id_check_digit": d.bad_id_check_digit,
            "bad_id_birth_date": d.bad_id_birth_date,
            "bad_phone": d.bad_phone,
            "duplicate_person": d.duplicate_person,
        },
    )
    df.loc[pos["missing_name"], "name"] = None
    for p in pos["bad_id_check_digit"]:
        good = df.at[p, "id_number"]
        wrong = RESIDENT_ID_CHECK_CHARS[(RESIDENT_ID_CHECK_CHARS.index(good[-1]) + 1 + p % 10) % 11]
        df.at[p, "id_number"] = good[:-1] + wrong
    for p in pos["bad_id_birth_date"]:
        first = df.at[p, "id_number"][:10] + "13" + df.at[p, "id_number"][12:17]
        df.at[p, "id_number"] = first + resident_id_check_chars(np.array([first]))[0]
    for p in pos["bad_phone"]:
        df.at[p, "phone"] = df.at[p, "phone"][:10]
    copies = df.iloc[pos["duplicate_person"]].copy()
    copies["id"] = np.arange(n + 1, n + 1 + len(copies), dtype=np.int64)
    df = pd.concat([df, copies], ignore_index=True)
    for kind, field_name in (
        ("missing_name", "name"),
        ("bad_id_check_digit", "id_number"),
        ("bad_id_birth_date", "id_number"),
        ("bad_phone", "phone"),
    ):
        report.defects.append(Defect(kind, "persons", field_name, df["id"].iloc[pos[kind]].tolist()))
    report.defects.append(Defect("duplicate_person", "persons", "*", copies["id"].tolist()))
    return df


def _uscc(rng: np.random.Generator, n: int) -> np.ndarray:
    alphabet = np.array(list(USCC_ALPHABET))
    body = rng.integers(0, 31, (n, 9))  # the organisation code part
    prefix = np.array([USCC_ALPHABET.index(c) for c in "91310118"])  # enterprise, registered in Qingpu
    values = np.hstack([np.broadcast_to(prefix, (n, 8)), body])
    check = (31 - (values @ np.array(USCC_WEIGHTS)) % 31) % 31
    chars = alphabet[np.hstack([values, check[:, None]])]
    return np.ascontiguousarray(chars).view("U18").ravel()


def _legal_persons(
    rng: np.random.Generator, cfg: SampleConfig, addresses: pd.DataFrame, report: SampleReport
) -> pd.DataFrame:
    import pandas as pd

    n = cfg.n_legal_persons
    name = np.char.add(
        np.char.add(
            np.char.add("上海", rng.choice(np.array(vocab.COMPANY_WORDS), n)),
            rng.choice(np.array(vocab.COMPANY_TRADES), n),
        ),
        rng.choice(np.array(vocab.COMPANY_FORMS), n, p=[0.8, 0.15, 0.05]),
    )
    where = rng.integers(0, len(addresses), n)
    df = pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "uscc": _uscc(rng, n).astype(object),
            "name": name.astype(object),
            "legal_representative": _names(rng, n),
            "registered_address": addresses["address"].to_numpy()[where],
            "address_id": addresses["id"].to_numpy()[where],
            "established_on": np.datetime64("1995-01-01") + rng.integers(0, 11_000, n),
            "updated_at": _timestamps(rng, n),
        }
    )
    d = cfg.defects
    pos = _positions(
        rng,
        n,
        "legal_persons",
        {"missing_company_name": d.missing_company_name, "bad_uscc_check_char": d.bad_uscc_check_char},
    )
    df.loc[pos["missing_company_name"], "name"] = None
    for p in pos["bad_uscc_check_char"]:
        good = df.at[p, "uscc"]
        df.at[p, "uscc"] = good[:-1] + USCC_ALPHABET[(USCC_ALPHABET.index(good[-1]) + 1 + p % 29) % 31]
    report.defects.append(
        Defect("missing_company_name", "legal_persons", "name", df["id"].iloc[pos["missing_company_name"]].tolist())
    )
    report.defects.append(
        Defect("bad_uscc_check_char", "legal_persons", "uscc", df["id"].iloc[pos["bad_uscc_check_char"]].tolist())
    )
    return df


def build_frames(cfg: SampleConfig) -> SampleFrames:
    """The three front-end tables, with their defects, and the report so far."""
    rng = np.random.default_rng(cfg.seed)
    report = SampleReport(seed=cfg.seed)
    addresses = _addresses(rng, cfg, report)
    persons = _persons(rng, cfg, addresses, report)
    legal = _legal_persons(rng, cfg, addresses, report)
    report.rows.update(
        {
            "public_security.persons": len(persons),
            "market_regulation.legal_persons": len(legal),
            "planning_resources.addresses": len(addresses),
        }
    )
    return SampleFrames(persons=persons, legal_persons=legal, addresses=addresses, report=report)


def defect_kinds() -> list[str]:
    return [f.name for f in fields(DefectCounts)]
