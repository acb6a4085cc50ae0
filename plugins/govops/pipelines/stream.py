"""Stream extraction (item 02): where a stream keeps its state in the lake, and what
Airflow needs to meter each micro-batch exactly once.

Per pipeline, under the lake root (so it works on HDFS as on a local disk):

- ``_checkpoints/<pipeline>``: Spark's checkpoint (offsets, commits). Its ``metadata``
  holds the query id, which is the stream's identity for metering.
- ``<zone>/<dataset>/batch=<id>`` and ``rejects/<dataset>/batch=<id>``: the micro-batch's
  rows and rejects, each swapped in whole; a replayed batch replaces its own partitions.
- ``_streams/<pipeline>/batches/<id>.json``: the batch record, written after both
  partitions: counts, reasons, offsets, time. A batch has a record once its data is in.

Airflow meters the records above the highest batch the ledger already holds for the
stream (``usage_event.attributes->>'stream_batch_to'``), whichever run processed them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from govops.spark.lake import HadoopFS

RECORD_DIGITS = 12  # batch records sort by name


def checkpoint_uri(lake_root: str, pipeline: str) -> str:
    return f"{lake_root.rstrip('/')}/_checkpoints/{pipeline}"


def records_uri(lake_root: str, pipeline: str) -> str:
    return f"{lake_root.rstrip('/')}/_streams/{pipeline}/batches"


def record_name(batch_id: int) -> str:
    return f"{batch_id:0{RECORD_DIGITS}d}.json"


def stream_id(lake_root: str, pipeline: str) -> str | None:
    """The query id in the checkpoint's metadata, or None before the first run (pyarrow:
    Airflow's side has no JVM)."""
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(f"{checkpoint_uri(lake_root, pipeline)}/metadata")
    try:
        with filesystem.open_input_stream(path) as stream:
            return json.loads(stream.read())["id"]
    except FileNotFoundError:
        return None


def checkpoint_stream_id(fs: HadoopFS, checkpoint: str) -> str | None:
    """The query id in a checkpoint's metadata, read by a Spark job through its JVM's
    filesystem; None before the first run."""
    if not fs.exists(f"{checkpoint}/metadata"):
        return None
    return json.loads(fs.read_text(f"{checkpoint}/metadata"))["id"]


def metering_plan(
    conn: Any, dag_id: str, run_id: str, stream: str | None, work_order_id: str, service_item: str = "02"
) -> dict[str, Any]:
    """Which batches the next extract meters, from the ledger.

    ``metered_through``: the highest batch already metered for this stream (-1: none).
    A re-run of a run that already metered batches a..b meters exactly those again (a
    no-op in the ledger): ``metered_through`` a-1 and ``meter_through`` b.
    """
    from sqlalchemy import text

    if stream is None:
        return {"stream_id": None, "metered_through": -1, "meter_through": None}
    rows = conn.execute(
        text(
            """SELECT run_id, work_order_id, (attributes->>'stream_batch_from')::bigint AS first,
                      (attributes->>'stream_batch_to')::bigint AS last
                 FROM govops.usage_event
                WHERE dag_id = :dag AND service_item_code = :item AND attributes->>'stream_id' = :stream"""
        ),
        {"dag": dag_id, "stream": stream, "item": service_item},
    ).all()
    own = [r for r in rows if r.run_id == run_id]
    if own:
        [mine] = own  # one event per run: the idempotency key has no batch in it
        if (mine.work_order_id or "") != (work_order_id or ""):
            raise ValueError(
                f"{run_id} already metered stream batches {mine.first}-{mine.last} to work order "
                f"{mine.work_order_id}; re-running it against {work_order_id} would bill them twice"
            )
        return {"stream_id": stream, "metered_through": mine.first - 1, "meter_through": mine.last}
    return {"stream_id": stream, "metered_through": max((r.last for r in rows), default=-1), "meter_through": None}
