"""The security_assessment DAG under real Airflow, Spark and PostgreSQL: the findings of a
small lake with the demo's sample grants, the run row, the report in the lake, metering
once per run (also when a re-run finds the lake changed), and a refused work order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

from govops.dag_runs import run_dag
from govops.identifiers import resident_id_check_char
from govops.security import assessment as A
from govops.settlement.workorders import ensure_demo_work_order
from tests.browser import assert_screenshot_not_blank, render
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

PERSONS = "raw/frontdb/public_security/persons"
ADDRESSES = "raw/frontdb/planning_resources/addresses"
SHARED = "sharing/public_security/persons"
USAGE = """SELECT service_item_code, unit, quantity, records, data_source, work_order_id FROM govops.usage_event
            WHERE dag_id = 'security_assessment' ORDER BY id"""


@pytest.fixture
def env(fresh_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, str, Path]]:
    """A database of its own (findings are global to it) and a temporary lake."""
    url = fresh_ledger.url.render_as_string(hide_password=False)
    lake = tmp_path / "lake"
    lake.mkdir()
    monkeypatch.setenv("GOVOPS_DATABASE_URL", url)
    monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_DB", url)
    monkeypatch.setenv("GOVOPS_LAKE_ROOT", lake.as_uri())
    yield fresh_ledger, url, lake


def ids(n: int) -> list[str]:
    bodies = [f"310118{date(1970, 1, 1) + timedelta(days=91 * i):%Y%m%d}{i:03d}" for i in range(n)]
    return [b + resident_id_check_char(b) for b in bodies]


def write(lake: Path, dataset: str, frame: pd.DataFrame) -> None:
    folder = lake / dataset
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-0.parquet")
    (folder / "_GOVOPS_COMMIT.json").write_text(json.dumps({"run": {"dag_id": "x", "run_id": "y"}}))


def test_assessment_dag_findings_report_and_metering_once(env: tuple[Engine, str, Path]) -> None:
    engine, url, lake = env
    write(lake, PERSONS, pd.DataFrame({"id": range(120), "id_number": ids(120)}))
    write(lake, ADDRESSES, pd.DataFrame({"id": range(30), "district": ["青浦区"] * 30}))
    write(lake, SHARED, pd.DataFrame({"id": range(50), "id_number": ids(50)}))  # clear, unlabeled
    with engine.begin() as conn:
        for dataset, column, grade, level in ((PERSONS, "id", "general", "L1"),
                                              (PERSONS, "id_number", "important", "L4"),
                                              (ADDRESSES, "id", "general", "L1"),
                                              (ADDRESSES, "district", "general", "L2")):  # fmt: skip
            conn.execute(text(
                """INSERT INTO govops.security_label (dataset, column_name, version, category, grade, level, source)
                   VALUES (:d, :c, 1, 'identity', :g, :l, 'confirmed')"""),
                {"d": dataset, "c": column, "g": grade, "l": level})  # fmt: skip
    A.ensure_sample_grants(engine)
    ensure_demo_work_order(engine, "WO-ASSESS", "19", on=date(2026, 6, 1))
    conf = {"work_order_id": "WO-ASSESS", "stale_days": 90}
    when = datetime(2026, 8, 1, tzinfo=UTC)

    result = run_dag("security_assessment", conf=conf, logical_date=when)
    assert result.state == "success", result.task_states
    assert rows(url, USAGE) == [("19", "record", 200, 200, "lake", "WO-ASSESS")]
    found = {(f["kind"], f["dataset"], f["subject"]): (f["severity"], f["status"]) for f in A.findings(engine)}
    assert found == {
        ("UNMASKED_SENSITIVE", SHARED, "id_number"): ("high", "open"),  # detected resident_id: important
        ("UNLABELED_DATASET", SHARED, ""): ("medium", "open"),
        ("STALE_ACCESS", ADDRESSES, "li.qiang:read"): ("medium", "open"),
        ("ACCESS_TO_MISSING_DATASET", "sharing/retired/persons_2024", "zhao.min:read"): ("medium", "open"),
    }
    run_row = "SELECT id, run_id, datasets, rows_assessed, findings_open, report_uri, work_order_id " \
              "FROM govops.security_assessment_run"  # fmt: skip
    [(run, run_id, datasets, assessed, open_, report_uri, wo)] = rows(url, run_row)
    assert (run_id, datasets, assessed, open_, wo) == (result.run_id, 3, 200, 4, "WO-ASSESS")
    report = Path(report_uri.removeprefix("file://"))
    assert report.exists() and report.parent.parent == lake / "reports/security/assessment"
    assert (report.parent / "issues.csv").exists() and (report.parent / "issues.xlsx").exists()
    shown = render(report_uri)  # as a person sees it
    assert "STALE_ACCESS" in shown.text and [i.alt for i in shown.images] == [
        "storage by zone and grade", "findings by kind and severity", "finding status over runs"]
    assert all(i.natural_width and i.natural_width > 300 for i in shown.images)
    assert_screenshot_not_blank(shown.screenshot)

    # A re-run of the same run: the same run row and findings, metered once.
    again = run_dag("security_assessment", conf=conf, logical_date=when)
    assert again.state == "success" and again.run_id == result.run_id, again.task_states
    assert rows(url, USAGE) == [("19", "record", 200, 200, "lake", "WO-ASSESS")]
    assert rows(url, "SELECT count(*) FROM govops.security_assessment_run") == [(1,)]
    assert rows(url, "SELECT count(*) FROM govops.security_finding") == [(4,)]

    # The lake changed before another re-run: the assessment shows today's lake, the run is
    # still billed what it was billed first (no conflict, no second event).
    write(lake, ADDRESSES, pd.DataFrame({"id": range(80), "district": ["青浦区"] * 80}))
    third = run_dag("security_assessment", conf=conf, logical_date=when)
    assert third.state == "success", third.task_states
    assert rows(url, USAGE) == [("19", "record", 200, 200, "lake", "WO-ASSESS")]
    assert rows(url, "SELECT id, rows_assessed FROM govops.security_assessment_run") == [(run, 250)]

    # A later run is another run: metered on its own.
    later = run_dag("security_assessment", conf={**conf, "zones": ["sharing"]}, logical_date=when + timedelta(days=1))
    assert later.state == "success", later.task_states
    assert rows(url, USAGE)[1:] == [("19", "record", 50, 50, "lake", "WO-ASSESS")]


def test_refused_work_order_scans_nothing(env: tuple[Engine, str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, url, _ = env
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    result = run_dag("security_assessment", conf={"work_order_id": "WO-NOPE"},
                     logical_date=datetime(2026, 8, 3, tzinfo=UTC))  # fmt: skip
    assert result.state == "failed" and result.task_states["prepare"] == "failed"
    assert result.task_states["scan"] == "upstream_failed"
    # A refusal fails at once: one attempt, the last, no retries.
    final = "SELECT error FROM govops.task_failure WHERE run_id = :r AND task_id = 'prepare' AND final AND try_number=1"
    every = "SELECT count(*) FROM govops.task_failure WHERE run_id = :r AND task_id = 'prepare'"
    errors = rows(url, final, r=result.run_id)
    assert rows(url, every, r=result.run_id) == [(1,)]
    assert len(errors) == 1 and "WORK_ORDER_REFUSED: work order 'WO-NOPE' is unknown" in errors[0][0]
    assert rows(url, USAGE) == [] and rows(url, "SELECT count(*) FROM govops.security_assessment_run") == [(0,)]
