"""Spatial extraction building blocks (govops.pipelines.spatial): coordinate points as
metered, a reason for every kind of bad geometry, the run's CRS, chunk plans, the spec's
own checks, and one chunk read and written from real files (no Spark)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from pydantic import ValidationError

from govops.pipelines import spatial
from govops.pipelines.spec import SpatialSource

SQUARE = [(0, 0), (4, 0), (4, 4), (0, 4), (0, 0)]
HOLE = [(1, 1), (2, 1), (2, 2), (1, 2), (1, 1)]
BOWTIE = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])


@pytest.mark.parametrize(
    ("geometry", "points"),
    [
        (shapely.Point(121.1, 31.1), 1),
        (shapely.MultiPoint([(0, 0), (1, 1), (2, 2)]), 3),
        (shapely.LineString([(0, 0), (1, 1), (2, 0), (3, 1)]), 4),
        (shapely.Polygon(SQUARE), 5),  # the ring's closing vertex is stored, and counted
        (shapely.Polygon(SQUARE, [HOLE]), 10),
        (shapely.MultiPolygon([shapely.Polygon(SQUARE, [HOLE]), shapely.box(10, 10, 11, 11)]), 15),
        (shapely.GeometryCollection([shapely.Point(0, 0), shapely.LineString([(0, 0), (1, 1)])]), 3),
        (None, 0),
    ],
)
def test_coordinate_points(geometry: shapely.Geometry | None, points: int) -> None:
    assert spatial.coordinate_points([geometry]) == points


def test_coordinate_points_are_counted_over_arrays() -> None:
    many = np.array([shapely.Point(0, 0), shapely.Polygon(SQUARE, [HOLE]), None] * 1000, dtype=object)
    assert spatial.coordinate_points(many) == 11_000


def checked(geometries: list, *, geographic: bool = True, make_valid: bool = False) -> spatial.Checked:
    wkb = np.array([g if isinstance(g, bytes) or g is None else shapely.to_wkb(g) for g in geometries], dtype=object)
    return spatial.check(*spatial.from_wkb(wkb), geographic=geographic, make_valid=make_valid)


def test_every_geometry_reason() -> None:
    result = checked([
        shapely.Point(121.1, 31.1),
        None,
        b"\x01\x03garbage",
        shapely.Polygon(),
        BOWTIE,
        shapely.Polygon(SQUARE, [[(5, 5), (6, 5), (6, 6), (5, 6), (5, 5)]]),  # hole outside the shell
        shapely.from_wkt("LINESTRING (1 1, 1 1)"),
        shapely.Point(200, 31),
        shapely.LineString([(121, 31), (121, 95)]),
    ])  # fmt: skip
    assert result.reasons.tolist() == [
        None,
        "missing geometry",
        "unreadable geometry",
        "empty geometry",
        "invalid geometry: Self-intersection",
        "invalid geometry: Hole lies outside shell",
        "invalid geometry: Too few points in geometry component",
        "coordinates out of lon/lat range",
        "coordinates out of lon/lat range",
    ]
    assert result.details[4] == "Self-intersection[0.5 0.5]"
    assert result.details[7] == "bounds 200 31 200 31"
    assert result.good.tolist() == [True] + [False] * 8
    assert result.points == 1  # only what is written is metered


def test_lon_lat_range_only_for_a_geographic_crs() -> None:
    assert checked([shapely.Point(13_480_000, 3_650_000)], geographic=False).good.tolist() == [True]


def test_make_valid_is_opt_in_and_counted() -> None:
    assert checked([BOWTIE]).reasons.tolist() == ["invalid geometry: Self-intersection"]
    repaired = checked([BOWTIE, shapely.Polygon()], make_valid=True)
    assert repaired.repaired == 1 and repaired.reasons.tolist() == [None, "empty geometry"]
    assert repaired.geometries[0].geom_type == "MultiPolygon" and repaired.points == 8  # two closed triangles


def test_wkt_reasons() -> None:
    geometries, reasons, details = spatial.from_wkt(["POINT (1 2)", "", None, "  ", "POLYGON ((0 0, 1", "circle"])
    assert reasons.tolist() == [None, "missing geometry", "missing geometry", "missing geometry",
                                "unparseable WKT", "unparseable WKT"]  # fmt: skip
    assert details[4] == "POLYGON ((0 0, 1" and geometries[0] == shapely.Point(1, 2)


def test_lon_lat_reasons() -> None:
    lon = ["121.5", "abc", "", None, "180.5", "121", " 121.25 ", "-180"]
    lat = ["31.2", "31", "31", "31", "31", "-90.01", "31.5", "-90"]
    geometries, reasons, details = spatial.from_lonlat(lon, lat)
    assert reasons.tolist() == [None, "lon is not a number", "missing lon", "missing lon",
                                "lon out of range [-180, 180]", "lat out of range [-90, 90]", None, None]  # fmt: skip
    assert details[1] == "abc" and details[4] == "180.5"
    assert geometries[6] == shapely.Point(121.25, 31.5) and spatial.coordinate_points(geometries) == 3


def test_the_runs_crs() -> None:
    def f(name: str, crs: str | None) -> spatial.SourceFile:
        return spatial.SourceFile(name, 1, crs, b"")

    assert spatial.run_crs([f("a", "EPSG:4490")], None).to_epsg() == 4490
    assert spatial.run_crs([f("a", None)], "EPSG:4326").to_epsg() == 4326
    assert spatial.run_crs([f("a", "OGC:CRS84")], "EPSG:4326").name == "WGS 84 (CRS84)"  # axis order aside, equal
    with pytest.raises(spatial.SpatialSourceError, match=r"b\.shp: the file has no CRS and the spec gives none"):
        spatial.run_crs([f("a.shp", "EPSG:4326"), f("b.shp", None)], None)
    with pytest.raises(spatial.SpatialSourceError, match=r"a\.shp: the file's CRS EPSG:3857 is not the spec's"):
        spatial.run_crs([f("a.shp", "EPSG:3857")], "EPSG:4326")
    with pytest.raises(spatial.SpatialSourceError, match="b: CRS EPSG:3857 differs from a's EPSG:4326"):
        spatial.run_crs([f("a", "EPSG:4326"), f("b", "EPSG:3857")], None)


def test_plans_cut_files_into_feature_ranges() -> None:
    files = [spatial.SourceFile("a", 250, None, b""), spatial.SourceFile("b", 0, None, b""),
             spatial.SourceFile("c", 100, None, b"")]  # fmt: skip
    chunks = spatial.plan(files, "geopackage", chunk_features=100, parallelism=2)
    assert [(c.uri, c.skip, c.count) for c in chunks] == [
        ("a", 0, 84), ("a", 84, 84), ("a", 168, 82), ("b", 0, 0), ("c", 0, 100)
    ]
    assert [c.chunk for c in chunks] == [0, 1, 2, 3, 4]
    sequential = spatial.plan(files[:1], "geojson", chunk_features=100, parallelism=2)
    assert [(c.skip, c.count) for c in sequential] == [(0, 125), (125, 125)]  # parsed from the start by each


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "wkt_csv"}, "format wkt_csv needs wkt_column"),
        ({"format": "lonlat_csv", "lon_column": "x"}, "format lonlat_csv needs lat_column"),
        ({"format": "geojson", "wkt_column": "wkt"}, "wkt_column is only used with format wkt_csv"),
        ({"format": "shapefile", "layer": "a"}, "layer is only used with format geopackage"),
        ({"format": "geojson", "encoding": "gbk"}, "geojson is UTF-8 by definition"),
        ({"format": "shapefile", "encoding": "klingon"}, "encoding 'klingon' is not a known charset"),
        ({"format": "shapefile", "crs": "EPSG:999999"}, "crs 'EPSG:999999' is not a coordinate reference system"),
    ],
)
def test_spec_checks(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SpatialSource.model_validate({"kind": "spatial", "path": "x", **fields})


def test_one_csv_chunk_end_to_end(tmp_path: Path) -> None:
    """Read rows 2-4 of a GBK CSV, write the part files; rejects carry file, row and record."""
    csv = tmp_path / "points.csv"
    csv.write_text('名称,lon,lat\n甲,121.1,31.1\n"乙,\n丙",abc,31\n丁,121.2,31.2\n戊,121.3,95\n己,121.4,31.4\n',
                   encoding="gbk")  # fmt: skip
    source = SpatialSource(kind="spatial", path="points.csv", format="lonlat_csv", lon_column="lon",
                           lat_column="lat", encoding="gbk", crs="EPSG:4326")  # fmt: skip
    described = spatial.describe(csv.as_uri(), source)
    assert described.features == 5
    schema = spatial.attribute_schema([described])
    assert schema.names == ["名称"]
    out, rejects = tmp_path / "out", tmp_path / "rejects"
    out.mkdir(), rejects.mkdir()
    job = spatial.ChunkJob(source=source.model_dump(), crs=spatial.run_crs([described], source.crs).to_json(),
                           schema=schema.serialize().to_pybytes(), output=out.as_uri(), rejects=rejects.as_uri(),
                           run_id="r1")  # fmt: skip
    summary = spatial.extract_chunk(spatial.Chunk(1, csv.as_uri(), 1, 3), job)
    assert {k: summary[k] for k in ("read", "written", "rejected", "points")} == {
        "read": 3, "written": 1, "rejected": 2, "points": 1
    }
    assert json.loads(summary["reasons"]) == {"lon is not a number": 1, "lat out of range [-90, 90]": 1}
    import geopandas as gpd

    written = gpd.read_parquet(out / "part-00001.parquet")
    assert written["名称"].tolist() == ["丁"] and written.geometry[0] == shapely.Point(121.2, 31.2)
    assert written.crs.to_epsg() == 4326 and written["_govops_run_id"].tolist() == ["r1"]
    rows = pq.read_table(rejects / "part-00001.parquet").to_pylist()
    assert [(r["source_location"], json.loads(r["record"])) for r in rows] == [
        (f"{csv.as_uri()}#row=2", {"名称": "乙,\n丙", "lon": "abc", "lat": "31"}),
        (f"{csv.as_uri()}#row=4", {"名称": "戊", "lon": "121.3", "lat": "95"}),
    ]
    assert spatial.reason_counts(rejects.as_uri()) == json.loads(summary["reasons"])
    assert sorted(p.name for p in out.iterdir()) == ["part-00001.parquet"]  # no temporary left behind


def run_chunk(tmp_path: Path, source: SpatialSource, uri: str) -> tuple[dict, Path, Path]:
    described = spatial.describe(uri, source)
    out, rejects = tmp_path / "out", tmp_path / "rejects"
    out.mkdir(), rejects.mkdir()
    job = spatial.ChunkJob(source=source.model_dump(), crs=spatial.run_crs([described], source.crs).to_json(),
                           schema=spatial.attribute_schema([described]).serialize().to_pybytes(),
                           output=out.as_uri(), rejects=rejects.as_uri(), run_id="r1")  # fmt: skip
    return spatial.extract_chunk(spatial.Chunk(0, uri, 0, described.features), job), out, rejects


@pytest.mark.parametrize("fmt", ["geojson", "wkt_csv"])
def test_geometry_without_attributes(tmp_path: Path, fmt: str) -> None:
    import geopandas as gpd

    if fmt == "geojson":
        path = tmp_path / "bare.geojson"
        points = ({"type": "Point", "coordinates": [121, 31]}, None, {"type": "Point", "coordinates": [121.5, 31]})
        features = [{"type": "Feature", "properties": {}, "geometry": g} for g in points]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
        source = SpatialSource(kind="spatial", path=path.name, format="geojson")
    else:
        path = tmp_path / "bare.csv"
        path.write_text('wkt\nPOINT (121 31)\n""\nPOINT (121.5 31)\n', encoding="utf-8")  # a blank line is no record
        source = SpatialSource(kind="spatial", path=path.name, format="wkt_csv", wkt_column="wkt", crs="EPSG:4326")
    summary, out, rejects = run_chunk(tmp_path, source, path.as_uri())
    assert (summary["read"], summary["written"], summary["rejected"], summary["points"]) == (3, 2, 1, 2)
    written = gpd.read_parquet(out / "part-00000.parquet")
    assert list(written.columns) == ["_govops_run_id", "geometry"] and written.crs.to_epsg() == 4326
    assert spatial.reason_counts(rejects.as_uri()) == {"missing geometry": 1}
