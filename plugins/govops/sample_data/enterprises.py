"""The market regulation bureau's register of the sample district's enterprises and other
departments' records of them, for the fusion and mining models (items 16, 17):
deterministic from a seed, keyed by the legal persons' ``uscc``.

The register (``register``) is the legal persons given (those a pipeline loaded into the
lake), then, when they are fewer than ``MIN_ENTERPRISES`` (800), the enterprises of the
generated district register (``SampleConfig(seed=7)``, 2/5 of its persons) not among them,
up to 800: the front-end database's legal-person table is an extract of a few hundred, and
a model tested on 30 % of 200 enterprises holds out a handful of penalized ones, too few for
its metrics to mean anything (see the README). The departments' records below cover every
enterprise of the register.

Two years of months, November 2024 to October 2026; "the last 12 months" are November 2025
to October 2026. A planted share of enterprises (``risky``) are in trouble in the last 12
months: their declared tax falls to 20-60 % of the year before (80 % of them), their insured
staff to 30-70 % (70 %), and an inspection fails with probability 0.5 (others: 0.05). The
outcome the models are tested against is an administrative penalty in 2026: for 80 % of the
risky enterprises and 3 % of the others. Five enterprises have no social insurance records.

- ``raw/frontdb/market_regulation/enterprise_register`` (区市场监管局): uscc, name, source
  (``lake``: a legal person the pipeline loaded; ``register``: added from the generated register)
- ``raw/frontdb/market_regulation/inspections`` (区市场监管局): inspection_id, uscc,
  inspected_on, result (合格 / 不合格)
- ``raw/frontdb/taxation/monthly_declarations`` (区税务局): uscc, month (yyyy-MM), tax_amount
  (decimal(14,2), 元)
- ``raw/frontdb/human_resources/social_insurance`` (区人社局): uscc, month, insured_staff
- ``raw/frontdb/market_regulation/penalties`` (区市场监管局): penalty_id, uscc, decided_on,
  reason, amount (decimal(12,2))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

LEGAL_PERSONS = "raw/frontdb/market_regulation/legal_persons_incremental"  # what frontdb_legal_persons publishes
REGISTER = "raw/frontdb/market_regulation/enterprise_register"
INSPECTIONS = "raw/frontdb/market_regulation/inspections"
TAX = "raw/frontdb/taxation/monthly_declarations"
INSURANCE = "raw/frontdb/human_resources/social_insurance"
PENALTIES = "raw/frontdb/market_regulation/penalties"
MONTHS = [f"{2024 + (10 + m) // 12}-{(10 + m) % 12 + 1:02d}" for m in range(24)]  # 2024-11 .. 2026-10
LAST_YEAR_FROM = date(2025, 11, 1)
RISKY_SHARE = 0.12
MIN_ENTERPRISES = 800
_REASONS = ("虚假宣传", "未按规定公示年报", "产品质量不合格", "无照经营", "价格违法")


@dataclass(frozen=True)
class EnterpriseSample:
    inspections: pd.DataFrame
    tax: pd.DataFrame
    insurance: pd.DataFrame
    penalties: pd.DataFrame
    risky: frozenset[str]  # the planted enterprises in trouble (uscc)


def build(legal_persons: pd.DataFrame, seed: int = 16) -> EnterpriseSample:
    import pandas as pd

    rng = np.random.default_rng(seed)
    uscc = legal_persons["uscc"].to_numpy(dtype=object)
    n = len(uscc)
    risky = rng.random(n) < RISKY_SHARE
    tax_drop = risky & (rng.random(n) < 0.8)
    staff_drop = risky & (rng.random(n) < 0.7)

    base_tax = np.round(rng.lognormal(9.5, 0.8, n), 2)
    tax_factor = np.where(tax_drop, rng.uniform(0.2, 0.6, n), rng.uniform(0.9, 1.15, n))
    base_staff = rng.integers(3, 120, n)
    staff_factor = np.where(staff_drop, rng.uniform(0.3, 0.7, n), rng.uniform(0.9, 1.1, n))
    tax_rows, staff_rows = [], []
    no_insurance = set(rng.choice(n, 5, replace=False).tolist())
    for m, month in enumerate(MONTHS):
        last = m >= 12
        noise = rng.uniform(0.9, 1.1, n)
        amounts = np.round(base_tax * noise * (tax_factor if last else 1.0), 2)
        staff = np.maximum(0, np.round(base_staff * rng.uniform(0.95, 1.05, n) * (staff_factor if last else 1.0)))
        for i in range(n):
            tax_rows.append((uscc[i], month, Decimal(f"{amounts[i]:.2f}")))
            if i not in no_insurance:
                staff_rows.append((uscc[i], month, int(staff[i])))

    inspections = []
    for i in range(n):
        for k in range(int(rng.poisson(1.2))):
            day = LAST_YEAR_FROM - timedelta(days=365) + timedelta(days=int(rng.integers(0, 730)))
            fail = rng.random() < (0.5 if risky[i] and day >= LAST_YEAR_FROM else 0.05)
            inspections.append((f"JC{i:05d}{k}", uscc[i], day, "不合格" if fail else "合格"))

    penalties = []
    punished = np.where(risky, rng.random(n) < 0.8, rng.random(n) < 0.03)
    for i in np.flatnonzero(punished):
        day = date(2026, 1, 1) + timedelta(days=int(rng.integers(0, 300)))
        amount = Decimal(int(rng.integers(1, 100)) * 1000).quantize(Decimal("0.01"))
        penalties.append((f"CF{i:05d}", uscc[i], day, _REASONS[int(rng.integers(len(_REASONS)))], amount))

    return EnterpriseSample(
        inspections=pd.DataFrame(inspections, columns=["inspection_id", "uscc", "inspected_on", "result"]),
        tax=pd.DataFrame(tax_rows, columns=["uscc", "month", "tax_amount"]),
        insurance=pd.DataFrame(staff_rows, columns=["uscc", "month", "insured_staff"]),
        penalties=pd.DataFrame(penalties, columns=["penalty_id", "uscc", "decided_on", "reason", "amount"]),
        risky=frozenset(uscc[risky].tolist()),
    )


def register(legal_persons: pd.DataFrame, minimum: int = MIN_ENTERPRISES) -> pd.DataFrame:
    """The register: ``legal_persons`` (uscc, name) in their order, then enough enterprises of
    the generated district register (seed 7) not among them to make ``minimum``."""
    import pandas as pd

    from govops.sample_data import SampleConfig, build_frames

    given = legal_persons[["uscc", "name"]].drop_duplicates("uscc").assign(source="lake")
    missing = minimum - len(given)
    if missing <= 0:
        return given.reset_index(drop=True)
    generated = build_frames(SampleConfig(seed=7, persons=max(1, -(-minimum * 5 // 2)))).legal_persons
    extra = generated.loc[~generated["uscc"].isin(given["uscc"]), ["uscc", "name"]].head(missing)
    return pd.concat([given, extra.assign(source="register")], ignore_index=True)


def _write(lake_root: str, dataset: str, frame: pd.DataFrame, decimals: dict[str, tuple[int, int]]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    from govops.spark.lake import COMMIT_MARKER

    table = pa.Table.from_pandas(frame, preserve_index=False)
    for n, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":  # Spark reads no nanosecond Parquet timestamps
            table = table.set_column(n, f.name, table[f.name].cast(pa.timestamp("us", f.type.tz)))
    for column, (precision, scale) in decimals.items():
        table = table.set_column(table.schema.get_field_index(column), column,
                                 table[column].cast(pa.decimal128(precision, scale)))  # fmt: skip
    filesystem, root = pafs.FileSystem.from_uri(f"{lake_root.rstrip('/')}/{dataset}")
    filesystem.delete_dir_contents(root, missing_dir_ok=True)
    filesystem.create_dir(root, recursive=True)
    pq.write_table(table, f"{root}/part-00000.parquet", filesystem=filesystem)
    marker = {"run": {"dag_id": "sample_data", "run_id": "enterprise_sample"}, "rows": table.num_rows}
    with filesystem.open_output_stream(f"{root}/{COMMIT_MARKER}") as out:
        out.write(json.dumps(marker).encode())
    return table.num_rows


def write_enterprise_sample(lake_root: str, legal_persons: pd.DataFrame, *, seed: int = 16,
                            with_legal_persons: bool = False,
                            minimum: int = MIN_ENTERPRISES) -> dict[str, int]:  # fmt: skip
    """Write the register and the four departments' datasets of its enterprises (and the legal
    persons, where no pipeline loads them) to the lake as Parquet with a commit marker; rows
    per dataset."""
    enterprises = register(legal_persons, minimum)
    sample = build(enterprises, seed)
    written = {
        REGISTER: _write(lake_root, REGISTER, enterprises, {}),
        INSPECTIONS: _write(lake_root, INSPECTIONS, sample.inspections, {}),
        TAX: _write(lake_root, TAX, sample.tax, {"tax_amount": (14, 2)}),
        INSURANCE: _write(lake_root, INSURANCE, sample.insurance, {}),
        PENALTIES: _write(lake_root, PENALTIES, sample.penalties, {"amount": (12, 2)}),
    }
    if with_legal_persons:
        written[LEGAL_PERSONS] = _write(lake_root, LEGAL_PERSONS, legal_persons, {})
    return written


def lake_legal_persons(lake_root: str) -> pd.DataFrame | None:
    """The legal persons a pipeline published to the lake (the latest row per id), or None."""
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(f"{lake_root.rstrip('/')}/{LEGAL_PERSONS}")
    if filesystem.get_file_info(root).type == pafs.FileType.NotFound:
        return None
    dataset = ds.dataset(root, filesystem=filesystem, format="parquet", partitioning="hive")
    frame = dataset.to_table(columns=["id", "uscc", "name", "updated_at"]).to_pandas()
    latest = frame.sort_values("updated_at").drop_duplicates("id", keep="last").sort_values("id")
    return latest.reset_index(drop=True)


def main() -> None:
    """python -m govops.sample_data.enterprises: the departments' records of the lake's
    enterprises (those frontdb_legal_persons loaded), or of a generated register."""
    import argparse

    from govops import settings
    from govops.sample_data import SampleConfig, build_frames

    p = argparse.ArgumentParser(prog="python -m govops.sample_data.enterprises", description=main.__doc__)
    p.add_argument("--lake-root", default=None, help="default: GOVOPS_LAKE_ROOT")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--persons", type=int, default=2000, help="without legal persons in the lake: a register of "
                   "persons x 2/5 enterprises (SampleConfig seed 7) is generated and written too")  # fmt: skip
    p.add_argument("--enterprises", type=int, default=MIN_ENTERPRISES,
                   help="the register's least size, topped up from the generated register")  # fmt: skip
    a = p.parse_args()
    lake = a.lake_root or settings.lake_root()
    legal = lake_legal_persons(lake)
    generated = legal is None
    if legal is None:
        legal = build_frames(SampleConfig(seed=7, persons=a.persons)).legal_persons
    written = write_enterprise_sample(lake, legal, seed=a.seed, with_legal_persons=generated, minimum=a.enterprises)
    for dataset, rows in written.items():
        print(f"{dataset}: {rows} rows")
    where = "generated" if generated else "from the lake"
    print(f"register: {written[REGISTER]} enterprises, {len(legal)} of them {where}")


if __name__ == "__main__":
    main()
