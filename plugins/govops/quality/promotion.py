"""Promotion of a checked batch from the raw zone to the clean zone.

Only the version that was checked moves: the dataset's commit marker (written by every
publishing job) is read before the check and again at promotion, and a dataset that
changed in between is refused. The copy goes to staging and is renamed over the target,
so readers of the clean zone see the old version or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from govops.spark.lake import COMMIT_MARKER

NEXT_ZONE = {"raw": "clean"}


def _fs(uri: str) -> tuple[Any, str]:
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(uri)


def version(lake_root: str, dataset: str) -> str | None:
    """The checked version: a digest of the dataset's commit marker (None: no marker)."""
    filesystem, path = _fs(f"{lake_root.rstrip('/')}/{dataset}/{COMMIT_MARKER}")
    try:
        with filesystem.open_input_stream(path) as marker:
            return hashlib.sha256(marker.read()).hexdigest()
    except FileNotFoundError:
        return None


def promote(lake_root: str, dataset: str, checked_version: str | None) -> dict[str, Any]:
    from pyarrow import fs as pafs

    zone, _, rest = dataset.partition("/")
    if zone not in NEXT_ZONE:
        return {"promoted": None, "why": f"datasets of the {zone!r} zone are not promoted"}
    now = version(lake_root, dataset)
    if now != checked_version:
        raise RuntimeError(f"{dataset} changed after it was checked (version {checked_version} -> {now}): "
                           "check it again before it is promoted")  # fmt: skip
    root = lake_root.rstrip("/")
    source, target = f"{root}/{dataset}", f"{root}/{NEXT_ZONE[zone]}/{rest}"
    filesystem, src = _fs(source)
    _, dst = _fs(target)
    _, stage = _fs(f"{root}/_staging/promote/{NEXT_ZONE[zone]}/{rest}")
    _, trash = _fs(f"{root}/_trash/promote/{NEXT_ZONE[zone]}/{rest}")
    for leftover in (stage, trash):  # what a killed promotion left
        if filesystem.get_file_info(leftover).type != pafs.FileType.NotFound:
            filesystem.delete_dir(leftover)
    filesystem.create_dir(stage, recursive=True)
    pafs.copy_files(src, stage, source_filesystem=filesystem, destination_filesystem=filesystem)
    filesystem.create_dir(dst.rsplit("/", 1)[0], recursive=True)
    if filesystem.get_file_info(dst).type != pafs.FileType.NotFound:
        filesystem.create_dir(trash.rsplit("/", 1)[0], recursive=True)
        filesystem.move(dst, trash)
    filesystem.move(stage, dst)
    if filesystem.get_file_info(trash).type != pafs.FileType.NotFound:
        filesystem.delete_dir(trash)
    return {"promoted": target, "from": source, "version": checked_version}
