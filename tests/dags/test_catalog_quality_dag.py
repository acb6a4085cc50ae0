"""The catalog_quality_check DAG under real Airflow and PostgreSQL: exact issues per
department, the issue lists written, metered once and only the new entries (also when the
run is re-run after a later one), and the rectification lifecycle across two runs (fixed ->
reverified, fixed but still there -> reopened). A database of its own, so the catalog
holds only the entries crafted here."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import Engine, text

from govops.dag_runs import run_dag
from govops.quality.catalog_checks import mark_fixed
from govops.settlement.workorders import ensure_demo_work_order
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAG_ID = "catalog_quality_check"
GOOD = [{"name": "id", "type": "bigint", "description": "编号"},
        {"name": "name", "type": "string", "description": "名称"}]  # fmt: skip
# dataset: (department, update_frequency, share_type, open_type, schema)
ENTRIES = {
    "raw/frontdb/public_security/persons": ("区公安分局", "每日", "有条件共享", "不予开放", GOOD),
    "raw/frontdb/public_security/addresses": ("区公安分局", "每日", "有条件共享", "不予开放",
                                              [{"name": "id", "type": "bigint", "description": ""},
                                               {"name": "road", "type": "string"}]),
    "raw/frontdb/market/legal_persons": ("区市场监管局", "monthly", "不予共享", "无条件开放", GOOD),
    "raw/frontdb/market/licences": ("区市场监管局", "每月", "无条件共享", "无条件开放", GOOD),
    "raw/landing/hr/insured": ("区人社局", "每周", "有条件共享", "有条件开放", GOOD),
    "raw/landing/health/clinics": ("区卫健委", "每年", "无条件共享", "无条件开放", GOOD),
}  # fmt: skip


def _put(engine: Engine, dataset: str, department: str, frequency: str, share: str, open_: str, schema: list) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                """INSERT INTO govops.data_catalog (dataset, name, provider_department, source_system, database_type,
                       source_object, schema, update_frequency, share_type, open_type, classification, pipeline,
                       first_run_id)
                   VALUES (:ds, :name, :dep, '业务系统', 'PostgreSQL', 'a.b', CAST(:schema AS jsonb), :f, :s, :o,
                       '基础库/人口', 'test', 'r0')
                   ON CONFLICT (dataset) DO UPDATE SET update_frequency = EXCLUDED.update_frequency,
                       share_type = EXCLUDED.share_type, open_type = EXCLUDED.open_type, schema = EXCLUDED.schema"""
            ),
            {"ds": dataset, "name": f"资源 {dataset}", "dep": department, "f": frequency, "s": share, "o": open_,
             "schema": json.dumps(schema, ensure_ascii=False)},
        )  # fmt: skip


def test_catalog_quality_runs_lists_meters_and_reverifies(
    fresh_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_ledger.url.render_as_string(hide_password=False)
    lake = tmp_path / "lake"
    lake.mkdir()
    monkeypatch.setenv("GOVOPS_DATABASE_URL", url)
    monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_DB", url)
    monkeypatch.setenv("GOVOPS_LAKE_ROOT", lake.as_uri())
    monkeypatch.setenv("GOVOPS_RETRY_DELAY_SECONDS", "0")  # a failing task fails the test now, not in minutes
    ensure_demo_work_order(fresh_ledger, "WO-CATALOG", "11", on=date(2026, 6, 1))
    for dataset, entry in ENTRIES.items():
        _put(fresh_ledger, dataset, *entry)
    conf = {"work_order_id": "WO-CATALOG"}
    first_date = datetime(2026, 8, 3, 3, tzinfo=UTC)

    first = run_dag(DAG_ID, conf=conf, logical_date=first_date)
    assert first.state == "success", first.task_states
    per_department = ("SELECT department, problem, count(*) FROM govops.catalog_quality_issue WHERE run_id = :r "
                      "GROUP BY department, problem ORDER BY department, problem")  # fmt: skip
    assert rows(url, per_department, r=first.run_id) == [
        ("区公安分局", "COLUMN_DESCRIPTION_MISSING", 2),
        ("区卫健委", "UNKNOWN_DEPARTMENT", 1),
        ("区市场监管局", "INVALID_CODE", 1),
        ("区市场监管局", "SHARE_OPEN_CONFLICT", 1),
    ]
    usage = ("SELECT run_id, service_item_code, unit, quantity, records, attributes->'checked', attributes->'new' "
             f"FROM govops.usage_event WHERE dag_id = '{DAG_ID}'")  # fmt: skip
    assert rows(url, usage) == [(first.run_id, "11", "catalog_entry", 6, 6, 6, 6)]

    folder = lake / "reports/catalog_quality" / first.run_id.replace(":", "_").replace("+", "_")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["entries"] == {"checked": 6, "clean": 3, "with_issues": 3} and summary["issues"] == 5
    assert summary["metered"] == {"checked": 6, "new": 6}
    assert sorted(p.name for p in folder.glob("*.xlsx")) == ["区人社局.xlsx", "区公安分局.xlsx", "区卫健委.xlsx",
                                                             "区市场监管局.xlsx"]  # fmt: skip
    market = list(openpyxl.load_workbook(folder / "区市场监管局.xlsx").active.iter_rows(values_only=True))
    assert sorted(r[5] for r in market[1:]) == ["INVALID_CODE", "SHARE_OPEN_CONFLICT"]
    assert len(list(openpyxl.load_workbook(folder / "区人社局.xlsx").active.rows)) == 1  # clean: header only
    assert "<td class=n id=with_issues>3</td>" in (folder / "report.html").read_text(encoding="utf-8")

    # Re-running the run stores and meters nothing twice.
    again = run_dag(DAG_ID, conf=conf, logical_date=first_date)
    assert again.state == "success" and again.run_id == first.run_id
    assert rows(url, usage) == [(first.run_id, "11", "catalog_entry", 6, 6, 6, 6)]
    assert rows(url, "SELECT count(*) FROM govops.catalog_quality_issue") == [(5,)]

    # The market department fixes the frequency and says both issues are fixed; only one is.
    # The entry corrected in place is not new; one clean entry is registered: it is.
    ids = rows(url, "SELECT id FROM govops.catalog_quality_issue WHERE department = '区市场监管局' ORDER BY problem")
    assert mark_fixed(fresh_ledger, [i for (i,) in ids]) == 2
    _put(fresh_ledger, "raw/frontdb/market/legal_persons", "区市场监管局", "每月", "不予共享", "无条件开放", GOOD)
    _put(fresh_ledger, "raw/landing/hr/pensions", "区人社局", "每月", "有条件共享", "有条件开放", GOOD)
    second = run_dag(DAG_ID, conf=conf, logical_date=datetime(2026, 8, 10, 3, tzinfo=UTC))
    assert second.state == "success", second.task_states
    states = ("SELECT run_id, problem, state FROM govops.catalog_quality_issue WHERE department = '区市场监管局' "
              "ORDER BY id")  # fmt: skip
    assert rows(url, states) == [
        (first.run_id, "INVALID_CODE", "reverified"),
        (first.run_id, "SHARE_OPEN_CONFLICT", "open"),  # reopened: still there
        (second.run_id, "SHARE_OPEN_CONFLICT", "open"),
    ]
    assert rows(url, per_department, r=second.run_id) == [
        ("区公安分局", "COLUMN_DESCRIPTION_MISSING", 2),
        ("区卫健委", "UNKNOWN_DEPARTMENT", 1),
        ("区市场监管局", "SHARE_OPEN_CONFLICT", 1),
    ]
    assert rows(url, usage + " ORDER BY id") == [(first.run_id, "11", "catalog_entry", 6, 6, 6, 6),
                                                 (second.run_id, "11", "catalog_entry", 1, 7, 7, 1)]  # fmt: skip
    page = (lake / "reports/catalog_quality" / second.run_id.replace(":", "_").replace("+", "_") / "report.html")
    text_ = page.read_text(encoding="utf-8")
    assert "<td class=n id=reverified>1</td>" in text_ and "<td class=n id=reopened>1</td>" in text_
    assert "<td class=n id=checked>7</td>" in text_ and "<td class=n id=new>1</td>" in text_

    # Re-running the first run after the second: its own 6 again, no conflict, nothing billed twice.
    rerun = run_dag(DAG_ID, conf=conf, logical_date=first_date)
    assert rerun.state == "success" and rerun.run_id == first.run_id, rerun.task_states
    assert rows(url, usage + " ORDER BY id") == [(first.run_id, "11", "catalog_entry", 6, 6, 6, 6),
                                                 (second.run_id, "11", "catalog_entry", 1, 7, 7, 1)]  # fmt: skip
