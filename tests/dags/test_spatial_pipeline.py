"""Spatial extraction (item 03) under real Airflow, Spark and PostgreSQL: every format
extracts with exact written and rejected counts and exact metered coordinate points; the
GeoParquet reads back with its CRS and the same geometries; a re-run meters nothing
twice; a file without a CRS fails the run naming the file; chunks split across tasks."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
import yaml
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.sample_data import SampleConfig, generate
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark import manifest as manifests
from tests.db import rows
from tests.integration import spark_submit

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
WORK_ORDER = "WO-DEMO-SPATIAL"
X, Y = 121.10, 31.15  # a spot in Qingpu


def box(dx: float, dy: float = 0.0, size: float = 0.001) -> shapely.Polygon:
    return shapely.box(X + dx, Y + dy, X + dx + size, Y + dy + size)


BOWTIE = shapely.Polygon([(X, Y), (X + 0.001, Y + 0.001), (X + 0.001, Y), (X, Y + 0.001)])
HOLED = shapely.Polygon(box(0.01, size=0.004).exterior, [box(0.011, 0.001, size=0.001).exterior.coords])


@dataclass
class Case:
    source: dict[str, Any]
    read: int
    rejected: dict[str, int]  # reason -> records
    points: int
    epsg: int
    good: list[shapely.Geometry]  # the written geometries, in id order
    reject_locations: list[str]  # suffixes after the file URI


def shapefile_case(landing: Path) -> Case:
    """GBK attributes without a .cpg, no .prj: the spec gives encoding and CRS."""
    folder = landing / "shp"
    folder.mkdir(parents=True)
    geoms = [box(0), HOLED, BOWTIE, None, shapely.MultiPolygon([box(0.02), box(0.03)])]
    frame = gpd.GeoDataFrame({"id": [1, 2, 3, 4, 5], "名称": ["甲", "乙", "丙", "丁", "戊"]}, geometry=geoms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided": on purpose
        frame.to_file(folder / "parcels.shp", encoding="gbk")
    (folder / "parcels.cpg").unlink(missing_ok=True)
    assert not (folder / "parcels.prj").exists()
    source = {"format": "shapefile", "path": "shp/*.shp", "encoding": "gbk", "crs": "EPSG:4490"}
    return Case(source, 5, {"invalid geometry: Self-intersection": 1, "missing geometry": 1}, 5 + 10 + 10, 4490,
                [geoms[0], geoms[1], geoms[4]], ["#feature=2", "#feature=3"])  # fmt: skip


def geopackage_case(landing: Path) -> Case:
    """The layer the spec names, of two; the file's own projected CRS (no lon/lat range check)."""
    landing.mkdir(parents=True)
    path = landing / "roads.gpkg"
    m = [(13_480_000.0 + 10 * i, 3_650_000.0 + 5 * i) for i in range(4)]
    geoms = [shapely.LineString(m[:3]), shapely.LineString(m[:2]), shapely.MultiLineString([m[:2], m[2:]]),
             shapely.from_wkt("LINESTRING (1 1, 1 1)"), shapely.from_wkt("LINESTRING EMPTY")]  # fmt: skip
    gpd.GeoDataFrame({"id": [1, 2, 3, 4, 5]}, geometry=geoms, crs="EPSG:3857").to_file(path, layer="roads")
    gpd.GeoDataFrame({"id": [9]}, geometry=[box(0)], crs="EPSG:4326").to_file(path, layer="parcels")
    source = {"format": "geopackage", "path": "roads.gpkg", "layer": "roads"}
    reasons = {"invalid geometry: Too few points in geometry component": 1, "empty geometry": 1}
    return Case(source, 5, reasons, 3 + 2 + 4, 3857, geoms[:3], ["#feature=3", "#feature=4"])


def wkt_csv_case(landing: Path) -> Case:
    landing.mkdir(parents=True)
    rows = [
        ("1", "POINT (121.1 31.1)"),
        ("2", box(0).wkt),
        ("3", "not wkt"),
        ("4", ""),
        ("5", BOWTIE.wkt),
        ("6", "LINESTRING (121 31, 121.1 31.1, 121.2 31.3)"),
        ("7", "POINT (200 31)"),
        ("8", "MULTIPOINT ((121 31), (121.1 31.1))"),
    ]
    names = {"2": "名称2,\n续"}  # quoted over two lines: rows count records, not lines
    text_rows = [f'{i},"{names.get(i, "名称" + i)}","{wkt}"' for i, wkt in rows]
    (landing / "shapes.csv").write_text("id,name,wkt\n" + "\n".join(text_rows) + "\n", encoding="utf-8")
    source = {"format": "wkt_csv", "path": "shapes.csv", "wkt_column": "wkt", "crs": "EPSG:4326"}
    reasons = {"unparseable WKT": 1, "missing geometry": 1, "invalid geometry: Self-intersection": 1,
               "coordinates out of lon/lat range": 1}  # fmt: skip
    good = [shapely.from_wkt(rows[i][1]) for i in (0, 1, 5, 7)]
    return Case(source, 8, reasons, 1 + 5 + 3 + 2, 4326, good, ["#row=3", "#row=4", "#row=5", "#row=7"])


def lonlat_csv_case(landing: Path) -> Case:
    landing.mkdir(parents=True)
    rows = [("1", "甲", "121.1", "31.1"), ("2", "乙", "abc", "31"), ("3", "丙", "", "31"), ("4", "丁", "121", "95"),
            ("5", "戊", "121.2", "31.2"), ("6", "己", "181", "31")]  # fmt: skip
    body = "id,名称,经度,纬度\n" + "".join(",".join(r) + "\n" for r in rows)
    (landing / "points.csv").write_bytes(body.encode("gbk"))
    source = {"format": "lonlat_csv", "path": "points.csv", "lon_column": "经度", "lat_column": "纬度",
              "encoding": "gbk", "crs": "EPSG:4326"}  # fmt: skip
    reasons = {"lon is not a number": 1, "missing lon": 1, "lat out of range [-90, 90]": 1,
               "lon out of range [-180, 180]": 1}  # fmt: skip
    return Case(source, 6, reasons, 2, 4326, [shapely.Point(121.1, 31.1), shapely.Point(121.2, 31.2)],
                ["#row=2", "#row=3", "#row=4", "#row=6"])  # fmt: skip


CASES = {"shapefile": shapefile_case, "geopackage": geopackage_case, "wkt_csv": wkt_csv_case,
         "lonlat_csv": lonlat_csv_case}  # fmt: skip


@pytest.fixture
def work_order(ledger_url: str) -> str:
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, WORK_ORDER, "03", on=date(2026, 6, 1))
    engine.dispose()
    return WORK_ORDER


def write_spec(folder: Path, name: str, source: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"pipeline": name, "description": f"空间数据抽取 {name}", "service_item": "03", "department": "区规划资源局",
            "work_order": WORK_ORDER, "source": {"kind": "spatial", **source},
            "target": {"dataset": f"landing/spatial/{name}"}}  # fmt: skip
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")


def check_published(lake: Path, dataset: str, case: Case) -> gpd.GeoDataFrame:
    """The GeoParquet: its CRS (PROJJSON in the "geo" metadata) and the same geometries."""
    out = gpd.read_parquet(lake / "raw" / dataset)
    assert out.crs is not None and out.crs.to_epsg() == case.epsg
    out = out.assign(_id=out["id"].astype(int)).sort_values("_id")
    assert len(out) == len(case.good)
    assert shapely.equals(out.geometry.to_numpy(), np.array(case.good, dtype=object)).all()
    assert int(shapely.get_num_coordinates(out.geometry.to_numpy()).sum()) == case.points
    [part, *_] = sorted((lake / "raw" / dataset).glob("part-*.parquet"))
    geo = json.loads(pq.read_schema(part).metadata[b"geo"])
    assert geo["columns"]["geometry"]["encoding"] == "WKB" and geo["columns"]["geometry"]["crs"]["type"]
    return out


@pytest.mark.parametrize("fmt", list(CASES))
def test_each_format_extracts_and_meters_points(
    fmt: str, isolated_env: Path, ledger_url: str, work_order: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    case = CASES[fmt](landing)
    name = f"spatial_{fmt}"
    write_spec(tmp_path / "specs", name, case.source)
    monkeypatch.setenv("GOVOPS_PIPELINES_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    result = run_dag(f"pipeline_{name}", logical_date=datetime(2026, 7, 1, tzinfo=UTC))
    assert result.state == "success", result.task_states

    written, rejected = len(case.good), sum(case.rejected.values())
    assert rows(ledger_url, "SELECT read, written, rejected, rejected_by_reason FROM govops.extraction_run "
                "WHERE pipeline = :p", p=name) == [(case.read, written, rejected, case.rejected)]  # fmt: skip
    metered = rows(ledger_url, "SELECT service_item_code, unit, quantity, records, work_order_id "
                   "FROM govops.usage_event WHERE dag_id = :d", d=result.dag_id)  # fmt: skip
    assert metered == [("03", "coordinate_point", case.points, written, WORK_ORDER)]
    check_published(isolated_env, f"landing/spatial/{name}", case)
    rejects = pq.ParquetDataset(isolated_env / "rejects/landing/spatial" / name).read().to_pylist()
    assert sorted(r["source_location"].split("#")[1] for r in rejects) == [s[1:] for s in case.reject_locations]
    assert all(r["record"] and r["reason"] in case.rejected for r in rejects)


def test_bundled_geojson_pipeline_and_rerun(
    isolated_env: Path, ledger_url: str, work_order: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """include/pipelines/landing_spatial_poi.yaml on the sample district's GeoJSON: the
    injected bowties, empty and missing geometries are rejected; a re-run meters nothing twice."""
    landing = tmp_path / "landing"
    _, report = generate(SampleConfig(seed=11, persons=200), landing)
    monkeypatch.setenv("GOVOPS_LANDING_ROOT", landing.as_uri())
    features = gpd.read_file(landing / "spatial/poi.geojson")
    broken = {i for d in report.defects if d.dataset == "spatial/poi.geojson" for i in d.ids}
    good = features[~features["id"].isin(broken)].sort_values("id")
    points = report.rows["spatial_points"]
    assert points == int(shapely.get_num_coordinates(good.geometry.to_numpy()).sum())
    reasons = {"invalid geometry: Self-intersection": report.count("self_intersecting_polygons"),
               "empty geometry": report.count("empty_geometries"),
               "missing geometry": report.count("missing_geometries")}  # fmt: skip
    assert sum(reasons.values()) == len(broken) == 4
    case = Case({}, len(features), reasons, points, 4326, list(good.geometry), [])

    dag, when = "pipeline_landing_spatial_poi", datetime(2026, 7, 2, tzinfo=UTC)
    for _ in range(2):  # the second call re-runs the same DAG run
        result = run_dag(dag, logical_date=when)
        assert result.state == "success", result.task_states
        assert rows(ledger_url, "SELECT read, written, rejected, rejected_by_reason FROM govops.extraction_run "
                    "WHERE pipeline = 'landing_spatial_poi'") == [(60, 56, 4, reasons)]  # fmt: skip
        assert rows(ledger_url, "SELECT quantity, records, try_number FROM govops.usage_event WHERE dag_id = :d",
                    d=dag) == [(points, 56, 1)]  # fmt: skip
        out = check_published(isolated_env, "landing/planning_resources/poi", case)
        assert out["name"].tolist() == good["name"].tolist()  # attributes kept, Chinese intact
    manifest = manifests.read(manifests.manifest_uri(isolated_env.as_uri(), dag, result.run_id, "extract", -1))
    data = manifest["outputs"][0]
    assert (data["format"], data["crs"], data["rows"], data["points"]) == ("geoparquet", "EPSG:4326", 56, points)
    assert data["checksum"]["algorithm"] == "sum-xxhash64-v1" and manifest["counts"]["read"] == 60


def job_args(lake: Path, run_id: str, spec: dict[str, Any], landing: Path, **extra: Any) -> dict[str, Any]:
    from govops.pipelines.spec import PipelineSpec

    full = {"pipeline": "spatial_job", "description": "d", "service_item": "03", "department": "区规划资源局",
            "work_order": WORK_ORDER, "source": {"kind": "spatial", **spec},
            "target": {"dataset": "landing/spatial/job"}}  # fmt: skip
    return {"dag-id": "spatial_job", "run-id": run_id, "task-id": "extract", "lake-root": lake.as_uri(),
            "manifest": manifests.manifest_uri(lake.as_uri(), "spatial_job", run_id, "extract", -1),
            "spec": PipelineSpec.model_validate(full).model_dump_json(), "landing-root": landing.as_uri(),
            **extra}  # fmt: skip


def test_a_file_without_crs_fails_the_run_naming_it(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    shapefile_case(landing)
    args = job_args(lake, "no_crs", {"format": "shapefile", "path": "shp/*.shp", "encoding": "gbk"}, landing)
    done = spark_submit.run("extract_spatial", args)
    assert done.returncode != 0
    manifest = manifests.read(args["manifest"])
    assert manifest["status"] == "failed" and manifest["metering"] == []
    assert "parcels.shp: the file has no CRS and the spec gives none: set source.crs" in manifest["error"]
    assert not (lake / "raw/landing/spatial/job").exists()


def test_chunks_are_spread_over_tasks(tmp_path: Path) -> None:
    """1,000 features in chunks of 300: four tasks, four parts, rejects located across them."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing.mkdir()
    geoms = np.array([box(0.0001 * (i % 50), 0.0001 * (i // 50), size=0.00005) for i in range(1000)], dtype=object)
    bad = [5, 299, 300, 777, 999]
    geoms[bad] = BOWTIE
    gpd.GeoDataFrame({"id": np.arange(1000)}, geometry=geoms, crs="EPSG:4490").to_file(landing / "big.gpkg")
    args = job_args(lake, "chunks", {"format": "geopackage", "path": "big.gpkg"}, landing,
                    option="chunk_features=300")  # fmt: skip
    done = spark_submit.run("extract_spatial", args)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = manifests.read(args["manifest"])
    assert manifest["counts"] == {"read": 1000, "written": 995, "rejected": 5}
    assert manifest["outputs"][0]["chunks"] == 4 and manifest["metering"][0]["quantity"] == 995 * 5
    assert len(list((lake / "raw/landing/spatial/job").glob("part-*.parquet"))) == 4
    rejects = pq.ParquetDataset(lake / "rejects/landing/spatial/job").read().to_pylist()
    assert sorted(int(r["source_location"].rsplit("=", 1)[1]) for r in rejects) == bad
    assert sorted(json.loads(r["record"])["id"] for r in rejects) == bad
