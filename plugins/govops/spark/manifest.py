"""The JSON manifest every Spark job writes, and where it lives.

A manifest says what a job did: inputs and outputs with their locations, counts per
outcome (read / written / rejected), checksums, timings, and the usage it meters. Airflow
reads it back after the job and meters from it; the supervisor (监理) can trace every
billed quantity to one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MANIFEST_VERSION = 1
REQUIRED_FIELDS = (
    "manifest_version",
    "job",
    "status",
    "run",
    "started_at",
    "finished_at",
    "inputs",
    "outputs",
    "counts",
    "metering",
)


class ManifestError(ValueError):
    """A manifest is missing, malformed, or belongs to another run; names the field."""


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", part)


def run_key(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """A path-safe, deterministic name for one task instance (shared by its retries)."""
    suffix = f".{map_index}" if map_index >= 0 else ""
    return f"{_safe(dag_id)}/{_safe(run_id)}/{_safe(task_id)}{suffix}"


def manifest_uri(lake_root: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    return f"{lake_root.rstrip('/')}/_manifests/{run_key(dag_id, run_id, task_id, map_index)}.json"


def validate(manifest: Mapping[str, Any], *, expected_run: Mapping[str, Any], uri: str) -> None:
    """Check shape and that the manifest was written by this run and attempt."""
    missing = [f for f in REQUIRED_FIELDS if f not in manifest]
    if missing:
        raise ManifestError(f"{uri}: missing field(s) {', '.join(missing)}")
    if manifest["manifest_version"] != MANIFEST_VERSION:
        raise ManifestError(f"{uri}: manifest_version {manifest['manifest_version']!r} is not {MANIFEST_VERSION}")
    for key, value in expected_run.items():
        if manifest["run"].get(key) != value:
            raise ManifestError(
                f"{uri}: run.{key} is {manifest['run'].get(key)!r}, expected {value!r} (a stale manifest?)"
            )
    if manifest["status"] != "succeeded":
        raise ManifestError(f"{uri}: status is {manifest['status']!r}: {manifest.get('error', '')}")
    counts = manifest["counts"]
    for name in ("read", "written", "rejected"):
        if not isinstance(counts.get(name), int) or counts[name] < 0:
            raise ManifestError(f"{uri}: counts.{name} must be a non-negative integer, got {counts.get(name)!r}")
    if counts["read"] != counts["written"] + counts["rejected"]:
        raise ManifestError(
            f"{uri}: counts do not reconcile: read {counts['read']} != written {counts['written']} "
            f"+ rejected {counts['rejected']}"
        )


def _filesystem(uri: str):  # -> tuple[pyarrow.fs.FileSystem, str]
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


def read(uri: str) -> dict[str, Any]:
    """Read a manifest from any filesystem pyarrow knows (file://, hdfs://)."""
    filesystem, path = _filesystem(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            data = stream.read()
    except FileNotFoundError as exc:
        raise ManifestError(f"{uri}: no manifest (the job did not finish)") from exc
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{uri}: not valid JSON: {exc}") from exc


def remove(uri: str) -> None:
    """Delete a previous attempt's manifest so a stale one can never be read back."""
    from pyarrow import fs as pafs

    filesystem, path = _filesystem(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_file(path)
