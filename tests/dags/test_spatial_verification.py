"""The spatial_verification DAG under real Airflow, Spark and PostgreSQL: metered once per
point, corrections proposed, applied into the curated dataset and reverted, and the report
and field task list written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.sample_data import SampleConfig, build_frames
from govops.settlement.workorders import ensure_demo_work_order
from govops.spatial import sample
from govops.spatial.__main__ import main as cli
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


USAGE = "SELECT service_item_code, unit, quantity FROM govops.usage_event WHERE dag_id = 'spatial_verification'"


def verification_input(lake: Path, ledger_url: str) -> tuple[pd.DataFrame, dict, dict[str, list[str]]]:
    """800 new points (3 of each defect) and their reference library in the lake, and the
    work order: the records, the run's conf and the ids of the records per defect."""
    library = sample.clean_library(build_frames(SampleConfig(seed=4, persons=3000)).addresses)
    records, expected = sample.new_records(library, 800, seed=6, per_defect=3)
    for name, frame in (("ref", library), ("new_points", records)):
        (lake / "raw" / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), lake / "raw" / name / "p.parquet")
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-SPATIAL", "10", on=date(2026, 6, 1))
    engine.dispose()
    conf = {"work_order_id": "WO-SPATIAL", "input": "raw/new_points", "reference": "raw/ref", "dataset": "new_points",
            "district": "青浦区"}  # fmt: skip
    return records, conf, expected


def assert_verified(lake: Path, ledger_url: str, expected: dict[str, list[str]]) -> None:
    """The run's figures: metered per point, the swapped points proposed, the report's counts."""
    assert rows(ledger_url, USAGE) == [("10", "coordinate_point", 800)]
    proposals = rows(ledger_url, "SELECT record_id, state, rule FROM govops.spatial_correction ORDER BY record_id")
    assert proposals == [(r, "proposed", "SWAPPED") for r in expected["SWAPPED"]]
    folder = next((lake / "reports/spatial/new_points").iterdir())
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert '<td class=n id=verified>770</td>' in page and '<td class=n id=corrected>3</td>' in page
    assert '<b id=system>WGS-84</b>' in page and page.count("data:image/png;base64,") == 2


def test_verification_run_corrections_and_report(isolated_env: Path, ledger_url: str) -> None:
    records, conf, expected = verification_input(isolated_env, ledger_url)
    when = datetime(2026, 8, 1, tzinfo=UTC)
    result = run_dag("spatial_verification", conf=conf, logical_date=when)
    assert result.state == "success", result.task_states
    assert_verified(isolated_env, ledger_url, expected)
    folder = next((isolated_env / "reports/spatial/new_points").iterdir())
    tasks = list(openpyxl.load_workbook(folder / "field_tasks.xlsx").active.iter_rows(values_only=True))
    assert len(tasks) == 1 + 27 and tasks[0][-2:] == ("problem", "map_link")
    missing = [t for t in tasks[1:] if t[0] in expected["MISSING"]]
    assert len(missing) == 3 and all(t[-2] == "坐标缺失" and t[-1] is None for t in missing)
    far = next(t for t in tasks[1:] if t[0] in expected["FAR_FROM_ADDRESS"])
    assert far[-1].startswith("https://uri.amap.com/marker?position=121.") or far[-1].startswith(
        "https://uri.amap.com/marker?position=120.")

    # Re-running the run meters nothing twice and proposes nothing twice.
    again = run_dag("spatial_verification", conf=conf, logical_date=when)
    assert again.state == "success" and rows(ledger_url, USAGE) == [("10", "coordinate_point", 800)]
    assert len(rows(ledger_url, "SELECT 1 FROM govops.spatial_correction")) == 3

    # Applied corrections reach the curated dataset; reverting puts the recorded values back.
    swapped = expected["SWAPPED"][0]
    source = records.set_index("id").loc[swapped]
    assert cli(["apply", "new_points", result.run_id, "--approver", "张审核"]) == 0
    curated = {r["record_id"]: r for r in pq.read_table(isolated_env / "curated/new_points").to_pylist()}
    assert (curated[swapped]["lon"], curated[swapped]["lat"]) == (float(source["lat"]), float(source["lon"]))
    assert curated[swapped]["correction_id"] is not None and len(curated) == 800
    assert cli(["revert", "new_points", result.run_id, "--by", "张审核", "--record", swapped]) == 0
    curated = {r["record_id"]: r for r in pq.read_table(isolated_env / "curated/new_points").to_pylist()}
    assert (curated[swapped]["lon"], curated[swapped]["lat"]) == (float(source["lon"]), float(source["lat"]))
    states = rows(ledger_url, "SELECT state, approver, reverted_by FROM govops.spatial_correction WHERE record_id = :r",
                  r=swapped)  # fmt: skip
    assert states == [("reverted", "张审核", "张审核")]
    assert cli(["revert", "new_points", result.run_id, "--by", "张审核", "--record", swapped]) == 2  # nothing left
