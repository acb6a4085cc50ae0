"""The settlement DAG under real Airflow: a draft statement and its three exports."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.settlement import store

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def test_settlement_dag_writes_the_draft_and_exports(
    isolated_env: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOVOPS_HOME", str(tmp_path))
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        store.add_period(conn, "2031-Q1", "quarterly", date(2031, 1, 1), date(2031, 3, 31))
        store.record_assessment(conn, "2031-Q1", Decimal("92"), Decimal("88"))
    result = run_dag("settlement_quarterly", conf={"period_id": "2031-Q1"},
                     logical_date=datetime(2031, 4, 1, 3, tzinfo=UTC))  # fmt: skip
    assert result.state == "success", result.task_states
    stored = store.get_statement(engine, "2031-Q1")
    engine.dispose()
    assert stored is not None and stored["state"] == "draft"
    folder = tmp_path / "statements" / "2031-Q1"
    assert sorted(p.name for p in folder.iterdir()) == ["statement.csv", "statement.json", "statement.xlsx"]
    assert json.loads((folder / "statement.json").read_text(encoding="utf-8"))["content_hash"] == stored["content_hash"]
    totals = {r["note"]: r["amount"] for r in csv.DictReader((folder / "statement.csv").open(encoding="utf-8-sig"))
              if r["kind"] == "total"}  # fmt: skip
    # Nothing accepted yet in this database's 2031: the statement is all zeros, and the full
    # prepayment (round2(12,000,000.00 x 0.35)) is still to be offset.
    assert (totals["gross"], totals["payable"], totals["prepayment_remaining"]) == ("0.00", "0.00", "4200000.00")
