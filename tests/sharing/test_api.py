"""The sharing API server as a process, called over HTTP: every interface and format,
masking by role, keys, conditional sets, limits, bad requests (issue 19)."""

from __future__ import annotations

import csv
import io
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from sqlalchemy import create_engine, text

from govops.sharing import callers
from govops.sharing.sample import publish_table
from tests.sharing.server import ApiServer, copy_sample_set

SENTINEL_NAME = "哨兵代表甲乙丙"
SENTINEL_ADDR = "上海市青浦区哨兵路999号SENTINEL"
ROWS = 2500


def legal_persons(rows: int, sentinel_id: int = 7) -> pa.Table:
    ids = list(range(1, rows + 1))
    established = [None if i % 97 == 0 else date(1995, 1, 1) + timedelta(days=(i * 37) % 9000) for i in ids]
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "uscc": [f"9131011800000{i:05d}" for i in ids],
        "name": [f"上海企业{i}有限公司" for i in ids],
        "legal_representative": [SENTINEL_NAME if i == sentinel_id else f"王{i}" for i in ids],
        "registered_address": [SENTINEL_ADDR if i == sentinel_id else f"上海市青浦区某路{i}号" for i in ids],
        "address_id": pa.array(ids, pa.int64()),
        "established_on": pa.array(established, pa.date32()),
        "updated_at": pa.array([datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=i) for i in ids],
                               pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


OPEN_SET = """
set: open_persons
title: 开放法人
dataset: open/market_regulation/legal_persons
catalog: raw/frontdb/market_regulation/legal_persons_incremental
open_type: 有条件开放
key: id
fields:
  id: {type: integer}
  name: {type: string}
filters: {id: [eq]}
sla: {rate_per_second: 2, burst: 2, quota_per_month: 1000}
"""
QUOTA_SET = (
    OPEN_SET.replace("open_persons", "tiny_quota")
    .replace("有条件开放", "无条件开放")
    .replace("{rate_per_second: 2, burst: 2, quota_per_month: 1000}", "{rate_per_second: 100, quota_per_month: 3}")
)
BAD_SET = OPEN_SET.replace("open_persons", "broken").replace("key: id", "key: no_such_field")


@pytest.fixture(scope="module")
def api(ledger_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("sharing")
    lake, apis = base / "lake", base / "apis"
    lake.mkdir()
    apis.mkdir()
    copy_sample_set(apis)
    (apis / "open_persons.yaml").write_text(OPEN_SET, encoding="utf-8")
    (apis / "tiny_quota.yaml").write_text(QUOTA_SET, encoding="utf-8")
    (apis / "broken.yaml").write_text(BAD_SET, encoding="utf-8")
    table = legal_persons(ROWS)
    publish_table(lake.as_uri(), "sharing/market_regulation/legal_persons", table)
    publish_table(lake.as_uri(), "open/market_regulation/legal_persons", table.select(["id", "name"]))
    engine = create_engine(ledger_url)
    tag = uuid.uuid4().hex[:6]
    ids = {k: f"{k}-{tag}" for k in ("dept", "market", "company", "expired", "revoked", "unapproved")}
    callers.add_caller(engine, ids["dept"], "区人社局", "department", "hr@example.org", ["human_resources"])
    callers.add_caller(engine, ids["market"], "区市场监管局", "department", "m@example.org", ["market_regulation"])
    callers.add_caller(engine, ids["company"], "某公司", "company", "c@example.org", [])
    callers.add_caller(engine, ids["unapproved"], "另一公司", "company", "d@example.org", [])
    for k in ("expired", "revoked"):
        callers.add_caller(engine, ids[k], k, "department", "x@example.org", [])
    keys = {k: callers.issue_key(engine, ids[k]) for k in ("dept", "market", "company", "revoked", "unapproved")}
    keys["expired"] = callers.issue_key(engine, ids["expired"], days=1, now=datetime.now(UTC) - timedelta(days=2))
    callers.revoke_key(engine, keys["revoked"].split(".")[0], "test")
    app_id = callers.apply(engine, ids["company"], "open_persons", "research")
    callers.decide(engine, app_id, True, "reviewer")
    server = ApiServer(ledger_url, lake, apis, base / "server.log")
    server.start()
    try:
        yield {"server": server, "url": server.url, "keys": keys, "ids": ids, "engine": engine, "table": table,
               "log": base / "server.log"}  # fmt: skip
    finally:
        server.stop()
        engine.dispose()


def get(api: dict, path: str, key: str | None = "dept", **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api['keys'][key]}"} if key else {}
    return httpx.get(api["url"] + path, params=params, headers=headers, timeout=30)


LP = "/api/sets/legal_persons"


def test_every_interface_and_format(api: dict) -> None:
    r = get(api, f"{LP}/sample.json")
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 10 and [row["id"] for row in r.json()["rows"]] == list(range(1, 11))
    root = ET.fromstring(get(api, f"{LP}/sample.xml").content)
    assert root.get("set") == "legal_persons" and len(root.find("rows")) == 10

    page = get(api, f"{LP}/rows.json", uscc="913101180000000042").json()
    assert page["count"] == 1 and page["rows"][0]["id"] == 42 and page["next_cursor"] is None
    assert page["rows"][0]["established_on"] == (date(1995, 1, 1) + timedelta(days=42 * 37 % 9000)).isoformat()
    root = ET.fromstring(get(api, f"{LP}/rows.xml", id__in="5,6,200", fields="id,name").content)
    assert [r.find("id").text for r in root.find("rows")] == ["5", "6", "200"]
    assert root.find("rows")[0].find("name").text == "上海企业5有限公司"

    r = get(api, f"{LP}/rows.csv", bom="true", fields="id,name,established_on")
    assert r.content.startswith(b"\xef\xbb\xbf") and r.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert lines[0] == ["id", "name", "established_on"] and len(lines) == ROWS + 1
    assert lines[97][2] == ""  # id 97: no date
    assert not get(api, f"{LP}/rows.csv", id__lt="3").content.startswith(b"\xef\xbb\xbf")

    r = get(api, f"{LP}/rows.ndjson", established_on__gte="2010-01-01")
    rows = [json.loads(line) for line in r.text.splitlines()]
    expected = [i for i in range(1, ROWS + 1) if i % 97 and date(1995, 1, 1) + timedelta(days=i * 37 % 9000)
                >= date(2010, 1, 1)]  # fmt: skip
    assert [row["id"] for row in rows] == expected

    listed = httpx.get(api["url"] + "/api/sets").json()["sets"]
    assert {s["set"] for s in listed} == {"legal_persons", "open_persons", "tiny_quota"}  # broken: refused
    assert "SPEC_INVALID" in api["log"].read_text() and "broken.yaml: key" in api["log"].read_text()


def test_keyset_pages_walk_every_row_once_in_a_stable_order(api: dict) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        params = {"sort": "-established_on", "limit": "300", "fields": "id,established_on"}
        if cursor:
            params["cursor"] = cursor
        page = get(api, f"{LP}/rows.json", key="market", total="true", **params).json()
        assert page["total"] == ROWS
        seen += [(r["id"], r["established_on"]) for r in page["rows"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 9 and len(seen) == ROWS and len({i for i, _ in seen}) == ROWS
    dated = [(d, i) for i, d in seen if d is not None]
    assert dated == sorted(dated, key=lambda t: (-date.fromisoformat(t[0]).toordinal(), t[1]))
    assert all(d is None for _, d in seen[len(dated) :])  # NULLs last, by id
    assert [i for i, d in seen[len(dated) :]] == sorted(i for i in range(1, ROWS + 1) if i % 97 == 0)


def test_masking_by_role_never_shows_the_sentinel_to_a_role_without_the_right(api: dict) -> None:
    calls = [("sample.json", {}), ("sample.xml", {}), ("rows.json", {"id__in": "6,7,8"}),
             ("rows.xml", {"id": "7"}), ("rows.csv", {}), ("rows.ndjson", {})]  # fmt: skip
    for path, params in calls:
        body = get(api, f"{LP}/{path}", **params).content.decode()
        assert "SENTINEL" not in body and SENTINEL_NAME not in body and "哨兵" not in body, path
        clear = get(api, f"{LP}/{path}", key="market", **params).content.decode()
        assert SENTINEL_NAME in clear and SENTINEL_ADDR in clear, path
    row = get(api, f"{LP}/rows.json", id="7").json()["rows"][0]
    assert row["legal_representative"] == "哨" + "*" * (len(SENTINEL_NAME) - 1)
    assert row["registered_address"] == SENTINEL_ADDR[:6] + "*" * (len(SENTINEL_ADDR) - 6)
    r = get(api, f"{LP}/rows.json", legal_representative=SENTINEL_NAME)  # a yes/no oracle on the clear value
    assert r.status_code == 403 and r.json()["parameter"] == "legal_representative"
    assert SENTINEL_NAME not in r.text
    assert get(api, f"{LP}/rows.json", key="market", legal_representative=SENTINEL_NAME).json()["count"] == 1


def test_concurrent_keyed_lookups_each_get_their_own_row_masked_for_their_role(api: dict) -> None:
    """Lookups arriving together are answered by one query per set, version and columns:
    each caller still gets its own row, with its own role's masking and field selection."""
    from concurrent.futures import ThreadPoolExecutor

    caller = f"grouped-{uuid.uuid4().hex[:6]}"  # a bucket of its own: 16 calls stay within its burst of 20
    callers.add_caller(api["engine"], caller, "区民政局", "department", "x@example.org", [])
    keys = {"masked": callers.issue_key(api["engine"], caller), "clear": api["keys"]["market"]}

    def lookup(i: int) -> tuple[int, str, dict]:
        kind = "masked" if i % 3 == 0 else "clear"
        params = {"id": str(i % 20 + 1), **({"fields": "id,legal_representative"} if i % 2 else {})}
        r = httpx.get(f"{api['url']}{LP}/rows.json", params=params, headers={"Authorization": f"Bearer {keys[kind]}"})
        return i, kind, r.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lookup, range(48)))
    for i, kind, page in answers:
        [row] = page["rows"]
        wanted = i % 20 + 1
        assert row["id"] == wanted and page["next_cursor"] is None
        assert set(row) == ({"id", "legal_representative"} if i % 2 else set(api["table"].column_names))
        clear = SENTINEL_NAME if wanted == 7 else f"王{wanted}"
        assert (row["legal_representative"] == clear) == (kind == "clear"), (i, kind, row)
    assert get(api, f"{LP}/rows.json", key="market", id=str(ROWS + 1)).json()["rows"] == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"nope": "1"}, "nope"),
        ({"id__between": "1"}, "id__between"),
        ({"id": "abc"}, "id"),
        ({"established_on__gt": "2020-13-01"}, "established_on__gt"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "eyJ4IjoxfQ.AAAA"}, "cursor"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"sort": "name"}, "sort"),
        ({"fields": "id,secret"}, "fields"),
        ({"total": "yes"}, "total"),
        ({"address_id": "1"}, "address_id"),  # a field, but not a filter
        # SQL injection in every parameter: names, operators, values, fields, sort, cursor
        ({"id": "1 OR 1=1"}, "id"),
        ({"id__in": "1,2);DROP TABLE x;--"}, "id__in"),
        ({"uscc": "x' OR '1'='1"}, None),
        ({"name__prefix": "%' UNION SELECT * FROM duckdb_settings() --"}, None),
        ({"fields": "id; DROP TABLE govops.api_call"}, "fields"),
        ({"sort": "id; SELECT 1"}, "sort"),
        ({"sort": "(SELECT 1)"}, "sort"),
        ({'id"; SELECT 1; --': "1"}, 'id"; SELECT 1; --'),
        ({"id__eq OR 1=1": "1"}, "id__eq OR 1=1"),
        ({"limit": "1; SELECT 1"}, "limit"),
        ({"cursor": "' OR 1=1 --"}, "cursor"),
        ({"updated_at__gte": "2026-01-01' OR '1'='1"}, "updated_at__gte"),
    ],
)
def test_bad_requests_name_the_parameter_and_nothing_internal(api: dict, params: dict, parameter: str | None) -> None:
    r = get(api, f"{LP}/rows.json", **params)
    if parameter is None:  # a string value is bound as a value: it matches nothing
        assert r.status_code == 200 and r.json()["count"] == 0
        return
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["parameter"] == parameter and parameter[:20] in body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    for internal in ("duckdb", "Traceback", "read_parquet", "SELECT", "/tmp", "parquet", "psycopg", "sqlalchemy"):
        assert internal.lower() not in r.text.lower() or internal.lower() in json.dumps(params).lower(), internal


def test_a_cursor_is_bound_to_its_query(api: dict) -> None:
    page = get(api, f"{LP}/rows.json", limit="5").json()
    r = get(api, f"{LP}/rows.json", limit="5", cursor=page["next_cursor"], uscc="913101180000000001")
    assert r.status_code == 400 and r.json()["parameter"] == "cursor"
    head, _, tag = page["next_cursor"].partition(".")
    forged = head[:-2] + ("AA" if head[-2:] != "AA" else "BB") + "." + tag
    assert get(api, f"{LP}/rows.json", limit="5", cursor=forged).status_code == 400
    assert [r["id"] for r in get(api, f"{LP}/rows.json", limit="5", cursor=page["next_cursor"]).json()["rows"]] == [
        6, 7, 8, 9, 10]  # fmt: skip


def test_keys_and_access(api: dict) -> None:
    assert get(api, f"{LP}/rows.json", key=None).status_code == 401
    r = httpx.get(api["url"] + f"{LP}/rows.json", headers={"Authorization": "Bearer gkdeadbeef.nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert get(api, f"{LP}/rows.json", key="expired").json()["detail"] == "the API key has expired"
    assert get(api, f"{LP}/rows.json", key="revoked").json()["detail"] == "the API key was revoked"
    r = get(api, f"{LP}/rows.json", key="company")  # 共享: departments only
    assert r.status_code == 403 and r.json()["set"] == "legal_persons" and "legal_persons" in r.json()["detail"]
    r = get(api, "/api/sets/open_persons/rows.json", key="unapproved")  # 有条件开放 without an approved application
    assert r.status_code == 403 and "open_persons" in r.json()["detail"]
    assert get(api, "/api/sets/open_persons/rows.json", key="company", id="3").json()["rows"] == [
        {"id": 3, "name": "上海企业3有限公司"}]  # fmt: skip
    # a key revoked while the server runs stops working at once (key cache 0 s in the tests)
    key = callers.issue_key(api["engine"], api["ids"]["dept"])
    assert httpx.get(api["url"] + f"{LP}/sample.json", headers={"X-API-Key": key}).status_code == 200
    callers.revoke_key(api["engine"], key.split(".")[0], "leaked")
    assert httpx.get(api["url"] + f"{LP}/sample.json", headers={"X-API-Key": key}).status_code == 401


def test_signed_requests(api: dict) -> None:
    import hashlib
    import hmac
    import time

    key_id, secret = api["keys"]["dept"].split(".")

    def signed(ts: int, sig_secret: str = secret) -> httpx.Response:
        path, query = f"{LP}/rows.json", "id=3"
        message = f"GET\n{path}\n{query}\n{ts}".encode()
        sig = hmac.new(sig_secret.encode(), message, hashlib.sha256).hexdigest()
        return httpx.get(f"{api['url']}{path}?{query}",
                         headers={"X-App-Key": key_id, "X-Timestamp": str(ts), "X-Signature": sig})  # fmt: skip

    assert signed(int(time.time())).json()["rows"][0]["id"] == 3
    assert "replay window" in signed(int(time.time()) - 3600).json()["detail"]
    assert signed(int(time.time()), "wrong").status_code == 401


def test_rate_limit_and_quota_answer_429_with_headers(api: dict) -> None:
    statuses = [get(api, "/api/sets/open_persons/sample.json", key="company") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert statuses[0].status_code == 200 and statuses[0].headers["ratelimit-limit"] == "2"
    assert limited and limited[0].json()["title"] == "RATE_LIMITED"
    assert limited[0].headers["ratelimit-remaining"] == "0" and int(limited[0].headers["retry-after"]) >= 1
    results = [get(api, "/api/sets/tiny_quota/sample.json", key="company").status_code for _ in range(5)]
    assert results == [200, 200, 200, 429, 429]
    r = get(api, "/api/sets/tiny_quota/sample.json", key="company")
    assert r.json()["title"] == "QUOTA_EXCEEDED" and int(r.headers["retry-after"]) > 0
    assert r.headers["ratelimit-limit"] == "3"


def test_every_call_is_recorded_once_with_its_figures(api: dict) -> None:
    ok = get(api, f"{LP}/rows.json", id__in="1,2,3")
    refused = get(api, f"{LP}/rows.json", nope="1")
    unauth = get(api, f"{LP}/rows.json", key=None)
    stream = get(api, f"{LP}/rows.ndjson", id__lt="11")
    with api["engine"].connect() as conn:
        found = {str(r.request_id): r for r in conn.execute(text(
            "SELECT * FROM govops.api_call WHERE request_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": [x.headers["x-request-id"] for x in (ok, refused, unauth, stream)]})}  # fmt: skip
    row = found[ok.headers["x-request-id"]]
    assert (row.set_name, row.interface, row.caller_id, row.status, row.rows, row.bytes) == (
        "legal_persons",
        "query_json",
        api["ids"]["dept"],
        200,
        3,
        len(ok.content),
    )
    assert row.latency_ms > 0
    assert found[refused.headers["x-request-id"]].error_code == "BAD_PARAMETER"
    assert found[unauth.headers["x-request-id"]].status == 401
    assert found[unauth.headers["x-request-id"]].caller_id is None
    s = found[stream.headers["x-request-id"]]
    assert (s.interface, s.rows, s.bytes, s.completed) == ("stream_ndjson", 10, len(stream.content), True)


@pytest.mark.browser
def test_interface_documentation_is_served_offline(api: dict) -> None:
    import re

    from govops.sharing.docs import CSP, openapi_document, set_paths
    from govops.sharing.spec import load_all
    from tests.browser import render

    sets, _ = load_all(api["server"].apis)
    served = httpx.get(api["url"] + "/openapi.json").json()
    for name, loaded in sets.items():  # what is documented is what the server serves
        assert set_paths(served, name) == set_paths(openapi_document([loaded.spec]), name) != {}
    r = httpx.get(api["url"] + "/docs/legal_persons")
    assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
    assert httpx.get(api["url"] + "/docs/broken").status_code == 404
    everything = httpx.get(api["url"] + "/docs").text
    assert all(f'id="{s}"' in everything for s in ("legal_persons", "open_persons", "tiny_quota"))
    shown = render(api["url"] + "/docs/legal_persons")
    assert "接口文档" in shown.text and "取值范围" in shown.text and "established_on__gte" in shown.text
    assert "/api/sets/legal_persons/rows.csv" in shown.text and "1 .. 1000" in shown.text
    # Nothing in the page (after load) points anywhere but this server, and no script runs.
    assert "<script" not in shown.dom
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", shown.dom)


def test_call_records_aggregate_and_export_in_the_seeds_four_fields(
    api: dict, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openpyxl import load_workbook

    from govops.ledger.usage import contract_timezone
    from govops.sharing import records
    from govops.sharing.__main__ import main

    market = f"records-{uuid.uuid4().hex[:6]}"  # a caller of its own: its calls are these four
    callers.add_caller(api["engine"], market, "区市场监管局", "department", "m@example.org", [])
    api["keys"][market] = callers.issue_key(api["engine"], market)
    for _ in range(3):
        assert get(api, f"{LP}/sample.xml", key=market).status_code == 200
    assert get(api, f"{LP}/rows.json", key=market, nope="1").status_code == 400
    today = datetime.now(contract_timezone()).date()
    with api["engine"].connect() as conn:
        recorded = dict(conn.execute(text("""SELECT interface, count(*) FROM govops.api_call WHERE caller_id = :c
                                             GROUP BY 1"""), {"c": market}).all())  # fmt: skip
    assert recorded == {"sample_xml": 3, "query_json": 1}
    exported = [r for r in records.export_rows(api["engine"], today, today) if r[1] == f"{market} 区市场监管局"]
    assert exported == [("legal_persons/query_json", f"{market} 区市场监管局", today.isoformat(), 1),
                        ("legal_persons/sample_xml", f"{market} 区市场监管局", today.isoformat(), 3)]  # fmt: skip
    [aggregate] = [a for a in records.aggregates(api["engine"], "month", today, today) if a["caller_id"] == market]
    assert (aggregate["period_start"], aggregate["calls"], aggregate["answered"], aggregate["refused"]) == (
        today.replace(day=1), 4, 3, 1)  # fmt: skip
    monkeypatch.setenv("GOVOPS_DATABASE_URL", ledger_url)
    for name in ("calls.csv", "calls.xlsx", "monthly.xlsx"):
        command = "aggregate" if name.startswith("monthly") else "export"
        extra = ["--period", "month"] if command == "aggregate" else []
        assert main(["records", command, *extra, "--from", str(today), "--to", str(today),
                     "--out", str(tmp_path / name)]) == 0  # fmt: skip
    raw = (tmp_path / "calls.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert lines[0] == ["接口信息", "请求方信息", "请求时间", "请求次数"]
    assert [*exported[1][:3], "3"] in lines
    book = load_workbook(tmp_path / "calls.xlsx")
    assert [c.value for c in book["调用记录"][1]] == ["接口信息", "请求方信息", "请求时间", "请求次数"]
    sheet = load_workbook(tmp_path / "monthly.xlsx")["调用统计"]
    assert [c.value for c in sheet[1]][:4] == ["统计周期", "接口集", "请求方", "请求次数"]
    assert any(row[2] == market and row[3] == 4 for row in sheet.iter_rows(min_row=2, values_only=True))
