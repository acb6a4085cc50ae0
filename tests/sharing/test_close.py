"""Closing a published set and publishing it again, with the API server as a process; the
spec's catalog entry checked against the data catalog; the set's registration, change and
revocation reported to an upstream platform (a real HTTP server here) (issue 19)."""

from __future__ import annotations

import csv
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from govops.settlement.workorders import ensure_demo_work_order
from govops.sharing import callers, cascade, publish
from govops.sharing.sample import SAMPLE_DATASET, publish_table
from govops.specs import SpecError
from tests.servers import free_port
from tests.sharing.server import ApiServer, catalog_entry, copy_sample_set
from tests.sharing.test_api import legal_persons

CATALOG = "raw/frontdb/market_regulation/legal_persons_incremental"
APP_KEY, SECRET = "qingpu", "s3cret/+="


@pytest.fixture
def city() -> Iterator[dict]:
    """The upstream platform: checks the signature, keeps each message, answers 200 or 401."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stamp = self.headers.get("X-Timestamp", "0")
            expected = cascade.signature(SECRET, self.path, stamp, body)
            ok = self.headers.get("X-App-Key") == APP_KEY and self.headers.get("X-Signature") == expected
            ok = ok and abs(time.time() - int(stamp)) < 300
            if ok:
                received.append(json.loads(body))
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(b'{"accepted": true}' if ok else b'{"error": "bad signature"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"port": server.server_address[1], "received": received}
    server.shutdown()


def _publish(engine, lake: Path, url: str, run_id: str) -> dict:  # type: ignore[no-untyped-def]
    validated = publish.validate(engine, lake.as_uri(), "legal_persons", None, url)
    documented = publish.document(lake.as_uri(), validated, run_id)
    tested = publish.test_interfaces(engine, lake.as_uri(), validated, documented, run_id)
    return publish.register(engine, lake.as_uri(), validated, documented, tested, run_id=run_id)


def test_close_reopen_and_cascade(ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  city: dict) -> None:  # fmt: skip
    lake, apis = tmp_path / "lake", tmp_path / "apis"
    apis.mkdir()
    wo = f"WO-T-CLOSE-{uuid.uuid4().hex[:6]}"
    copy_sample_set(apis, **{"rate_per_second: 20": "rate_per_second: 1000", "WO-DEMO-SHARING": wo,
                             "\nexamples:": "\ncascade: [city]\nexamples:"})  # fmt: skip
    monkeypatch.setenv("GOVOPS_APIS_DIR", str(apis))
    uri = f"http://{APP_KEY}:{SECRET.replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')}@127.0.0.1"
    monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_CASCADE_CITY", f"{uri}:{city['port']}/catalog/report")
    monkeypatch.setenv("GOVOPS_API_PUBLIC_URL", "https://data.example.gov.cn")
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
        [registered] = publish.cascade(engine, lake.as_uri(), publish.validate(engine, lake.as_uri(), "legal_persons",
                                                                                None, server.url))  # fmt: skip
        assert (registered["action"], registered["outcome"]) == ("register", "accepted")
        message = city["received"][-1]
        assert message["format"] == "govops-cascade/1" and message["from_platform"]["id"] == "qingpu-district"
        assert message["resource"]["catalog"]["name"] == "法人登记信息" and message["resource"]["open_state"] == "open"
        assert "https://data.example.gov.cn/api/sets/legal_persons/rows.json" in {
            i["address"] for i in message["resource"]["interfaces"]}  # fmt: skip
        spec = publish._load("legal_persons").spec
        again_sent = cascade.report(engine, lake.as_uri(), spec, server.url)  # published again while open: a change
        assert [(r["action"], r["message_id"] != registered["message_id"]) for r in again_sent] == [("change", True)]
        headers = {"Authorization": f"Bearer {key}"}
        lookup = f"{server.url}/api/sets/legal_persons/rows.json"
        assert httpx.get(lookup, params={"id": "7"}, headers=headers).status_code == 200

        closed = publish.close(engine, lake.as_uri(), "legal_persons", "数据提供部门停止共享", "operator")
        assert [r["action"] for r in cascade.report(engine, lake.as_uri(), spec, server.url)] == ["revoke"]
        assert city["received"][-1]["resource"]["closed_at"] == closed["closed_at"][:19] + "+00:00"
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
        # A platform that refuses (a wrong secret) fails at once; one not reached can be retried.
        monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_CASCADE_CITY", f"http://{APP_KEY}:wrong@127.0.0.1:{city['port']}/c")
        with pytest.raises(cascade.CascadeRefused, match="HTTP 401"):
            cascade.report(engine, lake.as_uri(), spec, server.url)
        monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_CASCADE_CITY", f"{uri}:{free_port()}/catalog/report")
        with pytest.raises(cascade.PlatformUnreachable):
            cascade.report(engine, lake.as_uri(), spec, server.url)
        monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_CASCADE_CITY", f"{uri}:{city['port']}/catalog/report")
        assert [r["action"] for r in cascade.report(engine, lake.as_uri(), spec, server.url)] == ["register"]
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
        with engine.connect() as conn:
            sent = conn.execute(text("SELECT action, outcome FROM govops.api_cascade ORDER BY id")).all()
        assert [tuple(r) for r in sent] == [("register", "accepted"), ("change", "accepted"), ("revoke", "accepted"),
                                            ("register", "refused"), ("register", "unreachable"),
                                            ("register", "accepted")]  # fmt: skip
        log = list(csv.reader((lake / "reports/sharing/cascade.csv").read_text("utf-8-sig").splitlines()))
        assert log[0][:5] == ["发送时间", "级联平台", "接口集", "动作", "结果"] and len(log) == 7
        assert [r[3] for r in log[1:4]] == ["注册", "变更", "撤销"] and log[4][4] == "被拒绝"
        assert len(city["received"]) == 4
    finally:
        server.stop()
        engine.dispose()
