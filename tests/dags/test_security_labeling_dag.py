"""The security_labeling DAG under real Airflow, Spark and PostgreSQL: the sample persons
labeled column by column, item 06 metered once per run (a re-run meters nothing more and
writes no second log row or label version), the report, and a refused work order."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.sample_data import SampleConfig, build_frames
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark.manifest import _safe
from tests.browser import assert_screenshot_not_blank, render
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
# A dataset of its own: other tests of the session label and assess the sample persons too.
DATASET = "raw/labeling_test/public_security/persons"
USAGE = """SELECT service_item_code, unit, quantity, records, data_source FROM govops.usage_event
           WHERE dag_id = 'security_labeling' AND data_source = :d ORDER BY id"""


def _persons(lake: Path) -> int:
    frames = build_frames(SampleConfig(seed=7, persons=300))
    folder = lake / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frames.persons, preserve_index=False), folder / "part-0.parquet")
    (folder / "_GOVOPS_COMMIT.json").write_text(json.dumps({"run": "extract-1"}))
    return len(frames.persons)


def test_labeling_dag_labels_meters_once_and_reports(isolated_env: Path, ledger_url: str) -> None:
    n = _persons(isolated_env)
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-LABEL", "06", on=date(2026, 6, 1), unit="record")
    engine.dispose()
    conf = {"work_order_id": "WO-T-LABEL", "dataset": DATASET}
    when = datetime(2026, 8, 3, tzinfo=UTC)

    result = run_dag("security_labeling", conf=conf, logical_date=when)
    assert result.state == "success", result.task_states
    assert rows(ledger_url, USAGE, d=DATASET) == [("06", "record", n, n, DATASET)]
    labels = dict(rows(ledger_url, """SELECT column_name, coalesce(data_type, '-') || ' ' || category || ' ' || grade
                                      || ' ' || level FROM govops.security_label WHERE dataset = :d""", d=DATASET))
    assert labels == {
        "id": "- business general L2", "name": "person_name identity general L3",
        "gender": "- business general L2", "id_number": "resident_id identity important L4",
        "birth_date": "birth_date identity general L3", "phone": "mobile contact general L3",
        "address_id": "- business general L2", "address": "address location general L3",
        "updated_at": "- business general L2",
    }  # fmt: skip
    log = """SELECT run_id, rows_labeled, columns_labeled, sensitive_columns, work_order_id
             FROM govops.security_labeling_run WHERE dag_id = 'security_labeling' AND dataset = :d"""
    [(run_id, labeled, columns, sensitive, work_order)] = rows(ledger_url, log, d=DATASET)
    assert (labeled, columns, sensitive, work_order) == (n, 9, 5, "WO-T-LABEL")

    report = isolated_env / "reports/security/labeling" / DATASET / _safe(run_id)
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "数据标注报告" in page and "resident_id" in page and "重要数据 important" in page
    assert f"<b id=rows>{n:,}</b>" in page and "<b id=sensitive>5</b>" in page and "data:image/png;base64," in page
    shown = render((report / "report.html").as_uri())  # as a person sees it
    assert "数据标注报告" in shown.text and [i.alt for i in shown.images] == ["columns per grade"]
    assert all(i.natural_width and i.natural_width > 300 for i in shown.images)
    assert_screenshot_not_blank(shown.screenshot)
    csv_lines = (report / "labels.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(csv_lines) == 10 and csv_lines[0].startswith("column,data_type,category")

    # A re-run of the same run: the ledger, the log and the labels stay as they were.
    again = run_dag("security_labeling", conf=conf, logical_date=when)
    assert again.state == "success", again.task_states
    assert rows(ledger_url, USAGE, d=DATASET) == [("06", "record", n, n, DATASET)]
    assert len(rows(ledger_url, log, d=DATASET)) == 1
    assert len(rows(ledger_url, "SELECT 1 FROM govops.security_label WHERE dataset = :d", d=DATASET)) == 9


def test_labeling_dag_refuses_a_work_order_for_another_item(
    isolated_env: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")  # the refusal is retried: at once, not in minutes
    _persons(isolated_env)
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-NOT-LABEL", "20", on=date(2026, 6, 1), unit="record")
    engine.dispose()
    result = run_dag("security_labeling", conf={"work_order_id": "WO-T-NOT-LABEL", "dataset": DATASET},
                     logical_date=datetime(2026, 8, 4, tzinfo=UTC))  # fmt: skip
    assert result.task_states["prepare"] == "failed" and result.task_states["label"] == "upstream_failed"
    final = "SELECT error FROM govops.task_failure WHERE run_id = :r AND task_id = 'prepare' AND final"
    [(error,)] = rows(ledger_url, final, r=result.run_id)
    assert "work order WO-T-NOT-LABEL is for service item 20, not 06" in error
    assert rows(ledger_url, "SELECT 1 FROM govops.usage_event WHERE work_order_id = 'WO-T-NOT-LABEL'") == []
