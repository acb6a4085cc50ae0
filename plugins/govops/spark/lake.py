"""Lake filesystem operations through Hadoop's FileSystem API, so the same code works on
``file://`` locally and ``hdfs://`` (or any Hadoop-compatible store) in production.

Outputs are written to a staging directory and swapped in only when the job succeeds:
a failed or killed run leaves the published dataset as it was.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

COMMIT_MARKER = "_GOVOPS_COMMIT.json"  # in every published dataset: who published it, when


def write_part(filesystem: Any, folder: str, name: str, write: Callable[[str], None]) -> None:
    """A part file written by a task with pyarrow (``filesystem`` a pyarrow FileSystem):
    to a hidden temporary name, then renamed, so a retried or speculative task replaces the
    part whole, and readers skip the hidden name meanwhile."""
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    write(tmp)
    filesystem.move(tmp, f"{folder}/{name}")


class HadoopFS:
    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark._jvm  # the driver's JVM gateway
        self._conf = spark._jsc.hadoopConfiguration()

    def _path(self, uri: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def _fs(self, uri: str) -> Any:
        return self._path(uri).getFileSystem(self._conf)

    def exists(self, uri: str) -> bool:
        return bool(self._fs(uri).exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        if self.exists(uri):
            self._fs(uri).delete(self._path(uri), True)

    def mkdirs(self, uri: str) -> None:
        self._fs(uri).mkdirs(self._path(uri))

    def rename(self, src: str, dst: str) -> None:
        if not self._fs(src).rename(self._path(src), self._path(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def size(self, uri: str) -> tuple[int, int]:
        """(files, bytes) under a path."""
        summary = self._fs(uri).getContentSummary(self._path(uri))
        return int(summary.getFileCount()), int(summary.getLength())

    def list_names(self, uri: str) -> list[str]:
        """The names in a directory, sorted; none when it does not exist."""
        if not self.exists(uri):
            return []
        return sorted(str(s.getPath().getName()) for s in self._fs(uri).listStatus(self._path(uri)))

    def list_dirs(self, uri: str) -> list[str]:
        """The names of the subdirectories of a directory, sorted; none when it does not exist."""
        if not self.exists(uri):
            return []
        statuses = self._fs(uri).listStatus(self._path(uri))
        return sorted(str(s.getPath().getName()) for s in statuses if s.isDirectory())

    def read_text(self, uri: str) -> str:
        """A small UTF-8 file's text."""
        stream = self._fs(uri).open(self._path(uri))
        try:
            return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def write_text(self, uri: str, text: str) -> None:
        """Write a small file atomically: a temporary sibling renamed over the target."""
        tmp = uri + ".tmp"
        fs = self._fs(uri)
        stream = fs.create(self._path(tmp), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        if fs.exists(self._path(uri)):
            fs.delete(self._path(uri), False)
        self.rename(tmp, uri)


class StagedOutput:
    """A dataset written to staging and published by :meth:`commit`.

    ``target``:  <lake>/<zone>/<dataset>            (what readers see)
    ``staging``: <lake>/_staging/<run key>/<zone>/<dataset>
    ``trash``:   <lake>/_trash/<run key>/<zone>/<dataset> (the previous version, during the swap)
    """

    def __init__(self, fs: HadoopFS, lake_root: str, run_key: str, zone: str, dataset: str) -> None:
        self.fs = fs
        self.target = f"{lake_root}/{zone}/{dataset}"
        self.staging = f"{lake_root}/_staging/{run_key}/{zone}/{dataset}"
        self.trash = f"{lake_root}/_trash/{run_key}/{zone}/{dataset}"

    def prepare(self) -> None:
        """Clear what an earlier, killed attempt of this task left behind."""
        if self.fs.exists(self.trash) and not self.fs.exists(self.target):
            # Killed between the two renames of commit(): put the old version back.
            self.fs.rename(self.trash, self.target)
        self.fs.delete(self.trash)
        self.fs.delete(self.staging)

    def commit(self, marker: dict[str, Any]) -> None:
        """Publish staging as the target: a directory rename on the same filesystem."""
        self.fs.write_text(f"{self.staging}/{COMMIT_MARKER}", json.dumps(marker, indent=2))
        parent = self.target.rsplit("/", 1)[0]
        self.fs.mkdirs(parent)
        if self.fs.exists(self.target):
            self.fs.mkdirs(self.trash.rsplit("/", 1)[0])
            self.fs.rename(self.target, self.trash)
        self.fs.rename(self.staging, self.target)
        self.fs.delete(self.trash)
