"""python -m govops.sample_data: generate the sample district and optionally load it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from govops.sample_data import SampleConfig, generate, load_frontdb


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m govops.sample_data", description=__doc__)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--persons", type=int, default=500)
    p.add_argument("--legal-persons", type=int, default=None)
    p.add_argument("--addresses", type=int, default=None)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--out", type=Path, required=True, help="directory for files and sample_report.json")
    p.add_argument("--database-url", default=None, help="load the tables into this front-end database")
    a = p.parse_args()
    cfg = SampleConfig(
        seed=a.seed,
        persons=a.persons,
        legal_persons=a.legal_persons,
        addresses=a.addresses,
        events=a.events,
        files=a.files,
    )
    started = time.perf_counter()
    frames, report = generate(cfg, a.out)
    print(f"generated in {time.perf_counter() - started:.1f}s under {a.out}")
    for name, rows in report.rows.items():
        print(f"  {name}: {rows}")
    for d in report.defects:
        print(f"  defect {d.kind} ({d.dataset}.{d.field}): {d.count}")
    if a.database_url:
        started = time.perf_counter()
        counts = load_frontdb(a.database_url, frames)
        print(f"loaded {counts} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
