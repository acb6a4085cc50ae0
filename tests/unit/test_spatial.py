"""Spatial verification building blocks: every reason code on crafted records, batch
coordinate-system detection, point-in-polygon against geopandas.sjoin, address parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from govops import coords
from govops.spatial import address, boundaries, checks

RULES = checks.Rules()


def run_point_checks(rows: list[tuple[object, object]]) -> dict[str, list[bool]]:
    frame = pd.DataFrame(rows, columns=["lon", "lat"], dtype=object)
    _, _, flags = checks.point_checks(checks.parse(frame["lon"], frame["lat"]), RULES)
    return {code: flag.tolist() for code, flag in flags.items()}


def test_every_point_reason_on_crafted_records() -> None:
    rows = [
        ("121.123456", "31.154321"),  # fine
        (None, "31.1"),  # missing
        ("", "31.123456"),  # missing
        ("121.1x", "31.123456"),  # non-numeric
        ("301.123456", "31.123456"),  # out of range
        ("0", "0"),  # placeholder
        ("121.0", "31.0"),  # whole degrees: placeholder
        ("31.154321", "121.123456"),  # swapped
        ("121.12", "31.15"),  # low precision
        (121.123456, 31.154321),  # numbers, not text
    ]
    flags = run_point_checks(rows)
    expected = {
        "MISSING": [1, 2], "NON_NUMERIC": [3], "OUT_OF_RANGE": [4], "PLACEHOLDER": [5, 6], "SWAPPED": [7],
        "LOW_PRECISION": [8],
    }  # fmt: skip
    for code, rows_flagged in expected.items():
        assert [i for i, f in enumerate(flags[code]) if f] == rows_flagged, code


def test_swapped_points_are_restored() -> None:
    frame = pd.DataFrame({"lon": ["31.154321"], "lat": ["121.123456"]})
    lon, lat, flags = checks.point_checks(checks.parse(frame["lon"], frame["lat"]), RULES)
    assert flags["SWAPPED"].tolist() == [True] and (lon[0], lat[0]) == (121.123456, 31.154321)


def test_exact_and_near_duplicates_flag_the_later_record() -> None:
    lon = np.array([121.1, 121.1, 121.100005, 121.2, 121.1003])
    lat = np.array([31.1, 31.1, 31.100004, 31.2, 31.1])
    exact, near = checks.duplicates(lon, lat, np.ones(5, dtype=bool), tolerance_m=1.0)
    assert exact.tolist() == [False, True, False, False, False]
    assert near.tolist() == [False, False, True, False, False]  # 0.7 m away; 28 m is not near


def test_outcomes_and_reason_lists() -> None:
    flags = {"SWAPPED": np.array([False, True, True, False]), "LOW_PRECISION": np.array([False, False, True, False]),
             "CRS_SHIFTED": np.array([False, False, False, True])}  # fmt: skip
    outcome, reasons = checks.labels(checks.reason_mask(flags))
    assert outcome.tolist() == ["verified", "corrected", "field_verification", "corrected"]
    assert reasons.tolist() == ["", "SWAPPED", "SWAPPED;LOW_PRECISION", "CRS_SHIFTED"]


@pytest.mark.parametrize("system", ["WGS-84", "GCJ-02", "BD-09"])
def test_a_batch_in_another_system_is_detected(system: str) -> None:
    rng = np.random.default_rng(5)
    ref_lon, ref_lat = rng.uniform(120.95, 121.3, 2000), rng.uniform(31.0, 31.25, 2000)
    lon, lat = coords.from_wgs84(ref_lon, ref_lat, system)
    # Real records are not exactly on their reference: a few metres of noise, and some
    # records of another place altogether.
    lon = lon + rng.normal(0, 3e-5, 2000)
    lat = lat + rng.normal(0, 3e-5, 2000)
    lon[:100] += 0.01
    found = checks.detect_system(lon, lat, ref_lon, ref_lat)
    assert found is not None and found.system == system
    assert found.matched >= 1850 and found.compared == 2000
    if system == "GCJ-02":  # the Mars offset in Qingpu: about 500 m, east-south-east
        east, north = found.shift_m
        assert 400 < east < 600 and -350 < north < -150


@pytest.mark.parametrize("direct_limit", [64, 0], ids=["per-polygon", "points-index"])
def test_point_in_polygon_matches_geopandas_sjoin(direct_limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundaries, "DIRECT_LIMIT", direct_limit)
    import geopandas as gpd

    b = boundaries.load()
    assert len(b.names) == 24 and b.area_names == ("青浦区",)
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = boundaries.load(area_code="310118").box[b.names.index("青浦区")]  # Qingpu and around it
    lon, lat = rng.uniform(x0 - 0.1, x1 + 0.1, 50_000), rng.uniform(y0 - 0.1, y1 + 0.1, 50_000)
    lon[:3] = np.nan
    # Points on the borders (the vertices of Qingpu, most shared with a neighbour: the first
    # polygon wins) and on the lines of the point-in-polygon grid's cells.
    import shapely

    vertices = shapely.get_coordinates(b.polygons[b.names.index("青浦区")])
    lon[3 : 3 + len(vertices)], lat[3 : 3 + len(vertices)] = vertices.T
    grid = b.grid
    lon[1000:2000] = grid.x0 + grid.size * np.round((lon[1000:2000] - grid.x0) / grid.size)
    lat[1500:2500] = grid.y0 + grid.size * np.round((lat[1500:2500] - grid.y0) / grid.size)
    ours = boundaries.assign(b, lon, lat)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    polygons = gpd.GeoDataFrame({"i": range(len(b.names))}, geometry=list(b.polygons), crs=4326)
    joined = gpd.sjoin(points, polygons, how="left", predicate="intersects")
    # On a shared border the first polygon of the file holds the point.
    theirs = joined.groupby(level=0)["i"].min().fillna(-1).astype(int).to_numpy()
    assert (ours == theirs).all()
    assert (ours == b.names.index("青浦区")).sum() > 1000 and len(set(ours.tolist())) >= 8


ADDRESSES = [
    ("上海市青浦区夏阳街道公园路120号", ("上海市", "", "青浦区", "夏阳街道", "公园路", "120号")),
    ("上海市上海市青浦区朱家角镇沪青平公路1-3号", ("上海市", "上海市", "青浦区", "朱家角镇", "沪青平公路", "1-3号")),
    ("上海青浦区华新镇华新路6号", ("上海市", "", "青浦区", "华新镇", "华新路", "6号")),
    ("青浦区徐泾镇徐泾北路88号", ("", "", "青浦区", "徐泾镇", "徐泾北路", "88号")),
    ("江苏省苏州市昆山市花桥镇绿地大道8号", ("江苏省", "苏州市", "昆山市", "花桥镇", "绿地大道", "8号")),
    ("浙江省嘉兴市嘉善县西塘镇南苑路10号", ("浙江省", "嘉兴市", "嘉善县", "西塘镇", "南苑路", "10号")),
    ("上海市青浦区崧泽大道 9000 号", ("上海市", "", "青浦区", "", "崧泽大道", "9000号")),
    ("朱家角镇漕平路", ("", "", "", "朱家角镇", "漕平路", "")),
]


def test_address_parsing() -> None:
    parsed = address.parse(pd.Series([a for a, _ in ADDRESSES]))
    for (text, want), got in zip(ADDRESSES, parsed.itertuples(index=False), strict=True):
        assert tuple(got) == want, text
    assert address.standard_forms(pd.Series([a for a, _ in ADDRESSES]))[0].as_py() == "夏阳街道公园路120号"


def test_districts_read_as_the_whole_parse_does() -> None:
    import pyarrow as pa

    """The job reads only the levels down to the street (address.districts): the district
    must be the one the whole pattern gives, on every address above and on blanks."""
    texts = [text for text, _ in ADDRESSES] + ["青浦区1号", "上海市闵行区", "", "  ", "苏州市花桥镇绿地大道8号", None]
    found = address.districts(pd.Series(texts, dtype=object)).to_pylist()
    assert found == address.parse(pd.Series(texts, dtype=object))["district"].tolist()
    assert found[:5] == ["青浦区", "青浦区", "青浦区", "青浦区", "昆山市"] and found[-2:] == ["苏州市", ""]
    assert found[len(ADDRESSES) : len(ADDRESSES) + 2] == ["青浦区", "闵行区"]
    # A slice of a longer array reads the same.
    sliced = pa.array(["x", *texts[:4]]).slice(1)
    assert address.districts(sliced).to_pylist() == found[:4]


def test_grid_duplicates_match_a_spatial_index_on_clustered_points() -> None:
    """checks.duplicates (a sorted grid) flags exactly the records a shapely STRtree finds
    within the tolerance of an earlier record, on points with exact copies, close pairs
    across cell borders and a crowded spot."""
    import shapely

    rng = np.random.default_rng(11)
    n = 20_000
    lon, lat = np.round(rng.uniform(121.0, 121.02, n), 6), np.round(rng.uniform(31.1, 31.12, n), 6)
    copy = rng.integers(0, n, 2000)
    lon[copy[:1000]], lat[copy[:1000]] = lon[copy[1000:]], lat[copy[1000:]]  # exact copies
    shifted = rng.integers(0, n, 3000)
    lon[shifted[1500:]] = lon[shifted[:1500]] + rng.uniform(-1.2e-5, 1.2e-5, 1500)  # about a metre east or west
    lat[shifted[1500:]] = lat[shifted[:1500]] + rng.uniform(-9e-6, 9e-6, 1500)
    lon[:300], lat[:300] = 121.01 + rng.uniform(0, 2e-5, 300), 31.11 + rng.uniform(0, 2e-5, 300)  # a crowded spot
    usable = rng.random(n) > 0.05
    exact, near = checks.duplicates(lon, lat, usable, tolerance_m=1.0)

    idx = np.flatnonzero(usable)
    points = shapely.points(lon[idx], lat[idx])
    left, right = shapely.STRtree(points).query(points, predicate="dwithin", distance=2e-5)
    pair = right > left
    left, right = left[pair], right[pair]
    same = (lon[idx][left] == lon[idx][right]) & (lat[idx][left] == lat[idx][right])
    close = coords.distance_m(lon[idx][left], lat[idx][left], lon[idx][right], lat[idx][right]) <= 1.0
    want_exact = np.zeros(n, dtype=bool)
    want_exact[idx[right[same]]] = True
    want_near = np.zeros(n, dtype=bool)
    want_near[idx[right[close]]] = True
    want_near &= ~want_exact
    assert (exact == want_exact).all() and (near == want_near).all()
    assert exact.sum() > 600 and near.sum() > 1000 and not (exact | near)[~usable].any()


def test_coordinates_parse_from_arrow_text_and_numbers() -> None:
    import pyarrow as pa

    parsed = checks.parse(pa.array([" 121.123456 ", "1.5e2", "121.", None, "", "121.1x"]),
                          pa.array([31.154321, 31.1, 31.1234, 31.1, 31.1, 31.1]))  # fmt: skip
    assert parsed.lon[:3].tolist() == [121.123456, 150.0, 121.0] and np.isnan(parsed.lon[3:]).all()
    assert parsed.missing.tolist() == [False, False, False, True, True, False]
    assert parsed.non_numeric.tolist() == [False, False, False, False, False, True]
    assert parsed.decimals[:3].tolist() == [6, 0, 0]  # an exponent or a bare point writes no decimals


def test_chunks_cover_the_input_in_order(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from govops.spatial import chunks

    for name, rows in (("b.parquet", 250), ("a.parquet", 1000)):
        table = pa.table({"id": [f"{name}{i}" for i in range(rows)]})
        pq.write_table(table, tmp_path / name, row_group_size=100)
    planned, schema = chunks.plan(tmp_path.as_uri(), chunk_rows=300)
    assert schema.names == ["id"]
    assert [(Path(c.path).name, c.row_groups, c.first, c.rows) for c in planned] == [
        ("a.parquet", (0, 1, 2), 0, 300), ("a.parquet", (3, 4, 5), 300, 300), ("a.parquet", (6, 7, 8), 600, 300),
        ("a.parquet", (9,), 900, 100), ("b.parquet", (0, 1, 2), 1000, 250),
    ]  # fmt: skip
    ids = [i for c in planned for i in chunks.read(tmp_path.as_uri(), c, ["id"])["id"].to_pylist()]
    assert ids == [f"a.parquet{i}" for i in range(1000)] + [f"b.parquet{i}" for i in range(250)]


def test_distance_percentiles_merge_across_chunks() -> None:
    from govops.spatial import chunks

    rng = np.random.default_rng(2)
    parts = [rng.exponential(10, n) for n in (5000, 20000, 1000)]
    summaries = [{"compared": len(p), "quantiles": np.quantile(p, chunks.QUANTILES).tolist()} for p in parts]
    summaries.append({"compared": 0, "quantiles": []})
    merged = chunks.merged_percentiles(summaries, (0.5, 0.9, 0.99))
    exact = np.quantile(np.concatenate(parts), [0.5, 0.9, 0.99])
    assert np.allclose(merged, exact, rtol=0.05)
    assert chunks.merged_percentiles([{"compared": 0, "quantiles": []}], (0.5,)) == []


def test_duplicates_by_bucket_equal_the_whole_input_search(tmp_path: Path) -> None:
    """The job's duplicate search (chunks.write_points per chunk, then bucket_duplicates per
    bucket) flags the same records as one search over the whole input: pairs that straddle
    a grid cell's border, or chunks, included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from govops.spatial import chunks

    rng = np.random.default_rng(7)
    n = 6000
    # Points on and around grid lines (multiples of CELL_DEG), so many pairs cross a border.
    lon = 121.0 + rng.integers(0, 4, n) * chunks.CELL_DEG + rng.normal(0, 4e-6, n)
    lat = 31.1 + rng.integers(0, 4, n) * chunks.CELL_DEG + rng.normal(0, 4e-6, n)
    lon[100:200], lat[100:200] = lon[:100], lat[:100]  # exact copies
    text = [f"{x:.7f}" for x in lon]
    text[5] = "not a number"
    table = pa.table({"id": [f"R{i:05d}" for i in range(n)], "lon": text, "lat": [f"{y:.7f}" for y in lat]})
    (tmp_path / "input").mkdir()
    pq.write_table(table, tmp_path / "input/part-0.parquet", row_group_size=500)
    planned, _ = chunks.plan((tmp_path / "input").as_uri(), chunk_rows=1000)
    rules = checks.Rules(near_duplicate_m=1.0)
    job = chunks.Job((tmp_path / "input").as_uri(), chunks.Columns("id", "lon", "lat", None, None), rules.__dict__,
                     "WGS-84", None, 3, "", "")  # fmt: skip
    work = (tmp_path / "work").as_uri()
    assert sum(chunks.write_points(chunk, job, work) for chunk in planned) > len(planned)
    found = [chunks.bucket_duplicates(bucket, work, 1.0) for bucket in range(job.buckets)]
    positions = np.concatenate([f[0] for f in found])
    kinds = np.concatenate([f[1] for f in found])
    assert len(positions) == len(set(positions.tolist()))  # each record decided by one bucket

    from govops.spatial import verify

    whole_lon, whole_lat, usable, _ = verify.locate(table["lon"], table["lat"], rules, "WGS-84")
    exact, near = checks.duplicates(whole_lon, whole_lat, usable, 1.0)
    assert sorted(positions[kinds == 1].tolist()) == np.flatnonzero(exact).tolist()
    assert sorted(positions[kinds == 2].tolist()) == np.flatnonzero(near).tolist()
    assert exact.sum() >= 100 and near.sum() > 1000


SHANGHAI = ("黄浦区", "徐汇区", "长宁区", "静安区", "普陀区", "虹口区", "杨浦区", "闵行区", "宝山区", "嘉定区",
            "浦东新区", "金山区", "松江区", "青浦区", "奉贤区", "崇明区")  # fmt: skip


def test_bundled_boundaries_cover_shanghai_and_the_area_is_chosen_by_code(tmp_path: Path) -> None:
    """The bundled outlines are the 16 districts of Shanghai (and the 8 county-level
    divisions around the city), finer than the old ones (Qingpu: 79 vertices); the area
    code chooses the deployment's area among them."""
    import shapely

    qingpu = boundaries.load()
    assert qingpu.area_code == "310118" and qingpu.area_names == ("青浦区",)
    assert shapely.get_num_coordinates(qingpu.polygons[qingpu.names.index("青浦区")]) == 940
    assert boundaries.load(area_code="310000").area_names == SHANGHAI
    assert boundaries.load(area_code="320500").area_names == ("吴江区", "昆山市", "太仓市")  # Suzhou's, of those here
    for code, message in (("3101", "six digits"), ("110000", "no polygon has the area code 110000")):
        with pytest.raises(ValueError, match=message):
            boundaries.load(area_code=code)
    # A deployment's own file without adcodes is its area as a whole; an area code needs them.
    own = tmp_path / "streets.geojson"
    own.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "x"}, '
                   '"geometry": {"type": "Polygon", "coordinates": [[[121, 31], [121.1, 31], [121, 31.1], '
                   '[121, 31]]]}}]}')  # fmt: skip
    assert boundaries.load(own).area_names == ("x",)
    with pytest.raises(ValueError, match=r"streets\.geojson: the area code 310118 needs an 'adcode' column"):
        boundaries.load(own, "310118")
    # Shipped to the executors, the area comes along.
    shipped = boundaries.from_wkb(*boundaries.to_wkb(qingpu))
    assert shipped.area_names == ("青浦区",) and shipped.area_code == "310118"
    assert shipped.grid is qingpu.grid or (shipped.grid.polygon == qingpu.grid.polygon).all()


def verify_records(addresses: list[object], points: list[tuple[str, str]], area: boundaries.Boundaries,
                   batch_system: str | None = "WGS-84") -> list[dict[str, object]]:  # fmt: skip
    import pyarrow as pa

    from govops.spatial import verify

    n = len(points)
    table = pa.table({"record_id": [f"R{i}" for i in range(n)], "lon_raw": [p[0] for p in points],
                      "lat_raw": [p[1] for p in points], "address": pa.array(addresses, pa.string()),
                      "ref_lon": pa.nulls(n, pa.float64()), "ref_lat": pa.nulls(n, pa.float64())})  # fmt: skip
    rules = checks.Rules(area_bounds=area.bounds)
    out, _ = verify.verify_table(table, area, rules, batch_system=batch_system, expected_district="青浦区")
    assert out.num_rows == n
    return out.to_pylist()


QINGPU_POINT = ("121.110000", "31.150000")  # 青浦区 (赵巷镇)
PUDONG_POINT = ("121.500000", "31.240000")  # 浦东新区 (陆家嘴)


def test_points_elsewhere_in_the_city_are_named_and_outside_only_the_area() -> None:
    addresses = ["上海市青浦区赵巷镇业辉路1号", "上海市浦东新区陆家嘴环路1号", "上海市青浦区赵巷镇业辉路1号"]
    points = [QINGPU_POINT, PUDONG_POINT, PUDONG_POINT]
    qingpu = verify_records(addresses, points, boundaries.load(area_code="310118"))
    assert [r["district_found"] for r in qingpu] == ["青浦区", "浦东新区", "浦东新区"]
    assert [r["reasons"] for r in qingpu] == ["", "OUTSIDE_AREA", "OUTSIDE_AREA;WRONG_DISTRICT"]
    city = verify_records(addresses, points, boundaries.load(area_code="310000"))
    assert [r["reasons"] for r in city] == ["", "", "WRONG_DISTRICT"]


@pytest.mark.parametrize(("texts", "named"), [
    ([None, None, None], ["", "", ""]),  # all null (what the job gives when the input has no address column)
    (["上海市青浦区朱家角镇漕平路", "夏阳街道公园路", ""], ["青浦区", "", ""]),  # no house number, no digit at all
    (["上海市青浦区朱家角镇漕平路１２号", "青浦区徐泾镇徐泾北路８８－２号", "崧泽大道　９０００　号"],
     ["青浦区", "青浦区", ""]),  # full-width digits
    ([], []),
], ids=["all-null", "no-house-number", "full-width-digits", "empty"])  # fmt: skip
def test_addresses_without_an_ascii_digit_verify(texts: list[object], named: list[str]) -> None:
    """A chunk in which no address holds an ASCII digit used to crash (IndexError in
    address._heads); every retry failed the same way."""
    rows = verify_records(texts, [QINGPU_POINT] * len(texts), boundaries.load())
    assert [r["district_named"] for r in rows] == named
    assert [r["outcome"] for r in rows] == ["verified"] * len(texts)
    assert [r["address"] for r in rows] == texts  # the source's text, as it was


def test_full_width_digits_parse_as_ascii_ones() -> None:
    import pyarrow as pa

    wide = ["上海市青浦区朱家角镇漕平路１２号", None, "青浦区徐泾镇徐泾北路８８－２号",
            "上海市青浦区崧泽大道　９０００　号", "上海青浦区华新镇华新路6号"]  # fmt: skip
    narrow = ["上海市青浦区朱家角镇漕平路12号", None, "青浦区徐泾镇徐泾北路88-2号", "上海市青浦区崧泽大道9000号",
              "上海青浦区华新镇华新路6号"]  # fmt: skip
    sliced = pa.array(["Ａ", *wide, "１"]).slice(1, len(wide))
    assert address.parse(pd.Series(wide, dtype=object)).equals(address.parse(pd.Series(narrow, dtype=object)))
    assert address.standard_forms(sliced).to_pylist() == ["朱家角镇漕平路12号", "", "徐泾镇徐泾北路88-2号",
                                                          "崧泽大道9000号", "华新镇华新路6号"]  # fmt: skip
    assert address.districts(sliced).to_pylist() == ["青浦区", "", "青浦区", "青浦区", "青浦区"]
    # Only the full-width ASCII forms change; the ideographic space is left to the parse.
    assert address._halfwidth(sliced).to_pylist() == [narrow[0], None, narrow[2], "上海市青浦区崧泽大道　9000　号",
                                                      narrow[4]]  # fmt: skip
    plain = pa.array(narrow)
    assert address._halfwidth(plain) is plain  # nothing to change: no copy


def test_a_batch_whose_system_cannot_be_checked_is_not_verified() -> None:
    """Without a reference a GCJ-02 batch sits about 500 m off and nothing can tell: no
    record is called verified, and each says why."""
    from govops.spatial import report

    gcj = [f"{x:.6f}" for x in coords.wgs84_to_gcj02(121.11, 31.15)]
    points = [(gcj[0], gcj[1]), (QINGPU_POINT[1], QINGPU_POINT[0]), ("121.11", "31.15"), ("", "")]
    rows = verify_records(["青浦区赵巷镇业辉路1号"] * 4, points, boundaries.load(), batch_system=None)
    assert [(r["outcome"], r["reasons"]) for r in rows] == [
        ("crs_not_checked", "CRS_NOT_CHECKED"), ("corrected", "SWAPPED;CRS_NOT_CHECKED"),
        ("field_verification", "LOW_PRECISION;CRS_NOT_CHECKED"), ("field_verification", "MISSING")]  # fmt: skip
    assert checks.REASONS["CRS_NOT_CHECKED"] == "CRS not checked: no reference"
    assert checks.mask_outcome(checks.CAVEAT_BITS) == "crs_not_checked" and checks.mask_outcome(0) == "verified"
    text = report.system_text({"crs_checked": False, "crs_note": "CRS not checked: no reference (no standard "
                                                                "address library)", "batch_system": None})  # fmt: skip
    assert "<b id=system>CRS not checked: no reference (no standard address library)</b>" in text
    assert "Most likely" not in text
