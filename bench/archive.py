"""Archive and restore throughput (item 21) next to a plain file copy of the same files.

On a partitioned Parquet dataset of the lake (written with the item-21 sample generator when
it is not there: ``partitions`` days of ``rows_per_partition`` events in
``files_per_partition`` files each), in this process:

- ``shutil.copytree`` of the dataset folder (once untimed to warm the page cache, then timed):
  one read and one write of every byte, the floor;
- archive of every partition (``govops.security.archive.run``): the streaming copy with its
  SHA-256 and the footer rows, the manifest, the verification that reads every archived
  byte back, the removal of the live copy, the state rows and audit entries;
- restore of every partition: the copy back checked against the manifest, verified, the
  archived copy removed; then a check that every file is byte-identical to before.

MB/s are of the dataset's bytes (MB = 10^6 bytes). An archive reads each byte twice (copy,
verify), so about half of copytree's rate is what the design costs. The dataset is left
live as it was. Operation rows go to the ledger with dag_id ``bench_archive``.

    ./dev python -m bench.archive --partitions 8 --rows 200000
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DATASET = "raw/bench/archive_events"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def bench_archive(lake_root: str | Path, dataset: str = DATASET, *, partitions: int = 8,
                  rows_per_partition: int = 100_000, files_per_partition: int = 4, threads: int = 4,
                  engine: Any = None, verbose: bool = True) -> dict[str, Any]:  # fmt: skip
    """Archive and restore MB/s of ``<lake>/<dataset>`` next to shutil.copytree of its files."""
    from sqlalchemy import create_engine

    from govops import settings
    from govops.security import archive as A
    from govops.security.archive_sample import PARTITION_COLUMN, write_sample_events
    from govops.security.retention import Period, RetentionPolicy
    from govops.settlement.workorders import ensure_demo_work_order

    root = Path(lake_root).resolve().as_uri() if isinstance(lake_root, Path) or "://" not in lake_root else lake_root
    root = root.rstrip("/")
    if not root.startswith("file://"):
        raise ValueError(f"bench_archive compares with shutil.copytree and needs a local lake, got {root}")
    live = Path(unquote(urlsplit(root).path)) / dataset
    if not live.is_dir():
        start = date(2024, 1, 1)
        write_sample_events(root, dataset, start=start, end=start + timedelta(days=partitions - 1), every_days=1,
                            rows_per_day=rows_per_partition, files_per_partition=files_per_partition)  # fmt: skip
    names = sorted(p.name for p in live.iterdir() if p.is_dir() and p.name.startswith(f"{PARTITION_COLUMN}="))
    before = _digests(live)
    size = sum((live / rel).stat().st_size for rel in before)
    mb = size / 1e6

    own = engine is None
    engine = engine or create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        ensure_demo_work_order(engine, "WO-BENCH-ARCHIVE", "21", on=date.today())
        policy = RetentionPolicy(dataset, PARTITION_COLUMN, Period(1, "days"))
        ctx = A.RunContext("bench_archive", f"bench-{uuid.uuid4().hex[:12]}", "WO-BENCH-ARCHIVE", actor="bench")

        with tempfile.TemporaryDirectory(dir=live.parent) as scratch:
            target = Path(scratch) / "copy"
            shutil.copytree(live, target)  # warm the page cache
            shutil.rmtree(target)
            t0 = time.perf_counter()
            shutil.copytree(live, target)
            copy_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        archived = A.run(engine, root, policy, "archive", ctx, as_of=date.today(), partitions=names, threads=threads)
        archive_s = time.perf_counter() - t0
        back = A.RunContext(ctx.dag_id, f"{ctx.run_id}-restore", ctx.work_order_id, actor="bench")
        t0 = time.perf_counter()
        A.run(engine, root, policy, "restore", back, as_of=date.today(), partitions=names, threads=threads)
        restore_s = time.perf_counter() - t0
    finally:
        if own:
            engine.dispose()

    identical = _digests(live) == before
    rows = sum(p["rows"] for p in archived["partitions"])
    result = {
        "dataset": dataset, "partitions": len(names), "files": len(before), "bytes": size, "rows": rows,
        "threads": threads, "copytree_s": copy_s, "copytree_mb_s": mb / copy_s,
        "archive_s": archive_s, "archive_mb_s": mb / archive_s, "restore_s": restore_s,
        "restore_mb_s": mb / restore_s, "archive_vs_copytree": copy_s / archive_s,
        "restore_vs_copytree": copy_s / restore_s, "identical": identical,
    }  # fmt: skip
    if verbose:
        print(f"\narchive / restore of {dataset}: {len(names)} partitions, {len(before)} files, {mb:,.1f} MB, "
              f"{rows:,} rows, {threads} copy threads")  # fmt: skip
        print(f"  {'method':<47} {'seconds':>8} {'MB/s':>8} {'vs copytree':>12}")
        for name, s in (("shutil.copytree (floor: read + write)", copy_s),
                        ("archive (copy + sha256, verify, remove live)", archive_s),
                        ("restore (copy + check, verify, remove archive)", restore_s)):  # fmt: skip
            print(f"  {name:<47} {s:>8.2f} {mb / s:>8.1f} {copy_s / s:>11.2f}x")
        print(f"  restored files byte-identical to the originals: {identical}")
    if not identical:
        raise AssertionError(f"{dataset}: the restored files differ from the originals")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", default=None, help="lake root (default: GOVOPS_HOME/bench-lake)")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--rows", type=int, default=100_000, help="rows per partition")
    p.add_argument("--files", type=int, default=4, help="files per partition")
    p.add_argument("--threads", type=int, default=4)
    a = p.parse_args()
    from govops import settings

    lake = Path(a.lake) if a.lake else settings.home() / "bench-lake"
    lake.mkdir(parents=True, exist_ok=True)
    bench_archive(lake, partitions=a.partitions, rows_per_partition=a.rows, files_per_partition=a.files,
                  threads=a.threads)  # fmt: skip
