"""The sample district: deterministic public data of Qingpu (青浦区) with reported defects.

``build_frames`` makes the front-end tables, ``generate`` also writes the file side (event
stream, CSV exports, unstructured files, catalog, a GeoJSON) and ``sample_report.json``,
``load_frontdb`` loads the tables, ``load_sample`` does frames + load in one call.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from govops.sample_data.frontdb import load_frontdb
from govops.sample_data.generator import (
    DefectCounts,
    SampleConfig,
    SampleFrames,
    SampleReport,
    build_frames,
    defect_kinds,
)

__all__ = [
    "DefectCounts",
    "SampleConfig",
    "SampleFrames",
    "SampleReport",
    "build_frames",
    "defect_kinds",
    "generate",
    "load_frontdb",
    "load_sample",
]


def generate(cfg: SampleConfig, out_dir: Path) -> tuple[SampleFrames, SampleReport]:
    """Build the tables and write the file side under ``out_dir``, with sample_report.json."""
    from govops.sample_data import files

    frames = build_frames(cfg)
    report = frames.report
    rng = np.random.default_rng([cfg.seed, 1])  # its own stream: files do not shift the tables
    out_dir.mkdir(parents=True, exist_ok=True)
    report.defects += files.write_events(rng, cfg, frames.persons, out_dir)
    report.defects += files.write_exports(rng, cfg, frames, out_dir)
    report.defects += files.write_files_and_catalog(rng, cfg, out_dir)
    spatial_defects, spatial_rows = files.write_spatial(rng, cfg, out_dir)  # last: the streams above stay as they were
    report.defects += spatial_defects
    report.rows.update(spatial_rows)
    report.rows.update(
        {"events": cfg.n_events, "files": cfg.files, "catalog_entries": cfg.files + cfg.defects.missing_files}
    )
    (out_dir / "sample_report.json").write_text(
        json.dumps(report.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return frames, report


def load_sample(database_url: str, *, seed: int = 42, persons: int = 500) -> dict[str, int]:
    """Build the sample tables for ``persons`` persons and load them; returns rows per table."""
    cfg = replace(SampleConfig(), seed=seed, persons=persons)
    return load_frontdb(database_url, build_frames(cfg))
