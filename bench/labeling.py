"""Labeling (item 06) throughput: ``govops.security.detectors.detect`` over every column of a
DataFrame (every detector, one aggregation), in rows/s and column values/s, and the two
Spark forms of the Luhn check of bank cards (higher-order functions vs a fixed-width
unrolled sum) on as many card-shaped numbers.

``bench_labeling(spark, df)`` is called by the security benchmark (bench/security.py);
standalone, on the labeled evaluation sample:

    ./dev python -m bench.labeling --rows 100000
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def _best(work: Any, repeats: int) -> tuple[float, Any]:
    best, result = None, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return best or 0.0, result


def bench_labeling(spark: Any, df: Any, *, repeats: int = 2) -> dict[str, Any]:
    """Time ``detect(df)`` (the best of ``repeats`` runs after a warm-up read) and the Luhn
    forms on ``df.count()`` generated 16-19 digit numbers; returns rows/s and what was found."""
    from pyspark.sql import functions as F

    from govops.security import detectors

    rows = df.agg(F.count(F.lit(1)), *[F.count(f"`{c}`") for c in df.columns]).first()[0]  # warm-up: read it all
    seconds, found = _best(lambda: detectors.detect(df), repeats)
    figures: dict[str, Any] = {
        "rows": rows, "columns": len(df.columns), "seconds": round(seconds, 3),
        "rows_s": rows / seconds if seconds else None,
        "values_s": rows * len(df.columns) / seconds if seconds else None,
        "found": {c: d.data_type for c, d in found.items() if d.data_type},
    }  # fmt: skip
    # Card-shaped numbers: a 62 prefix and 14-17 more digits from a hash of the row number.
    digits = F.lpad(F.abs(F.xxhash64(F.col("id"))).cast("string"), 19, "0")
    width = 16 + F.col("id") % 4
    cards = spark.range(rows).select(F.concat(F.lit("62"), F.substring(digits, 1, width - 2)).alias("v")).cache()
    cards.count()
    luhn = {}
    for name, check in (("higher-order functions", detectors.luhn), ("unrolled 19 digits", detectors.luhn_unrolled)):
        seconds, valid = _best(lambda check=check: cards.agg(F.count_if(check(F.col("v")))).first()[0], repeats)
        luhn[name] = {"seconds": round(seconds, 3), "rows_s": rows / seconds if seconds else None, "valid": valid}
    cards.unpersist()
    figures["luhn"] = luhn
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from pyspark.sql import SparkSession

    from govops.sample_data import security_sample

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--cores", type=int, default=2)
    a = p.parse_args(argv)
    spark = (SparkSession.builder.master(f"local[{a.cores}]").appName("govops:bench:labeling")
             .config("spark.ui.enabled", "false").config("spark.log.level", "WARN").getOrCreate())  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = security_sample.build(a.rows, seed=6).write(Path(tmp) / "sample")
        figures = bench_labeling(spark, spark.read.parquet(folder.as_posix()))
    spark.stop()
    print(f"labeling: {figures['rows']:,} rows x {figures['columns']} columns in {figures['seconds']} s: "
          f"{figures['rows_s']:,.0f} rows/s, {figures['values_s']:,.0f} values/s (local[{a.cores}])")
    for name, f in figures["luhn"].items():
        print(f"  Luhn, {name}: {f['rows_s']:,.0f} rows/s ({f['valid']:,} valid of {figures['rows']:,})")
    return figures


if __name__ == "__main__":
    main()
