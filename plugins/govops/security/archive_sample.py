"""A sample dataset for item 21: the district service hall's historical service events
(历史办件记录), Parquet partitioned by ``event_date``, deterministic from a seed.

Each partition's rows depend only on the seed and its date, so any range of dates writes
the same rows for the same days. Columns: ``event_id`` (``EV<yyyymmdd><seq>``, unique),
``id_number`` (a valid GB 11643 resident ID of the applicant), ``mobile``, ``event_type``,
``department``, ``event_time``. ``include/security/retention.yaml`` holds its policy.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

DEMO_DATASET = "raw/frontdb/government_services/service_events_history"
PARTITION_COLUMN = "event_date"
EVENT_TYPES = ("户籍办理", "社保查询", "营业执照", "公积金提取", "不动产登记", "医保报销")
DEPARTMENTS = ("区公安分局", "区人社局", "区市场监管局", "区住建委", "区规划资源局", "区医保局")
_REGIONS = ("310118", "310101", "310104", "310115", "320506")


def sample_dates(start: date, end: date, every_days: int = 1) -> list[date]:
    return [start + timedelta(days=i) for i in range(0, (end - start).days + 1, every_days)]


def event_table(day: date, rows: int, seed: int = 21):  # -> pyarrow.Table
    import numpy as np
    import pyarrow as pa

    from govops.identifiers import resident_id_check_char

    rng = np.random.default_rng([seed, day.toordinal()])
    births = rng.integers(date(1950, 1, 1).toordinal(), date(2005, 12, 31).toordinal(), rows)
    ids = []
    for i in range(rows):
        born = date.fromordinal(int(births[i]))
        first17 = f"{_REGIONS[int(rng.integers(len(_REGIONS)))]}{born:%Y%m%d}{int(rng.integers(1000)):03d}"
        ids.append(first17 + resident_id_check_char(first17))
    mobiles = [f"1{int(rng.choice([3, 5, 7, 8, 9]))}{int(n):09d}" for n in rng.integers(0, 10**9, rows)]
    seconds = np.sort(rng.integers(8 * 3600, 18 * 3600, rows))
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pa.table({
        "event_id": [f"EV{day:%Y%m%d}{i:05d}" for i in range(rows)],
        "id_number": ids,
        "mobile": mobiles,
        "event_type": [EVENT_TYPES[int(k)] for k in rng.integers(len(EVENT_TYPES), size=rows)],
        "department": [DEPARTMENTS[int(k)] for k in rng.integers(len(DEPARTMENTS), size=rows)],
        "event_time": pa.array([midnight + timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def write_sample_events(lake_root: str, dataset: str = DEMO_DATASET, *, start: date = date(2025, 1, 1),
                        end: date = date(2026, 10, 31), every_days: int = 14, rows_per_day: int = 40,
                        files_per_partition: int = 1, seed: int = 21) -> dict[str, int]:  # fmt: skip
    """Write ``<lake>/<dataset>/event_date=YYYY-MM-DD/part-NNNNN.parquet``; returns rows per
    partition. Partitions that exist are rewritten with the same rows."""
    import pyarrow.parquet as pq

    from govops.security.archive import Location
    from govops.spark.lake import COMMIT_MARKER

    root = Location.of(f"{lake_root.rstrip('/')}/{dataset}")
    written = {}
    for day in sample_dates(start, end, every_days):
        table = event_table(day, rows_per_day, seed)
        folder = root.child(f"{PARTITION_COLUMN}={day.isoformat()}")
        folder.delete()
        folder.fs.create_dir(folder.path, recursive=True)
        step = -(-rows_per_day // files_per_partition)
        for n in range(files_per_partition):
            part = table.slice(n * step, step)
            if part.num_rows:
                pq.write_table(part, f"{folder.path}/part-{n:05d}.parquet", filesystem=folder.fs)
        written[folder.name] = rows_per_day
    # Published like a pipeline's dataset, so the lake's readers (the security assessment) see it.
    marker = {"run": {"dag_id": "sample_data", "run_id": "archive_sample"}, "rows": sum(written.values())}
    with root.fs.open_output_stream(f"{root.path}/{COMMIT_MARKER}") as out:
        out.write(json.dumps(marker).encode())
    return written
