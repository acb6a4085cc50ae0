"""The security_masking DAG under real Airflow, Spark and PostgreSQL on the sample persons:
the shipped policy publishes a masked copy in the sharing zone, the execution log holds
the records controlled per column, the reversible column opens with the key, metering is
once per run across a re-run, the key never appears in the task logs, and a policy whose
columns have neither a rule nor a label stops before the job."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.identifiers import resident_id_check_char
from govops.sample_data import SampleConfig, build_frames
from govops.security import keys, masking
from govops.settlement.workorders import ensure_demo_work_order
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
SOURCE, OUTPUT = "raw/frontdb/public_security/persons", "sharing/public_security/persons"
USAGE = """SELECT service_item_code, unit, quantity, records, data_source FROM govops.usage_event
            WHERE dag_id = 'security_masking' ORDER BY id"""
LOG = """SELECT c.column_name, c.rule, c.reversible, c.key_version, c.records_controlled
           FROM govops.security_masking_column c JOIN govops.security_masking_run r ON r.id = c.masking_run_id
          ORDER BY c.column_name"""


def masking_input(lake: Path, ledger_url: str) -> pd.DataFrame:
    """300 sample persons in the raw zone and the work order: the persons."""
    persons = build_frames(SampleConfig(persons=300)).persons
    (lake / SOURCE).mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(persons, preserve_index=False), lake / SOURCE / "part-0.parquet")
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-DEMO-MASK", "20", on=date.today())
    engine.dispose()
    return persons


def assert_masked(lake: Path, ledger_url: str, persons: pd.DataFrame) -> None:
    """The run's figures: the masked copy, the execution log per column, metered once."""
    n = len(persons)
    out = pd.read_parquet(lake / OUTPUT).sort_values("id").reset_index(drop=True)
    source = persons.sort_values("id").reset_index(drop=True)
    assert len(out) == n and list(out.columns) == list(persons.columns)
    assert (out["name"].dropna().str.len() == source["name"].dropna().str.len()).all()
    assert out["name"].dropna().str[1:].str.fullmatch(r"\*+").all()
    assert out["phone"].str.fullmatch(r"\d{3}\*+\d{4}").all()  # a 10-digit defect keeps 3 and 4 too
    assert set(out["address"]) == {"上海市青浦区"}
    assert (out["birth_date"] == source["birth_date"].dt.year.astype(str)).all()
    assert (out["id_number"] != source["id_number"]).all()
    def valid(ids: pd.Series) -> list[bool]:
        return [v[-1] == resident_id_check_char(v[:17]) for v in ids]

    assert valid(out["id_number"]) == valid(source["id_number"])  # the check character's relation is kept
    assert not all(valid(source["id_number"]))

    controlled = {c: int(source[c].notna().sum()) for c in source.columns}
    assert rows(ledger_url, LOG) == sorted([
        ("address", "generalize", False, None, controlled["address"]),
        ("address_id", "keep", False, None, 0), ("birth_date", "generalize", False, None, controlled["birth_date"]),
        ("gender", "keep", False, None, 0), ("id", "keep", False, None, 0),
        ("id_number", "ff1", True, 1, controlled["id_number"]), ("name", "partial", False, None, controlled["name"]),
        ("phone", "partial", False, None, controlled["phone"]), ("updated_at", "keep", False, None, 0),
    ])  # fmt: skip
    assert rows(ledger_url, USAGE) == [("20", "record", n, n, OUTPUT)]
    engine = create_engine(ledger_url)
    clear = masking.reveal(engine, output=OUTPUT, column="id_number", values=out["id_number"].tolist()[:5],
                           by="tester", reason="test")  # fmt: skip
    engine.dispose()
    assert clear == source["id_number"].tolist()[:5]


def test_masking_dag(isolated_env: Path, ledger_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    lake = isolated_env
    persons = masking_input(lake, ledger_url)
    engine = create_engine(ledger_url)
    when = datetime(2026, 11, 2, tzinfo=UTC)

    first = run_dag("security_masking", logical_date=when)
    assert first.state == "success", first.task_states
    assert_masked(lake, ledger_url, persons)
    n = len(persons)

    again = run_dag("security_masking", logical_date=when)  # a re-run of the same run
    assert again.state == "success", again.task_states
    assert rows(ledger_url, USAGE) == [("20", "record", n, n, OUTPUT)]  # metered once
    assert rows(ledger_url, "SELECT count(*) FROM govops.security_masking_run") == [(1,)]

    with engine.begin() as conn:
        key = keys.key_versions(conn, "public_security_persons")[1]
    captured = capfd.readouterr()  # the task logs and spark-submit's output, as dag.test prints them
    logged = captured.out + captured.err + "".join(p.read_text() for p in (lake / "_manifests").rglob("*.json"))
    assert "id_number=ff1 (policy)" in logged  # the capture holds the task logs
    assert base64.b64encode(key).decode() not in logged and key.hex() not in logged
    marker = json.loads((lake / OUTPUT / "_GOVOPS_COMMIT.json").read_text())
    assert marker["run"]["run_id"] == first.run_id


def test_unlabeled_columns_stop_the_run(isolated_env: Path, ledger_url: str) -> None:
    lake = isolated_env
    extra = build_frames(SampleConfig(persons=60)).persons.assign(note="备注")
    (lake / SOURCE).mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(extra, preserve_index=False), lake / SOURCE / "part-0.parquet")
    ensure_demo_work_order(create_engine(ledger_url), "WO-DEMO-MASK", "20", on=date.today())
    result = run_dag("security_masking", logical_date=datetime(2026, 11, 3, tzinfo=UTC))
    assert result.task_states["prepare"] == "failed"
    assert result.task_states["mask"] != "success"
