"""Data labeling (数据标注, item 06): which columns of a lake dataset hold sensitive data, by
name and content (govops.security.detectors), in one aggregation over the data.

    spark-submit --py-files govops.zip spark_jobs/label_dataset.py <contract arguments> \
        --dataset raw/frontdb/public_security/persons [--sample-rows N] [--columns a,b] \
        [--threshold 0.8] [--hint-threshold 0.5]

Reads the Parquet dataset ``<lake>/<dataset>`` (all of it unless ``--sample-rows``), and puts
each column's detection (data type, match ratios and counts, never a value) in the
manifest; the Airflow task grades them and writes the labels and the labeling log. Metered
per record (万条): the rows examined, which are the dataset's rows unless sampled.
"""

from __future__ import annotations

import json

from govops.security.detectors import DEFAULT_HINT_THRESHOLD, DEFAULT_THRESHOLD
from govops.spark import job
from govops.spark.lake import COMMIT_MARKER


def label(ctx: job.JobContext) -> None:
    from govops.security import detectors

    a = ctx.args
    dataset = detectors.check_dataset(a.dataset)
    uri = f"{ctx.lake_root}/{dataset}"
    if not ctx.fs.exists(uri):
        raise FileNotFoundError(f"{uri}: no such dataset in the lake")
    marker = f"{uri}/{COMMIT_MARKER}"
    published_by = json.loads(ctx.fs.read_text(marker)) if ctx.fs.exists(marker) else None
    sample_rows = int(a.sample_rows) if a.sample_rows not in (None, "", "0", "None") else None
    df = ctx.spark.read.parquet(uri)
    columns = [c.strip() for c in a.columns.split(",") if c.strip()] if a.columns else None
    with ctx.timed("detect_s"):
        found = detectors.detect(df, columns=columns, sample_rows=sample_rows, threshold=a.threshold,
                                 hint_threshold=a.hint_threshold)  # fmt: skip
    rows = next(iter(found.values())).rows if found else df.count()
    ctx.counts.update(read=rows, written=rows, rejected=0)
    ctx.inputs.append({"kind": "parquet", "uri": uri, "rows": rows, "published_by": published_by})
    ctx.outputs.append({
        "kind": "labeling", "dataset": dataset, "rows": rows, "sample_rows": sample_rows,
        "rows_in_dataset": df.count() if sample_rows else rows, "threshold": a.threshold,
        "hint_threshold": a.hint_threshold, "columns": {c: d.as_dict() for c, d in found.items()},
        "sensitive_types": {c: d.data_type for c, d in found.items() if d.data_type},
    })  # fmt: skip
    ctx.metering.append({"service_item": "06", "unit": "record", "quantity": rows, "records": rows,
                         "data_source": dataset})  # fmt: skip


def main() -> None:
    p = job.parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="<zone>/<path> in the lake (raw/frontdb/public_security/persons)")
    p.add_argument("--sample-rows", default=None, help="examine at most this many rows (default, empty or 0: all)")
    p.add_argument("--columns", default=None, help="comma-separated columns to label (default: all)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="content match ratio that labels a column")
    p.add_argument("--hint-threshold", type=float, default=DEFAULT_HINT_THRESHOLD,
                   help="the same, when the column name hints the type")
    job.run("label_dataset", p, label)


if __name__ == "__main__":
    main()
