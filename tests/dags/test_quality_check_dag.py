"""The quality_check DAG under real Airflow, Spark and PostgreSQL: exact anomaly counts on
sample data with injected defects in batch and stream modes, the check log, the anomaly
list and its exports, the report and the data docs (opened in headless Chromium), the
gate that stops promotion, and metering once per table (batch) or per record (stream), only
once the outputs exist. A rule on a column the data lacks is an error in every output; the
full anomaly list is only in the data owner's zone, the report shows a masked view."""

from __future__ import annotations

import json
import stat
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
from govops.sample_data.generator import DefectCounts
from govops.settlement.workorders import ensure_demo_work_order
from tests.browser import assert_screenshot_not_blank, render
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
SUITE = "public_security_persons.ingestion"
DATASET = "raw/frontdb/public_security/persons"


def _write(lake: Path, frame: pd.DataFrame, name: str, marker: dict | None = None) -> None:
    folder = lake / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / name)
    if marker is not None:
        (folder / "_GOVOPS_COMMIT.json").write_text(json.dumps(marker))


def _expected(defects: DefectCounts) -> dict[str, int]:
    return {
        "expect_column_values_to_not_be_null(name)": defects.missing_name,
        "expect_column_values_to_be_valid_resident_id(id_number)": defects.bad_id_check_digit
        + defects.bad_id_birth_date,
        # each duplicated person is two rows with the same ID number
        "one_person_one_record": 2 * defects.duplicate_person,
        "expect_column_values_to_be_valid_mobile(phone)": defects.bad_phone,
        # month 13 in the ID number: its birth date cannot match the birth_date field
        "expect_column_pair_values_birth_date_to_match_resident_id(birth_date,id_number)": defects.bad_id_birth_date,
    }


def _suites_with_a_missing_column(folder: Path) -> None:
    """The bundled persons suite plus a rule on a column the data does not have."""
    from govops.quality import suites

    folder.mkdir()
    document = json.loads((suites.SUITES_DIR / f"{SUITE}.json").read_text(encoding="utf-8"))
    document["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"},
                                     "meta": {"dimension": "completeness", "rule": "email_given"},
                                     "severity": "warning"})  # fmt: skip
    (folder / f"{SUITE}.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    (folder / "code_tables").symlink_to(suites.SUITES_DIR / "code_tables")


def _text_of(folder: Path) -> str:
    """Every file's text under ``folder``, spreadsheets' cells included."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".xlsx":
            found += [str(v) for row in openpyxl.load_workbook(path).active.iter_rows(values_only=True) for v in row]
        else:
            found.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(found)


USAGE = "SELECT service_item_code, unit, quantity, records FROM govops.usage_event WHERE dag_id = 'quality_check'"
RULE_ERROR = "no column(s) email in the data"


def defective_batch(lake: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, pd.DataFrame]:
    """800 sample persons with the injected defects in the raw zone, the persons suite with a
    rule on a column the data lacks, and the work order: the run's conf and the persons."""
    monkeypatch.setenv("GOVOPS_QUALITY_SUITES_DIR", str(lake.parent / "suites"))
    _suites_with_a_missing_column(lake.parent / "suites")
    persons = build_frames(SampleConfig(seed=7, persons=800)).persons
    _write(lake, persons, "part-0.parquet", {"run": "extract-1"})
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-Q-BATCH", "07", on=date(2026, 6, 1), unit="table")
    engine.dispose()
    return {"suite": SUITE, "work_order_id": "WO-Q-BATCH", "mode": "batch"}, persons


def assert_checked(lake: Path, ledger_url: str, persons: pd.DataFrame) -> None:
    """The check's figures: every injected defect counted in the check log and listed in the
    owner's anomaly list, the rule on the missing column an error, the check failed, metered
    one table."""
    logged = dict(rows(ledger_url, """SELECT r.rule, r.unexpected FROM govops.quality_check_result r
                                      JOIN govops.quality_check_run c ON c.id = r.check_run_id"""))
    expected = _expected(SampleConfig().defects)
    assert {rule: n for rule, n in logged.items() if n} == expected
    [full_csv] = (lake / "owner" / "public_security" / "quality" / SUITE).glob("exports/*/anomalies.csv")
    listed = pd.read_csv(full_csv, encoding="utf-8-sig", dtype={"record.id_number": str, "value": str})
    assert listed.groupby("rule").size().to_dict() == {**expected, "email_given": 1}
    assert len(logged) == 15
    assert rows(ledger_url, "SELECT rule, success, error FROM govops.quality_check_result WHERE error IS NOT NULL"
                ) == [("email_given", False, RULE_ERROR)]  # fmt: skip
    assert rows(ledger_url, "SELECT rows_checked, status FROM govops.quality_check_run") == [(len(persons), "fail")]
    assert rows(ledger_url, USAGE) == [("07", "table", 1, len(persons))]


def test_batch_check_gate_report_and_metering(isolated_env: Path, ledger_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")
    conf, persons = defective_batch(isolated_env, ledger_url, monkeypatch)
    when = datetime(2026, 8, 1, tzinfo=UTC)

    # The report cannot be written (a file where its folder goes): the check ran, but with no
    # report there is no check log and no usage.
    blocker = isolated_env / "reports" / "quality" / SUITE
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    failed = run_dag("quality_check", conf=conf, logical_date=when)
    assert failed.task_states["check"] == "success" and failed.task_states["publish"] == "failed"
    assert rows(ledger_url, USAGE) == [] and rows(ledger_url, "SELECT 1 FROM govops.quality_check_run") == []
    blocker.unlink()

    result = run_dag("quality_check", conf=conf, logical_date=when)  # the same run again, as a clear would
    # Invalid ID numbers are a severity-fail rule: the gate stops, nothing is promoted.
    assert result.task_states["check"] == "success" and result.task_states["publish"] == "success"
    assert result.task_states["gate"] == "failed" and result.task_states["promote"] == "upstream_failed"
    assert not (isolated_env / "clean").exists()

    # The rule on a missing column: failed, with its error, in the check log.
    assert_checked(isolated_env, ledger_url, persons)
    expected, error = _expected(SampleConfig().defects), RULE_ERROR
    [(anomaly_rows, report_uri, docs_uri)] = rows(
        ledger_url, "SELECT anomaly_rows, report_uri, data_docs_uri FROM govops.quality_check_run"
    )

    # The full anomaly list: one row per failing record and rule, and one for the rule that
    # could not run, in the data owner's zone only, readable by its owner only.
    owner = isolated_env / "owner" / "public_security" / "quality" / SUITE
    [full_csv] = owner.glob("exports/*/anomalies.csv")
    listed = pd.read_csv(full_csv, encoding="utf-8-sig", dtype={"record.id_number": str, "value": str})
    assert listed.loc[listed["rule"] == "email_given", "reason"].tolist() == [f"rule error: {error}"]
    assert {"record.id", "record.name", "record.id_number", "dimension", "severity", "reason"} <= set(listed.columns)
    assert anomaly_rows == len({r["record.id"] for _, r in listed.iterrows() if r["rule"] != "email_given"})
    assert all(stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600) for p in owner.rglob("*"))
    # The report's exports: the same rows, ID and phone numbers masked.
    folder = Path(report_uri.removeprefix("file://")).parent
    masked = pd.read_csv(folder / "anomalies.csv", encoding="utf-8-sig", dtype={"record.id_number": str})
    assert masked.groupby("rule").size().to_dict() == {**expected, "email_given": 1}
    sheet = list(openpyxl.load_workbook(folder / "anomalies.xlsx").active.iter_rows(values_only=True))
    assert len(sheet) == 1 + sum(expected.values()) + 1
    sentinels = [v for v in listed["record.id_number"].dropna() if len(v) == 18][:20]
    phones = [v for v in listed.loc[listed["column"] == "phone", "value"].dropna()][:5]
    assert sentinels and phones and sentinels[0] in _text_of(owner)
    shown = _text_of(folder)
    assert not [v for v in sentinels + phones if v in shown]
    assert all(v[:6] + "********" + v[-4:] in shown for v in sentinels)

    # The report and the data docs, in a browser.
    page = render(report_uri)
    assert "public_security_persons.ingestion" in page.text and "不通过" in page.text
    assert "1 rule(s) could not run" in page.text and f"错误 error: {error}" in page.text
    assert [i.alt for i in page.images] == ["score per dimension", "trend", "top failing rules"]
    assert all(i.natural_width and i.natural_width > 300 for i in page.images)
    assert_screenshot_not_blank(page.screenshot)
    docs = render(docs_uri)
    assert "values must be valid resident ID numbers (GB 11643)" in docs.text  # the rule library's renderer
    assert "Failed" in docs.text or "failed" in docs.text
    assert error in docs.text  # the rule that could not run, as GX renders an error
    assert_screenshot_not_blank(docs.screenshot)
    assert len(rows(ledger_url, "SELECT 1 FROM govops.quality_check_run")) == 1


def test_clean_batch_is_promoted(isolated_env: Path, ledger_url: str) -> None:
    clean = DefectCounts(**{k: 0 for k in DefectCounts.__dataclass_fields__})
    frames = build_frames(SampleConfig(seed=8, persons=300, defects=clean))
    _write(isolated_env, frames.persons, "part-0.parquet", {"run": "extract-2"})
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-Q-BATCH", "07", on=date(2026, 6, 1), unit="table")
    engine.dispose()
    result = run_dag("quality_check", conf={"suite": SUITE, "work_order_id": "WO-Q-BATCH"},
                     logical_date=datetime(2026, 8, 2, tzinfo=UTC))  # fmt: skip
    assert result.state == "success", result.task_states
    promoted = isolated_env / "clean/frontdb/public_security/persons"
    assert pq.read_table(promoted).num_rows == 300
    assert json.loads((promoted / "_GOVOPS_COMMIT.json").read_text()) == {"run": "extract-2"}


def test_stream_checks_meter_each_record_once(isolated_env: Path, ledger_url: str) -> None:
    frames = build_frames(SampleConfig(seed=9, persons=600))
    first, second = frames.persons.iloc[:400], frames.persons.iloc[400:]  # 600 persons and 5 duplicates
    _write(isolated_env, first, "part-0.parquet")
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-Q-STREAM", "07", on=date(2026, 6, 1), unit="record")
    engine.dispose()
    conf = {"suite": SUITE, "work_order_id": "WO-Q-STREAM", "mode": "stream"}
    usage = """SELECT run_id, unit, quantity FROM govops.usage_event WHERE dag_id = 'quality_check'
               AND work_order_id = 'WO-Q-STREAM' ORDER BY quantity DESC"""
    one = run_dag("quality_check", conf=conf, logical_date=datetime(2026, 9, 1, tzinfo=UTC))
    assert one.task_states["publish"] == "success", one.task_states
    _write(isolated_env, second, "part-1.parquet")
    two = run_dag("quality_check", conf=conf, logical_date=datetime(2026, 9, 2, tzinfo=UTC))
    assert two.task_states["publish"] == "success", two.task_states
    assert [(u, q) for _, u, q in rows(ledger_url, usage)] == [("record", 400), ("record", 205)]
    # The two runs together found every injected defect, once.
    found = rows(ledger_url, """SELECT r.rule, sum(r.unexpected) FROM govops.quality_check_result r
                                JOIN govops.quality_check_run c ON c.id = r.check_run_id WHERE c.mode = 'stream'
                                  AND r.rule NOT IN ('one_person_one_record', 'expect_column_values_to_be_unique(id)')
                                GROUP BY r.rule HAVING sum(r.unexpected) > 0""")
    expected = _expected(SampleConfig().defects)
    del expected["one_person_one_record"]  # uniqueness is judged per micro-batch in stream mode
    assert {rule: int(n) for rule, n in found} == expected
    # Nothing new arrived: the next run checks nothing, meters nothing and passes.
    idle = run_dag("quality_check", conf=conf, logical_date=datetime(2026, 9, 3, tzinfo=UTC))
    assert idle.state == "success", idle.task_states
    # A re-run of the first run reports its own batch again and meters nothing new.
    again = run_dag("quality_check", conf=conf, logical_date=datetime(2026, 9, 1, tzinfo=UTC))
    assert again.task_states["publish"] == "success"
    assert [(u, q) for _, u, q in rows(ledger_url, usage)] == [("record", 400), ("record", 205)]
