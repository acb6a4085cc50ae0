"""Benchmarks: ``./dev bench`` prints figures; nothing here is a test."""

from __future__ import annotations

import subprocess
import time
from typing import Any


def spark_submit(cmd: list[str], manifest_uri: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a job's spark-submit command; its manifest, with the command's wall time added
    as ``wall_s`` (the job's own timings leave out the JVM start-up)."""
    from govops.spark import manifest as manifests

    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(manifests.read(manifest_uri).get("error") or result.stderr[-3000:])
    manifest = manifests.read(manifest_uri)
    manifest["wall_s"] = wall
    return manifest
