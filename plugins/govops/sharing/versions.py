"""The published version of a lake dataset, resolved once per request.

A dataset is published by renaming a whole staged directory over ``<lake>/<zone>/<path>``
with its commit marker inside (``govops.spark.lake.StagedOutput``). A version here is the
list of its Parquet files plus the marker's content, read so that both come from one
directory: list, read the marker, list again, and start over if anything moved. A query
reads exactly that file list, so it never sees two versions; if the files vanish under it
(the old version swapped out mid-query) the query fails and is retried on the new version.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from govops.errors import CodedError
from govops.spark.lake import COMMIT_MARKER


class DatasetUnavailable(CodedError):
    code = "DATASET_UNAVAILABLE"


@dataclass(frozen=True)
class Version:
    dataset: str
    version_id: str  # 16 hex characters: the marker's and file list's hash
    files: tuple[str, ...]  # local paths (file:// lakes), else paths in the lake's pyarrow filesystem
    committed: dict[str, Any]
    local: bool


def _walk_local(root: str) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found.extend(os.path.join(folder, n) for n in sorted(names)
                     if n.endswith(".parquet") and not n.startswith((".", "_")))  # fmt: skip
    return sorted(found)


class VersionResolver:
    """Resolves datasets under one lake root; on file:// lakes the listing is cached per
    directory identity (inode and mtime change when a new version is renamed in)."""

    def __init__(self, lake_root: str) -> None:
        self.lake_root = lake_root.rstrip("/")
        self._cache: dict[str, tuple[tuple[int, int], Version]] = {}
        self._lock = threading.Lock()

    def resolve(self, dataset: str) -> Version:
        if self.lake_root.startswith("file://"):
            return self._resolve_local(dataset)
        return self._resolve_remote(dataset)

    def _resolve_local(self, dataset: str) -> Version:
        from urllib.parse import unquote, urlparse

        root = os.path.join(unquote(urlparse(self.lake_root).path), dataset)
        for attempt in range(8):
            if attempt:
                time.sleep(0.005 * 2**attempt)  # a swap is two renames: it ends within milliseconds
            try:
                st = os.stat(root)
            except FileNotFoundError:
                continue  # between the two renames of a swap, or not published
            ident = (st.st_ino, st.st_mtime_ns)
            cached = self._cache.get(dataset)
            if cached and cached[0] == ident:
                return cached[1]
            try:
                files = _walk_local(root)
                with open(os.path.join(root, COMMIT_MARKER), "rb") as f:
                    marker = f.read()
                st2 = os.stat(root)
            except FileNotFoundError:
                continue
            if (st2.st_ino, st2.st_mtime_ns) != ident or _walk_local(root) != files:
                continue
            version = _version(dataset, files, marker, local=True)
            with self._lock:
                self._cache[dataset] = (ident, version)
            return version
        raise DatasetUnavailable(f"{dataset}: no published version (no {COMMIT_MARKER} or being replaced)")

    def _resolve_remote(self, dataset: str) -> Version:
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(f"{self.lake_root}/{dataset}")
        for attempt in range(8):
            if attempt:
                time.sleep(0.005 * 2**attempt)
            try:
                infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
                with filesystem.open_input_stream(f"{base}/{COMMIT_MARKER}") as f:
                    marker = f.read()
                again = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
            except (FileNotFoundError, OSError):
                continue
            names = sorted(i.path for i in infos if _data_file(i.path[len(base) :]))
            if names != sorted(i.path for i in again if _data_file(i.path[len(base) :])):
                continue
            return _version(dataset, names, marker, local=False)  # paths in the lake's pyarrow filesystem
        raise DatasetUnavailable(f"{dataset}: no published version (no {COMMIT_MARKER} or being replaced)")


def _data_file(relative: str) -> bool:
    parts = [p for p in relative.split("/") if p]
    return bool(parts) and parts[-1].endswith(".parquet") and not any(p.startswith((".", "_")) for p in parts)


def _version(dataset: str, files: list[str], marker: bytes, local: bool) -> Version:
    import json

    if not files:
        raise DatasetUnavailable(f"{dataset}: the published version has no Parquet files")
    digest = hashlib.sha256(marker + "\n".join(os.path.basename(f) for f in files).encode()).hexdigest()[:16]
    try:
        committed = json.loads(marker)
    except ValueError:
        committed = {}
    return Version(dataset, digest, tuple(files), committed if isinstance(committed, dict) else {}, local)
