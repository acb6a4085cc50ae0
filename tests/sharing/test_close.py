"""Closing a published set and publishing it again, with the API server as a process; the
spec's catalog entry checked against the data catalog (issue 19)."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from govops.settlement.workorders import ensure_demo_work_order
from govops.sharing import callers, publish
from govops.sharing.sample import SAMPLE_DATASET, publish_table
from govops.specs import SpecError
from tests.sharing.server import ApiServer, catalog_entry, copy_sample_set
from tests.sharing.test_api import legal_persons

CATALOG = "raw/frontdb/market_regulation/legal_persons_incremental"


def _publish(engine, lake: Path, url: str, run_id: str) -> dict:  # type: ignore[no-untyped-def]
    validated = publish.validate(engine, lake.as_uri(), "legal_persons", None, url)
    documented = publish.document(lake.as_uri(), validated, run_id)
    tested = publish.test_interfaces(engine, lake.as_uri(), validated, documented, run_id)
    return publish.register(engine, lake.as_uri(), validated, documented, tested, run_id=run_id)


def test_close_refuses_calls_410_and_publishing_again_reopens_without_metering(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, apis = tmp_path / "lake", tmp_path / "apis"
    apis.mkdir()
    wo = f"WO-T-CLOSE-{uuid.uuid4().hex[:6]}"
    copy_sample_set(apis, **{"rate_per_second: 20": "rate_per_second: 1000", "WO-DEMO-SHARING": wo})
    monkeypatch.setenv("GOVOPS_APIS_DIR", str(apis))
    publish_table(lake.as_uri(), SAMPLE_DATASET, legal_persons(300))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, wo, "12", on=date(2026, 6, 1))
    callers.add_caller(engine, "close-dept", "区人社局", "department", "hr@example.org", [])
    key = callers.issue_key(engine, "close-dept")
    server = ApiServer(ledger_url, lake, apis, tmp_path / "server.log")
    server.start()
    try:
        # An unknown catalog entry is refused, naming the file and the field.
        with pytest.raises(SpecError, match=r"legal_persons\.yaml: catalog: .* not an entry of the data catalog"):
            publish.validate(engine, lake.as_uri(), "legal_persons", None, server.url)
        catalog_entry(engine, CATALOG)

        first = _publish(engine, lake, server.url, "run-1")
        assert first["billing"] == "delivery"
        headers = {"Authorization": f"Bearer {key}"}
        lookup = f"{server.url}/api/sets/legal_persons/rows.json"
        assert httpx.get(lookup, params={"id": "7"}, headers=headers).status_code == 200

        closed = publish.close(engine, lake.as_uri(), "legal_persons", "数据提供部门停止共享", "operator")
        r = httpx.get(lookup, params={"id": "7"}, headers=headers)
        assert r.status_code == 410, r.text
        body = r.json()
        assert body["title"] == "SET_CLOSED" and body["set"] == "legal_persons" and "legal_persons" in body["detail"]
        listed = {s["set"]: s for s in httpx.get(f"{server.url}/api/sets").json()["sets"]}
        assert listed["legal_persons"]["open_state"] == "closed" and listed["legal_persons"]["closed_at"]
        resources = list(csv.reader((lake / "reports/sharing/resources.csv").read_text("utf-8-sig").splitlines()))
        row = dict(zip(resources[0], resources[1], strict=True))
        assert row["开放状态"] == "已关闭" and row["关闭时间"][:19] == closed["closed_at"][:19]
        with pytest.raises(publish.PublishRefused, match="closed already"):
            publish.close(engine, lake.as_uri(), "legal_persons", "again", "operator")

        again = _publish(engine, lake, server.url, "run-2")
        assert again["billing"] == "republication" and again["usage_event_id"] == first["usage_event_id"]
        assert httpx.get(lookup, params={"id": "7"}, headers=headers).status_code == 200
        with engine.connect() as conn:
            events = conn.execute(text("""SELECT event, by_whom FROM govops.api_set_event
                                          WHERE set_name = 'legal_persons' ORDER BY id""")).all()  # fmt: skip
            state = conn.execute(text("SELECT open_state, closed_at FROM govops.api_set")).one()
            metered = conn.execute(text("""SELECT count(*) FROM govops.usage_event
                                           WHERE data_source = 'api_set/legal_persons'""")).scalar_one()  # fmt: skip
            refused = conn.execute(text("""SELECT count(*) FROM govops.api_call WHERE caller_id = 'close-dept'
                                           AND status = 410 AND error_code = 'SET_CLOSED'""")).scalar_one()  # fmt: skip
        assert [tuple(e) for e in events] == [("published", "run-1"), ("closed", "operator"), ("reopened", "run-2")]
        assert tuple(state) == ("open", None) and metered == 1 and refused == 1
        assert httpx.get(f"{server.url}/api/sets").json()["sets"][0]["open_state"] == "open"
    finally:
        server.stop()
        engine.dispose()
