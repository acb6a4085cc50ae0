"""Publishing a Parquet dataset into a file:// lake the way the Spark jobs do (staged, then
one directory rename, with the commit marker), for the sample set and the tests.

    python -m govops.sharing sample-dataset [--rows 2000]   the sample set's dataset
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlparse

from govops.spark.lake import COMMIT_MARKER

SAMPLE_DATASET = "sharing/market_regulation/legal_persons"


def publish_table(lake_root: str, dataset: str, table: Any, marker: dict[str, Any] | None = None,
                  row_group_size: int = 100_000) -> str:  # fmt: skip
    """Write ``table`` (pyarrow) as the new published version of ``dataset``; its target path."""
    import pyarrow.parquet as pq

    if not lake_root.startswith("file://"):
        raise ValueError(f"{lake_root}: only file:// lakes (the Spark jobs publish elsewhere)")
    root = unquote(urlparse(lake_root).path)
    run = uuid.uuid4().hex[:12]
    staging = os.path.join(root, "_staging", run, dataset)
    target = os.path.join(root, dataset)
    trash = os.path.join(root, "_trash", run, dataset)
    os.makedirs(staging)
    pq.write_table(table, os.path.join(staging, f"part-00000-{run}.parquet"), row_group_size=row_group_size)
    with open(os.path.join(staging, COMMIT_MARKER), "w", encoding="utf-8") as f:
        json.dump({"run": run, "rows": table.num_rows, "published_at": datetime.now(UTC).isoformat(),
                   **(marker or {})}, f)  # fmt: skip
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
        os.makedirs(os.path.dirname(trash), exist_ok=True)
        os.rename(target, trash)
    os.rename(staging, target)
    shutil.rmtree(os.path.join(root, "_trash", run), ignore_errors=True)
    shutil.rmtree(os.path.join(root, "_staging", run), ignore_errors=True)
    return target


def sample_table(rows: int) -> Any:
    """The sample district's legal persons (法人), as the sharing zone publishes them."""
    import pyarrow as pa

    from govops.sample_data.generator import SampleConfig, build_frames

    frame = build_frames(SampleConfig(persons=max(10, rows * 5 // 2), legal_persons=rows)).legal_persons
    frame["established_on"] = frame["established_on"].dt.date
    return pa.Table.from_pandas(frame.sort_values("id"), preserve_index=False)
