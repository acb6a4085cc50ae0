"""The file side of the sample district: an event stream as JSON lines in a landing
directory, CSV exports, unstructured files and their catalog entries (数据资源目录), and
a GeoJSON of points, lines and polygons."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from govops.sample_data import vocab
from govops.sample_data.generator import (
    BASE_TIME,
    Defect,
    SampleConfig,
    SampleFrames,
    _points_inside,
    _positions,
    load_boundary,
)

if TYPE_CHECKING:
    import pandas as pd

CATALOG_REQUIRED = ("name", "provider_department", "source_system", "update_frequency", "classification")


def write_events(rng: np.random.Generator, cfg: SampleConfig, persons: pd.DataFrame, out: Path) -> list[Defect]:
    """events/events-NNNN.jsonl, as a front-end machine drops them, oldest first."""
    n = cfg.n_events
    landing = out / "events"
    landing.mkdir(parents=True, exist_ok=True)
    who = persons["id_number"].to_numpy()[rng.integers(0, len(persons), n)]
    kinds = rng.choice(np.array(vocab.EVENT_TYPES), n)
    depts = rng.choice(np.array(vocab.DEPARTMENTS), n)
    offsets = np.sort(rng.integers(0, 30 * 86400, n))
    start = np.datetime64(BASE_TIME.replace(tzinfo=None), "s")
    times = np.datetime_as_string(start + offsets.astype("timedelta64[s]"), unit="s")
    bad = set(
        _positions(rng, n, "events", {"malformed_event_lines": cfg.defects.malformed_event_lines})[
            "malformed_event_lines"
        ].tolist()
    )
    ids = []
    for f, first in enumerate(range(0, n, cfg.events_per_file), start=1):
        lines = []
        for i in range(first, min(n, first + cfg.events_per_file)):
            line = json.dumps(
                {
                    "event_id": f"EV{cfg.seed:04d}{i + 1:09d}",
                    "id_number": who[i],
                    "event_type": kinds[i],
                    "department": depts[i],
                    "event_time": times[i] + "+08:00",
                    "payload": {"case_no": f"QP{i + 1:010d}", "channel": "一网通办"},
                },
                ensure_ascii=False,
            )
            if i in bad:
                line = line[: len(line) // 2]  # a truncated write
                ids.append(f"events-{f:04d}.jsonl:{i - first + 1}")
            lines.append(line)
        (landing / f"events-{f:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [Defect("malformed_event_lines", "events", "*", ids)]


def write_exports(rng: np.random.Generator, cfg: SampleConfig, frames: SampleFrames, out: Path) -> list[Defect]:
    """exports/*.csv, declared UTF-8; some rows too short, some files really GBK."""
    exports = out / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    tables = {"persons": frames.persons, "legal_persons": frames.legal_persons, "addresses": frames.addresses}
    gbk = list(tables)[::-1][: cfg.defects.wrong_encoding_files]  # the malformed-rows file stays UTF-8
    if cfg.defects.wrong_encoding_files > len(tables) - 1:
        raise ValueError(f"wrong_encoding_files: at most {len(tables) - 1} exports can be GBK")
    persons_csv = frames.persons.to_csv(index=False, lineterminator="\n").splitlines()
    bad = _positions(
        rng, len(persons_csv) - 1, "exports/persons.csv", {"malformed_csv_rows": cfg.defects.malformed_csv_rows}
    )["malformed_csv_rows"]
    for p in bad:  # drop the last two fields: a row with too few columns
        row = next(csv.reader([persons_csv[p + 1]]))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row[:-2])
        persons_csv[p + 1] = buf.getvalue()
    (exports / "persons.csv").write_text("\n".join(persons_csv) + "\n", encoding="utf-8")
    for name in ("legal_persons", "addresses"):
        encoding = "gbk" if name in gbk else "utf-8"
        tables[name].to_csv(exports / f"{name}.csv", index=False, encoding=encoding)
    return [
        Defect("malformed_csv_rows", "exports/persons.csv", "*", [f"line {p + 2}" for p in bad]),
        Defect("wrong_encoding_files", "exports", "encoding", [f"{name}.csv" for name in gbk]),
    ]


def write_files_and_catalog(rng: np.random.Generator, cfg: SampleConfig, out: Path) -> list[Defect]:
    """files/ (shared and open documents) and catalog.json, one entry per file."""
    d = cfg.defects
    folder = out / "files"
    folder.mkdir(parents=True, exist_ok=True)
    unreadable = set(
        _positions(rng, cfg.files, "files", {"unreadable_files": d.unreadable_files})["unreadable_files"].tolist()
    )
    entries: list[dict[str, Any]] = []
    for i in range(cfg.files + d.missing_files):
        kind = vocab.FILE_KINDS[i % len(vocab.FILE_KINDS)]
        dept = vocab.DEPARTMENTS[i % len(vocab.DEPARTMENTS)]
        path = f"files/{'missing' if i >= cfg.files else 'doc'}-{i + 1:04d}.{kind}"
        if i < cfg.files:
            if i in unreadable:
                body = b"" if i % 2 == 0 else bytes(rng.integers(128, 256, 64, dtype=np.uint8))
            elif kind == "csv":
                body = "街道,办件量\n夏阳街道,120\n朱家角镇,86\n".encode()
            elif kind == "json":
                body = json.dumps({"主题": "青浦区公共数据", "序号": i + 1}, ensure_ascii=False).encode()
            else:
                body = f"青浦区公共数据开放文件 {i + 1}：{dept}发布。\n".encode()
            (out / path).write_bytes(body)
        entries.append(
            {
                "entry_id": i + 1,
                "name": f"青浦区{dept}数据资源{i + 1}",
                "provider_department": dept,
                "source_system": f"{dept}业务系统",
                "db_type": "PostgreSQL" if i % 2 else "文件",
                "update_frequency": ("每日", "每周", "每月", "实时")[i % 4],
                "share_type": ("无条件共享", "有条件共享", "不予共享")[i % 3],
                "open_type": ("无条件开放", "有条件开放", "不予开放")[i % 3],
                "classification": ("一般数据", "重要数据")[i % 2],
                "file_path": path,
            }
        )
    incomplete = _positions(rng, len(entries), "catalog", {"incomplete_catalog_entries": d.incomplete_catalog_entries})[
        "incomplete_catalog_entries"
    ]
    for p in incomplete:
        entries[p][CATALOG_REQUIRED[p % len(CATALOG_REQUIRED)]] = ""
    (out / "catalog.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    return [
        Defect(
            "unreadable_files",
            "files",
            "content",
            [f"files/doc-{i + 1:04d}.{vocab.FILE_KINDS[i % len(vocab.FILE_KINDS)]}" for i in sorted(unreadable)],
        ),
        Defect("missing_files", "catalog", "file_path", list(range(cfg.files + 1, cfg.files + d.missing_files + 1))),
        Defect("incomplete_catalog_entries", "catalog", "required", [int(p) + 1 for p in incomplete]),
    ]


SPATIAL_FILE = "spatial/poi.geojson"


def write_spatial(rng: np.random.Generator, cfg: SampleConfig, out: Path) -> tuple[list[Defect], dict[str, int]]:
    """spatial/poi.geojson (WGS 84): points (兴趣点), lines (道路) and polygons (地块) inside
    the district, a third each; some polygons broken (bowtie, empty, missing geometry).
    Returns the defects and the rows: features, and the coordinate points of the valid ones."""
    import shapely

    n, d = cfg.spatial_features, cfg.defects
    # Anchors 0.005° inside the border, shapes within 0.003° of them: everything stays inside.
    lon, lat = _points_inside(rng, n, load_boundary().buffer(-0.005))
    kind = np.arange(n) % 3  # 0 point, 1 line, 2 polygon
    geoms = shapely.points(lon, lat)
    lines = np.flatnonzero(kind == 1)
    if len(lines):
        k = rng.integers(2, 5, len(lines))  # vertices per line
        owner = np.repeat(np.arange(len(lines)), k)
        step = rng.uniform(0.0002, 0.001, (len(owner), 2)) * rng.choice([-1, 1], (len(owner), 2))
        first = np.r_[0, np.cumsum(k)[:-1]]
        step[first] = 0.0  # each line starts at its anchor
        walk = np.cumsum(step, axis=0)
        walk -= walk[first][owner]  # a random walk per line, from its anchor
        xy = np.column_stack([lon[lines][owner], lat[lines][owner]]) + walk
        geoms[lines] = shapely.linestrings(np.round(xy, 6), indices=owner)
    polygons = np.flatnonzero(kind == 2)
    if len(polygons):
        m = rng.integers(4, 7, len(polygons))  # vertices per polygon, before closing
        owner = np.repeat(np.arange(len(polygons)), m)
        # One vertex per equal sector around the anchor: gaps under 180° make a simple polygon.
        j = np.arange(len(owner)) - np.r_[0, np.cumsum(m)[:-1]][owner]
        angle = 2 * np.pi * (j + rng.uniform(0, 0.8, len(owner))) / m[owner]
        radius = rng.uniform(0.0005, 0.001, len(owner))
        x = lon[polygons][owner] + radius * np.cos(angle)
        xy = np.column_stack([x, lat[polygons][owner] + radius * np.sin(angle)])
        geoms[polygons] = shapely.polygons(shapely.linearrings(np.round(xy, 6), indices=owner))
    bad = _positions(rng, len(polygons), SPATIAL_FILE, {
        "self_intersecting_polygons": d.self_intersecting_polygons, "empty_geometries": d.empty_geometries,
        "missing_geometries": d.missing_geometries,
    })  # fmt: skip
    for p in polygons[bad["self_intersecting_polygons"]]:
        x, y, r = lon[p], lat[p], 0.0008
        geoms[p] = shapely.Polygon([(x - r, y - r), (x + r, y + r), (x + r, y - r), (x - r, y + r)])  # a bowtie
    geoms[polygons[bad["empty_geometries"]]] = shapely.Polygon()
    geoms[polygons[bad["missing_geometries"]]] = None
    category = np.array(["兴趣点", "道路", "地块"])[kind]
    texts = shapely.to_geojson(geoms)
    features = [
        f'{{"type": "Feature", "properties": {{"id": {i + 1}, "name": "青浦区{category[i]}{i + 1:05d}", '
        f'"category": "{category[i]}"}}, "geometry": {texts[i] or "null"}}}'
        for i in range(n)
    ]
    (out / "spatial").mkdir(parents=True, exist_ok=True)
    (out / SPATIAL_FILE).write_text(
        '{"type": "FeatureCollection", "features": [\n' + ",\n".join(features) + "\n]}\n", encoding="utf-8"
    )
    defects = [Defect(k, SPATIAL_FILE, "geometry", [int(p) + 1 for p in polygons[bad[k]]]) for k in bad]
    broken = np.concatenate([polygons[bad[k]] for k in bad])
    valid = np.setdiff1d(np.arange(n), broken)
    points = int(shapely.get_num_coordinates(geoms[valid]).sum())
    return defects, {"spatial_features": n, "spatial_points": points}

