"""Security assessment scan (数据安全评估审核, item 19): where the lake's data lives and which
columns of the sharing and open zones hold clear sensitive values.

    spark-submit --py-files govops.zip spark_jobs/assess_security.py <contract arguments> \
        [--zones raw,clean,sharing,open,archive] [--prefixes sharing/x,raw/y] \
        [--sample-rows N] [--metered-records N]

Lists the published datasets of the zones (folders holding a ``_GOVOPS_COMMIT.json``
marker, or in the archive zone the ``_ARCHIVE_MANIFEST.json`` of an archived partition),
reads each one's Parquet for its rows and columns, measures its files and bytes, and runs
the content detectors (``govops.security.detectors.detect``, one aggregation per dataset)
over the datasets of the sharing and open zones. The manifest's ``security_scan``
output holds per dataset its zone, path, rows, files, bytes, columns, commit marker and
detections (figures and column names only: never a value); the Airflow task
``govops.security.assessment.assess`` turns it into findings.

Metered: item 19 per record (万条), the rows of the datasets scanned, data source ``lake``.
``--metered-records``: a re-run of a run that already metered declares that figure again
(the scan's own total goes to the event's attributes), so a run is billed once.
"""

from __future__ import annotations

import json
import re
from typing import Any

from govops.security.archive import ARCHIVE_MANIFEST
from govops.spark import job
from govops.spark.lake import COMMIT_MARKER

DETECTED_ZONES = ("sharing", "open")


def find_datasets(fs: Any, lake_root: str, zone: str) -> dict[str, list[tuple[str, str]]]:
    """The datasets under ``<lake>/<zone>``, each with the folders (relative to the dataset)
    whose markers publish it and the marker's name: the dataset's own folder, or, for
    datasets published a partition at a time (``load=<run>``, ``batch=<n>``) and archived
    partitions, each partition. A marked folder is not searched further; names starting with
    ``_`` or ``.`` (staging, metadata) are skipped."""
    found: dict[str, list[tuple[str, str]]] = {}
    markers = (COMMIT_MARKER, ARCHIVE_MANIFEST) if zone == "archive" else (COMMIT_MARKER,)

    def walk(rel: str) -> None:
        uri = f"{lake_root}/{zone}/{rel}".rstrip("/")
        names = fs.list_names(uri) if rel else []
        marker = next((m for m in markers if m in names), None)
        if marker is not None:
            parts = rel.split("/")
            keep = len(parts)
            while keep > 1 and "=" in parts[keep - 1]:  # a Hive partition: the dataset is above it
                keep -= 1
            found.setdefault("/".join(parts[:keep]), []).append(("/".join(parts[keep:]), marker))
            return
        for name in fs.list_dirs(uri):
            if not name.startswith(("_", ".")):
                walk(f"{rel}/{name}" if rel else name)

    walk("")
    return found


def _markers(fs: Any, uri: str, folders: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
    """The markers' JSON (an unreadable one is None: it names no run). Of an archive
    manifest only its figures are kept, not its list of files."""
    markers: list[dict[str, Any] | None] = []
    for folder, name in folders:
        try:
            marker = json.loads(fs.read_text("/".join(p for p in (uri, folder, name) if p)))
        except ValueError:
            marker = None
        if isinstance(marker, dict) and name == ARCHIVE_MANIFEST:
            marker = {"archive_manifest": True, **{k: v for k, v in marker.items() if not isinstance(v, list | dict)}}
        markers.append(marker if isinstance(marker, dict) else None)
    return markers


def _reason(exc: BaseException) -> str:
    """Spark's error class and message (which names the file), without the Java stack."""
    found = re.search(r"\[[A-Z_.]+\][^\n]*", str(exc))
    first = found.group(0) if found else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:400]


def _detections(df: Any, sample_rows: int | None) -> dict[str, dict[str, Any]]:
    from govops.security.detectors import detect

    found = detect(df, sample_rows=sample_rows)
    return {
        name: {"data_type": d.data_type, "match_ratio": float(d.match_ratio or 0.0), "non_null": int(d.non_null),
               "matches": int(d.matches), "name_hint": d.name_hint}
        for name, d in found.items()
    }  # fmt: skip


def scan_dataset(ctx: job.JobContext, zone: str, path: str, folders: list[tuple[str, str]],
                 sample_rows: int | None) -> dict[str, Any]:  # fmt: skip
    uri = f"{ctx.lake_root}/{zone}/{path}"
    files, size = ctx.fs.size(uri)
    entry: dict[str, Any] = {
        "dataset": f"{zone}/{path}", "zone": zone, "path": path, "uri": uri, "rows": 0, "files": files,
        "bytes": size, "columns": [], "partitions": [f for f, _ in folders if f],
        "markers": _markers(ctx.fs, uri, folders), "detections": None, "error": None,
    }  # fmt: skip
    try:
        df = ctx.spark.read.parquet(uri)
        entry["columns"] = list(df.columns)
        entry["rows"] = int(df.count())  # Parquet counts come from the footers, not the data
    except Exception as exc:  # one unreadable dataset is a finding, not a failed assessment
        if "UNABLE_TO_INFER_SCHEMA" in str(exc):
            return entry  # published empty: no data files, nothing to read
        entry["error"] = f"{uri}: not readable as Parquet: {_reason(exc)}"
        recorded = [(m or {}).get("rows") for m in entry["markers"]]
        if zone == "archive" and all(isinstance(r, int) for r in recorded):
            entry["rows"] = sum(recorded)  # archived packages: the rows their markers record
        return entry
    if zone in DETECTED_ZONES and entry["rows"]:
        try:
            entry["detections"] = _detections(df, sample_rows)
        except Exception as exc:
            raise RuntimeError(f"{uri}: the content detectors failed: {exc}") from exc
    return entry


def assess(ctx: job.JobContext) -> None:
    from govops.security.assessment import in_scope, parse_prefixes, parse_zones

    a = ctx.args
    zones = parse_zones(a.zones)
    prefixes = parse_prefixes(a.prefixes, zones)
    sample_rows = int(a.sample_rows) if a.sample_rows not in (None, "") else None
    datasets: list[dict[str, Any]] = []
    with ctx.timed("scan_s"):
        for zone in zones:
            for path, folders in sorted(find_datasets(ctx.fs, ctx.lake_root, zone).items()):
                if in_scope(f"{zone}/{path}", zones, prefixes):
                    datasets.append(scan_dataset(ctx, zone, path, folders, sample_rows))
    total = sum(d["rows"] for d in datasets)
    ctx.counts.update(read=total, written=total, rejected=0)
    ctx.inputs.extend({"kind": "parquet", "uri": d["uri"], "rows": d["rows"]} for d in datasets)
    ctx.outputs.append({"kind": "security_scan", "zones": zones, "prefixes": prefixes, "datasets": datasets,
                        "rows": total, "bytes": sum(d["bytes"] for d in datasets)})  # fmt: skip
    metered = total if a.metered_records in (None, "") else int(a.metered_records)
    entry: dict[str, Any] = {"service_item": "19", "unit": "record", "quantity": metered, "records": metered,
                             "data_source": "lake"}  # fmt: skip
    if metered != total:  # a re-run of a metered run: billed as first metered, today's figure kept
        entry["attributes"] = {"rows_scanned": total, "datasets": len(datasets)}
    ctx.metering.append(entry)


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--zones", default="raw,clean,sharing,open,archive", help="comma-separated zones to scan")
    p.add_argument("--prefixes", default="", help="comma-separated <zone>/<path> prefixes (default: everything)")
    p.add_argument("--sample-rows", default=None, help="detectors: at most this many rows per dataset")
    p.add_argument("--metered-records", default=None, help="a re-run: the records this run already metered")
    job.run("assess_security", p, assess)


if __name__ == "__main__":
    main()
