"""sharing_publish under real Airflow, PostgreSQL and the API server as a process: the sample
set validated, documented, tested over HTTP, registered and metered (1 组); published again,
it updates the registry and meters nothing."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine

from govops.dag_runs import run_dag
from govops.settlement.workorders import ensure_demo_work_order
from govops.sharing.sample import SAMPLE_DATASET, publish_table
from govops.spark.manifest import _safe
from tests.db import rows
from tests.sharing.server import ApiServer, catalog_entry, copy_sample_set
from tests.sharing.test_api import legal_persons

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
USAGE = """SELECT service_item_code, unit, quantity, work_order_id, run_id, task_id, data_source
             FROM govops.usage_event WHERE dag_id = 'sharing_publish' ORDER BY id"""
REGISTRY = """SELECT set_name, open_type, open_state, opened_at, published_at, publications, tests_passed, tests_total,
                     work_order_id, usage_event_id, dataset_version, cardinality(interfaces)
                FROM govops.api_set"""


def test_publish_registers_tests_and_meters_once(isolated_env: Path, ledger_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    apis = tmp_path / "apis"
    apis.mkdir()
    copy_sample_set(apis)
    monkeypatch.setenv("GOVOPS_APIS_DIR", str(apis))
    publish_table(isolated_env.as_uri(), SAMPLE_DATASET, legal_persons(300))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-SHARING", "12", on=date(2026, 6, 1))
    catalog_entry(engine, "raw/frontdb/market_regulation/legal_persons_incremental")
    engine.dispose()
    server = ApiServer(ledger_url, isolated_env, apis, tmp_path / "server.log")
    server.start()
    try:
        monkeypatch.setenv("GOVOPS_API_URL", server.url)
        conf = {"set": "legal_persons", "work_order_id": "WO-T-SHARING"}
        first = run_dag("sharing_publish", conf=conf, logical_date=datetime(2026, 8, 3, tzinfo=UTC))
        assert first.state == "success", first.task_states
        metered = [
            ("12", "api_set", 1, "WO-T-SHARING", "deliverable:legal_persons", "deliver", "api_set/legal_persons")
        ]
        assert rows(ledger_url, USAGE) == metered
        [reg] = rows(ledger_url, REGISTRY)
        assert reg[:3] == ("legal_persons", "共享", "open") and reg[5] == 1 and reg[8] == "WO-T-SHARING"
        assert reg[6] == reg[7] and reg[7] >= 60 and reg[11] == 6  # every case passed; six interfaces
        opened_at = reg[3]

        # The interface test report: parameter names, types, value ranges, results.
        folder = isolated_env / "reports/sharing/legal_persons" / _safe(first.run_id)
        page = (folder / "test_report.html").read_text(encoding="utf-8")
        assert f"用例 {reg[7]} 个, 通过 {reg[7]} 个, 不通过 0 个" in page
        for expected in ("<td>established_on__gte</td>", "<td>string (date)</td>", "<td>1 .. 1000</td>",
                         "<td>limit=1001</td>", "<td>legal_representative</td>", "<td>403</td>"):  # fmt: skip
            assert expected in page, expected
        sheet = load_workbook(folder / "test_report.xlsx")["接口测试"]
        assert [c.value for c in sheet[1]][:6] == ["接口地址", "参数名", "参数位置", "参数类型", "取值范围", "用例类型"]
        assert sheet.max_row == reg[7] + 1 and {r[9] for r in sheet.iter_rows(min_row=2, values_only=True)} == {"通过"}
        openapi = json.loads((folder / "openapi.json").read_text(encoding="utf-8"))
        assert "/api/sets/legal_persons/rows.csv" in openapi["paths"]
        assert "established_on__gte" in (folder / "interface_doc.html").read_text(encoding="utf-8")
        lists = isolated_env / "reports/sharing"
        api_list = list(csv.reader((lists / "api_list.csv").read_text(encoding="utf-8-sig").splitlines()))
        assert api_list[0][:4] == ["接口集", "名称", "接口地址", "方法"] and len(api_list) == 7
        resources = list(csv.reader((lists / "resources.csv").read_text(encoding="utf-8-sig").splitlines()))
        assert resources[1][0] == "法人登记信息" and resources[1][8] == "已开放"
        # The test caller's key was revoked; its calls are call records like any other.
        [(revoked, calls)] = rows(ledger_url, """SELECT bool_and(k.revoked_at IS NOT NULL),
            (SELECT count(*) FROM govops.api_call WHERE caller_id = 'govops-interface-test')
            FROM govops.api_key k WHERE caller_id = 'govops-interface-test'""")  # fmt: skip
        assert revoked and calls >= reg[7]

        # Published again (a new run, another work order): the registry is updated, nothing
        # more is metered, and the set stays on its first work order.
        second = run_dag("sharing_publish", conf={"set": "legal_persons", "work_order_id": "WO-T-ANOTHER"},
                         logical_date=datetime(2026, 8, 10, tzinfo=UTC))  # fmt: skip
        assert second.state == "success", second.task_states
        assert rows(ledger_url, USAGE) == metered
        [again] = rows(ledger_url, REGISTRY)
        assert again[5] == 2 and again[3] == opened_at and again[4] > reg[4] and again[8:10] == reg[8:10]
    finally:
        server.stop()
