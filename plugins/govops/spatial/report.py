"""The verification report of a run (HTML: counts per outcome and reason, a map of the
checked points over the boundaries with problem points highlighted, the histogram of
distances to the reference points, the batch's coordinate system and its evidence) and
the field verification task list (外业核实清单) as XLSX/CSV with a map link per record."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govops import coords
from govops.charts import png_data_uri
from govops.spatial import boundaries, checks

if TYPE_CHECKING:
    import pandas as pd

MAP_POINTS = 20_000  # a sample is enough to see where problems are
REASONS_ZH = {
    "MISSING": "坐标缺失", "NON_NUMERIC": "坐标非数值", "OUT_OF_RANGE": "坐标越界", "PLACEHOLDER": "占位坐标",
    "SWAPPED": "经纬度颠倒", "LOW_PRECISION": "精度不足", "CRS_SHIFTED": "坐标系偏移(非WGS-84)",
    "CRS_NOT_CHECKED": "坐标系未核验(无参照)",
    "OUTSIDE_AREA": "不在辖区范围内", "WRONG_DISTRICT": "与地址所属区县不符", "FAR_FROM_ADDRESS": "偏离标准地址",
    "DUPLICATE": "重复坐标", "NEAR_DUPLICATE": "近似重复坐标",
}  # fmt: skip


def map_image(records: pd.DataFrame, area: boundaries.Boundaries) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import shapely

    fig, ax = plt.subplots(figsize=(7, 7))
    inside = area.in_area or (True,) * len(area.names)
    for polygon, in_area in zip(area.polygons, inside, strict=True):  # the deployment's area darker
        for part in getattr(polygon, "geoms", [polygon]):
            x, y = shapely.get_coordinates(part.exterior).T
            ax.plot(x, y, color="#333" if in_area else "#bbb", linewidth=1.0 if in_area else 0.6)
    placed = records[records["lon"].notna()]
    if len(placed) > MAP_POINTS:
        placed = placed.sample(MAP_POINTS, random_state=0)
    ok = placed["outcome"] == "verified"
    ax.scatter(placed.loc[ok, "lon"], placed.loc[ok, "lat"], s=2, color="#2b7bba", label="verified")
    unchecked = placed["outcome"] == "crs_not_checked"
    if unchecked.any():
        ax.scatter(placed.loc[unchecked, "lon"], placed.loc[unchecked, "lat"], s=2, color="#999",
                   label="CRS not checked")  # fmt: skip
    fixed = placed["outcome"] == "corrected"
    ax.scatter(placed.loc[fixed, "lon"], placed.loc[fixed, "lat"], s=6, color="#fdae61", label="corrected")
    bad = placed["outcome"] == "field_verification"
    ax.scatter(placed.loc[bad, "lon"], placed.loc[bad, "lat"], s=10, color="#d7301f", label="field verification")
    # The deployment's area and the points, not every polygon around it.
    box = np.asarray(area.box)[area.inside_area(np.arange(len(area.names)))]
    xs = np.concatenate([box[:, 0], box[:, 2], placed["lon"].to_numpy(float)])
    ys = np.concatenate([box[:, 1], box[:, 3], placed["lat"].to_numpy(float)])
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    pad = 0.05 * max(x1 - x0, y1 - y0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    ax.set_aspect(1 / 0.86)
    ax.set_xlabel("longitude (WGS-84)")
    ax.set_ylabel("latitude")
    ax.legend(loc="lower left")
    return png_data_uri(fig)


def distance_histogram(records: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    d = records["distance_to_reference_m"].dropna().to_numpy()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    if len(d):
        ax.hist(np.clip(d, 0, 1000), bins=50, color="#2b7bba")
    ax.set_xlabel("distance to the standard address's reference point, m (clipped at 1000)")
    ax.set_ylabel("records")
    ax.set_yscale("log")
    return png_data_uri(fig)


def system_text(out: dict[str, Any]) -> str:
    """What the report says of the batch's coordinate system: detected with its evidence,
    or not checked, and why."""
    e = html.escape
    evidence = out.get("system_evidence") or {}
    if not out.get("crs_checked", bool(evidence)):
        note = out.get("crs_note") or "CRS not checked: no reference"
        return (f"<p><b id=system>{e(note)}</b>. 坐标系未核验：没有可对照的标准地址。The batch is taken as recorded "
                f"(WGS-84); a batch in GCJ-02 would sit about 500 m off and look the same, so no record is "
                f"called verified.</p>")  # fmt: skip
    shift = evidence.get("shift_m")
    matched = f"({evidence['matched']:,} of {evidence['compared']:,} records within 30 m of their reference)"
    offset = f"Median offset from the references: {shift[0]:,.0f} m east, {shift[1]:,.0f} m north." if shift else ""
    return f"<p>Most likely <b id=system>{e(out.get('batch_system') or 'WGS-84')}</b> {matched}. {offset}</p>"


def render(manifest: dict[str, Any], records: pd.DataFrame, area: boundaries.Boundaries) -> str:
    e = html.escape
    out = manifest["outputs"][0]
    outcomes = out["outcomes"]
    total = sum(outcomes.values())
    reasons = sorted(out["reasons"].items(), key=lambda kv: -kv[1])
    reason_rows = "".join(
        f"<tr><td>{e(code)}</td><td>{e(REASONS_ZH.get(code, ''))}</td><td>{e(checks.REASONS.get(code, ''))}</td>"
        f"<td class=n>{n:,}</td></tr>"
        for code, n in reasons
    )
    evidence = out.get("system_evidence") or {}
    errors = evidence.get("median_error_m", {})
    system_rows = "".join(f"<tr><td>{e(s)}</td><td class=n>{errors[s]:,.1f}</td></tr>" for s in coords.SYSTEMS
                          if s in errors)  # fmt: skip
    run = manifest["run"]
    unchecked_row = ("<tr><td>CRS not checked: no reference 坐标系未核验(无参照)</td>"
                     f"<td class=n id=crs_not_checked>{outcomes['crs_not_checked']:,}</td></tr>\n"
                     if outcomes.get("crs_not_checked") else "")  # fmt: skip
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>空间地理数据核实报告 {e(out['dataset'])}</title>
<style>body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#f3f3f3}} td.n{{text-align:right}} img{{max-width:100%}}</style></head><body>
<h1>空间地理数据核实报告 · Spatial verification: {e(out['dataset'])}</h1>
<p>Run {e(run['run_id'])} of {e(run['dag_id'])}; {total:,} records (coordinate points) checked.</p>
<table><tr><th>outcome</th><th>records</th></tr>
<tr><td>verified 核实通过</td><td class=n id=verified>{outcomes.get('verified', 0):,}</td></tr>
{unchecked_row}<tr><td>corrected 自动纠正</td><td class=n id=corrected>{outcomes.get('corrected', 0):,}</td></tr>
<tr><td>field verification 需外业核实</td><td class=n id=field>{outcomes.get('field_verification', 0):,}</td></tr>
</table>
<h2>Reasons</h2>
<table><tr><th>code</th><th>原因</th><th>meaning</th><th>records</th></tr>{reason_rows}</table>
<h2>Coordinate system of the batch</h2>
{system_text(out)}
{f"<table><tr><th>if recorded in</th><th>median distance to the reference, m</th></tr>{system_rows}</table>"
  if system_rows else ""}
<h2>Map</h2><img alt="checked points over the boundaries" src="{map_image(records, area)}">
<h2>Distances to the reference points</h2><img alt="histogram" src="{distance_histogram(records)}">
</body></html>
"""


def field_tasks(records: pd.DataFrame) -> pd.DataFrame:
    """The records a person has to check on site, with the problem and where to go."""
    tasks = records[records["outcome"] == "field_verification"].copy()
    has_point = tasks["lon"].notna()
    # Web maps in China take GCJ-02: convert the WGS-84 point for the link.
    glon, glat = coords.wgs84_to_gcj02(tasks["lon"].fillna(0).to_numpy(), tasks["lat"].fillna(0).to_numpy())
    link = [f"https://uri.amap.com/marker?position={x:.6f},{y:.6f}" for x, y in zip(glon, glat, strict=True)]
    problems = tasks["reasons"].str.split(";").map(lambda codes: "；".join(REASONS_ZH.get(c, c) for c in codes))
    return tasks.assign(
        problem=problems, map_link=[lnk if ok else "" for lnk, ok in zip(link, has_point, strict=True)]
    )[["record_id", "address", "lon_raw", "lat_raw", "lon", "lat", "reasons", "problem", "map_link"]]


def write_tasks(tasks: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".xlsx":
        tasks.to_excel(path, index=False, sheet_name="外业核实")
    else:
        tasks.to_csv(path, index=False, encoding="utf-8-sig")


def publish(manifest: dict[str, Any], lake_root: str) -> dict[str, str]:
    """Write the report and the task list to <lake>/reports/spatial/<dataset>/<run key>/."""
    import tempfile

    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    from govops.spark.manifest import _safe

    out = manifest["outputs"][0]
    filesystem, path = pafs.FileSystem.from_uri(out["uri"])
    records = pq.ParquetDataset(path, filesystem=filesystem).read().to_pandas()
    # The job's boundaries and area (older manifests: the configured ones).
    area = boundaries.load(Path(out["boundaries"]) if out.get("boundaries") else None, out.get("area_code"))
    folder = f"{lake_root.rstrip('/')}/reports/spatial/{out['dataset']}/{_safe(manifest['run']['run_id'])}"
    target_fs, base = pafs.FileSystem.from_uri(folder)
    target_fs.create_dir(base, recursive=True)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        (local / "report.html").write_text(render(manifest, records, area), encoding="utf-8")
        tasks = field_tasks(records)
        write_tasks(tasks, local / "field_tasks.xlsx")
        write_tasks(tasks, local / "field_tasks.csv")
        for item in sorted(local.iterdir()):
            pafs.copy_files(str(item), f"{base}/{item.name}", destination_filesystem=target_fs)
            written[item.name] = f"{folder}/{item.name}"
    return written
