"""Security services at scale (issue 7): N persons-like rows (default 5,000,000, the dataset of
bench/quality.py) in one run:

- in one warmed Spark session per core count (this file run by spark-submit with ``local[1]``
  and ``local[2]``; the DataFrame read once and scanned untimed, each masking rule run
  twice and the faster run kept, labeling once), rows/s and rows/s per core of: labeling (every column through every
  detector, ``govops.security.detectors.detect``), and the masking rules as the masking job
  runs them (``govops.security.masking.mask_dataframe``, output to Spark's ``noop`` sink so
  only the rule is timed) on the column each is for: partial masking of the name and the
  phone, HMAC-SHA256 and HMAC-SM3 pseudonyms of the ID number, FF1 of the ID number (the
  check character recomputed), AES-256-GCM of the phone; with a plain column copy as the
  floor;
- in this process: pure-Python FF1 (the reference ``ff1_encrypt`` per value, the usual way
  FF1 is written in Python) on 20,000 ID numbers, the anchor of the FF1 goal;
- archive and restore MB/s of a partitioned dataset against a plain file copy of the same
  files (bench/archive.py).

Goal: FF1 in the job at least 3x the pure-Python figure per core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

METHODS = {  # name -> (columns, the rules of the policy)
    "copy (floor)": ("id_number", {"id_number": {"rule": "keep"}}),
    "partial masking (name, phone)": ("name,phone", {"name": {"rule": "partial", "keep_first": 1},
                                                     "phone": {"rule": "partial", "keep_first": 3, "keep_last": 4}}),
    "HMAC-SHA256 pseudonym (ID number)": ("id_number", {"id_number": {"rule": "hmac", "algorithm": "hmac-sha256"}}),
    "HMAC-SM3 pseudonym (ID number)": ("id_number", {"id_number": {"rule": "hmac", "algorithm": "hmac-sm3"}}),
    "FF1 (ID number, check char kept valid)": ("id_number", {"id_number": {"rule": "ff1", "check_char": "gb11643"}}),
    "AES-256-GCM (phone)": ("phone", {"phone": {"rule": "encrypt", "algorithm": "aes-256-gcm"}}),
}  # fmt: skip
LABELING = "labeling (all columns, all detectors)"


def _session(argv: list[str]) -> None:
    """Inside spark-submit: time labeling and each rule in this one session."""
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from govops.security import detectors
    from govops.security.masking import KeyRing, Policy, mask_dataframe, parse_rule

    spark = SparkSession.builder.appName("govops:bench:security").config("spark.log.level", "WARN").getOrCreate()
    df = spark.read.parquet(a.data)
    rows = df.agg(F.count(F.lit(1)), *[F.count(c) for c in df.columns]).first()[0]  # warm-up: every column read
    ring = KeyRing("bench", 1, {1: os.urandom(32)})
    figures: dict = {"rows": rows, "master": spark.sparkContext.master, "methods": {}}

    def timed(name: str, work, repeats: int = a.repeats) -> None:
        best = None
        for _ in range(repeats):
            started = time.perf_counter()
            found = work()
            seconds = time.perf_counter() - started
            best = seconds if best is None else min(best, seconds)
        figures["methods"][name] = {"seconds": best, **(found or {})}

    def labels() -> dict:
        found = detectors.detect(df)
        return {"types": {c: d.data_type for c, d in found.items() if d.data_type}}

    timed(LABELING, labels, repeats=1)  # a full scan of every column: long enough to need no second run
    for name, (columns, rules) in METHODS.items():
        policy = Policy("bench", "raw/bench", "sharing/bench", "bench",
                        tuple(parse_rule(c, r, name) for c, r in rules.items()))  # fmt: skip
        subset = df.select(*columns.split(","))
        timed(name, lambda policy=policy, subset=subset: mask_dataframe(subset, policy, ring).write.format("noop")
              .mode("overwrite").save())  # fmt: skip
    Path(a.out).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    spark.stop()


def _run_session(lake: Path, data: Path, cores: int) -> dict:
    from govops import settings
    from govops.spark.package import build_zip

    out = lake / f"security-bench-{cores}core.json"
    out.unlink(missing_ok=True)
    cmd = ["spark-submit", "--master", f"local[{cores}]", "--conf", "spark.ui.enabled=false", "--driver-memory", "4g",
           "--py-files", str(build_zip()), str(Path(__file__).resolve()), "--data", data.as_uri(),
           "--out", str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=settings.repo_root())
    if result.returncode != 0 or not out.is_file():
        raise SystemExit(f"security bench session, local[{cores}], failed:\n{result.stderr[-4000:]}")
    return json.loads(out.read_text())


def pure_python_ff1_rate(n: int = 20_000) -> float:
    """Rows/s of the reference FF1 called per value (bench/ff1.py's loop) on 17-digit strings."""
    from bench.ff1 import make_values, pure_python_ff1

    values = [str(v) for v in make_values(n, seed=7)]
    started = time.perf_counter()
    pure_python_ff1(os.urandom(32), values)
    return n / (time.perf_counter() - started)


def bench_security(rows: int) -> dict:
    from bench.quality import ensure_dataset
    from govops import settings

    lake = settings.home() / "bench-lake"
    lake.mkdir(parents=True, exist_ok=True)
    data = ensure_dataset(lake, rows)
    python_ff1 = pure_python_ff1_rate()
    print(f"pure-Python FF1 (reference ff1_encrypt per value, AES-256, 17 digits, 20,000 values): "
          f"{python_ff1:,.0f} rows/s on one core")  # fmt: skip
    sessions = {cores: _run_session(lake, data, cores) for cores in (1, 2)}
    names = [LABELING, *METHODS]
    print(f"\n{sessions[1]['rows']:,} rows; in a warmed session (spark-submit local[N]), the rules the faster of "
          "two runs")  # fmt: skip
    print(f"  {'method':<42} {'1 core rows/s':>14} {'2 cores rows/s':>15} {'per core (2)':>13} {'scaling':>8}")
    result: dict = {"rows": sessions[1]["rows"], "pure_python_ff1": python_ff1, "methods": {}}
    for name in names:
        one, two = (sessions[c]["methods"][name]["seconds"] for c in (1, 2))
        r1, r2 = rows / one, rows / two
        result["methods"][name] = {"rows_s_1core": r1, "rows_s_2cores": r2, "scaling": one / two}
        print(f"  {name:<42} {r1:>14,.0f} {r2:>15,.0f} {r2 / 2:>13,.0f} {one / two:>7.2f}x")
    ff1 = result["methods"]["FF1 (ID number, check char kept valid)"]["rows_s_1core"]
    print(f"  FF1 in the job, 1 core, vs pure-Python FF1: {ff1 / python_ff1:.1f}x (goal: at least 3x)")
    found = sessions[1]["methods"][LABELING]["types"]
    print(f"  labeling found: {', '.join(f'{c}={t}' for c, t in sorted(found.items()))}")
    from bench.archive import bench_archive

    # About 300 MB, so the copies take seconds rather than milliseconds.
    result["archive"] = bench_archive(lake, "raw/bench/archive_events_300mb", rows_per_partition=1_000_000)
    return result


if __name__ == "__main__":
    if "--out" in sys.argv:  # the spark-submit session
        _session(sys.argv[1:])
    else:
        p = argparse.ArgumentParser(description=__doc__)
        p.add_argument("--rows", type=int, default=5_000_000)
        bench_security(p.parse_args().rows)
