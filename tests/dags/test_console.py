"""The console plugin (计量结算) in a real ``airflow api-server`` process, over real HTTP and
in headless Chromium: the plugin loads with all its entries; every route refuses an
anonymous caller and every change a read-only user; the pages and their JSON twins show
the ledger's figures; the flows (assign, accept, settle, verify, export, close, event
orders) change what they should, with an audit entry; and inside the Airflow UI the pages
show the same figures and load nothing from outside the machine."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlparse

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from govops.ledger.usage import TaskRef, UsageEvent, record_usage
from govops.ops.event_orders import raise_order
from govops.settlement import store
from govops.settlement.workorders import (
    accept_service_order,
    ensure_demo_work_order,
    set_service_order_state,
    set_work_order_state,
)
from tests.browser import Traffic, assert_screenshot_not_blank, in_browser
from tests.conftest import own_ledger
from tests.servers import airflow_api_server

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
PERIOD = "CONSOLE-2026-11"
NEXT = "CONSOLE-2026-12"
FRAME = "document.querySelector('iframe').contentDocument"
USERS = {"admin": "admin", "op": "op", "viewer": "viewer", "wang.fang": "viewer"}  # wang.fang: a grant on DATASET
AT = datetime(2026, 11, 10, 8, tzinfo=UTC)
DATASET = "raw/frontdb/区公安分局/persons"  # the checked dataset; its owner's zone holds the full list
RUN = f"r-reports-{uuid.uuid4().hex[:8]}"  # Airflow's metadata database outlives the test session
FULL_ROW = "rule,value\nid_format,110105199001010021\n"  # what only the owner's zone may show in clear
REPORT_DAG = '''"""A DAG with one task, for the console's extra link: its runs exist in Airflow."""
from airflow.sdk import DAG, task

with DAG("console_reports", schedule=None, tags=["test"]):

    @task
    def publish() -> dict:
        return {}

    publish()
'''


@dataclass(frozen=True)
class Server:
    base: str
    tokens: dict[str, str]  # user -> JWT
    ledger: Engine
    ledger_url: str
    lake: Path
    check_run_id: int

    def client(self, user: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)


def _meter(engine: Engine, run: str, task: str, item: str, unit: str, quantity: int, work_order: str | None,
           department: str, records: int | None = None) -> None:  # fmt: skip
    record_usage(engine, [UsageEvent(task=TaskRef("console_probe", run, task), service_item_code=item, unit=unit,
                                     quantity=quantity, work_order_id=work_order, event_time=AT, records=records,
                                     department=department)])  # fmt: skip


def _seed(e: Engine) -> None:
    """Two service orders (one accepted, one delivered), usage with and without a work
    order, a period with its assessment and a draft statement, and two event orders."""
    for wo, item in (("WO-C-04", "04"), ("WO-C-01", "01"), ("WO-C-01B", "01"), ("WO-C-06", "06")):
        ensure_demo_work_order(e, wo, item, on=date(2026, 11, 1))
    _meter(e, "r1", "extract", "04", "table", 3, "WO-C-04", "区大数据中心", records=2_500_000)
    _meter(e, "r2", "extract", "01", "record", 1_234_567, "WO-C-01", "区公安局")
    _meter(e, "r3", "extract", "01", "record", 54_321, None, "区民政局")  # the unassigned queue
    _meter(e, "r3", "label", "06", "record", 7_000, None, "区民政局")
    with e.begin() as conn:
        for so, wo in (("SO-WO-C-04", "WO-C-04"), ("SO-WO-C-01", "WO-C-01")):
            set_service_order_state(conn, so, "in_progress")
            set_service_order_state(conn, so, "delivered")
            set_work_order_state(conn, wo, "in_progress")
            set_work_order_state(conn, wo, "delivered")
        accept_service_order(conn, "SO-WO-C-04", quality_score=D("85"), accepted_on=date(2026, 11, 20),
                             operator_opinion="按期交付", purchaser_opinion="同意验收")  # fmt: skip
        store.add_period(conn, PERIOD, "monthly", date(2026, 11, 1), date(2026, 11, 30))
        store.record_assessment(conn, PERIOD, D("92"), D("88"))
        raise_order(conn, "共享接口中断", description="接口 500", reporter="张三", reporting_unit="区大数据中心",
                    urgency="urgent", at=AT)  # fmt: skip
        raise_order(conn, "报表延迟", description="月报晚到", reporter="李四", reporting_unit="区大数据中心",
                    urgency="low", at=AT)  # fmt: skip
    store.settle(e, PERIOD)


def _seed_reports(e: Engine, lake: Path) -> int:
    """What a quality check's publish task leaves: its report with the masked anomaly list,
    the data docs site and, in the data owner's zone, the full list; and its ledger row (run
    RUN of ``console_reports``, task ``publish``). A file outside the served roots,
    with a symlink to it from inside. A grant to wang.fang on the checked dataset. Returns
    the check run's id."""
    from govops.security.assessment import grant

    root = lake.as_uri()
    report = lake / f"reports/quality/persons/{RUN}"
    report.mkdir(parents=True)
    (report / "report.html").write_text("<h1>质量报告 persons</h1>", encoding="utf-8")
    (report / "anomalies.csv").write_text("rule,value\nid_format,110105********0021\n", encoding="utf-8")
    docs = lake / "reports/quality/data_docs"
    (docs / "static").mkdir(parents=True)
    (docs / "index.html").write_text("<link rel=stylesheet href='static/docs.css'><h1>Data Docs</h1>")
    (docs / "static/docs.css").write_text("h1 { color: #333 }")
    full = lake / f"owner/区公安分局/quality/persons/exports/{RUN}"
    full.mkdir(parents=True)
    (full / "anomalies.csv").write_text(FULL_ROW, encoding="utf-8")
    (lake.parent / "secret.txt").write_text("not a report")
    (lake / "reports/escape").symlink_to(lake.parent)
    with e.begin() as conn:
        check_run_id = conn.execute(text(
            """INSERT INTO govops.quality_check_run (dag_id, run_id, task_id, dataset, side, suite, suite_sha256,
                   mode, rows_checked, anomaly_rows, score, dimension_scores, status, anomalies_uri, report_uri,
                   data_docs_uri)
               VALUES ('console_reports', :run, 'publish', :ds, 'ingestion', 'persons', 'x', 'batch', 505,
                       1, 99.5, '{}', 'warn', :anomalies, :report, :docs) RETURNING id"""),
            {"ds": DATASET, "run": RUN, "anomalies": f"{root}/owner/区公安分局/quality/persons/{RUN}",
             "report": f"{root}/reports/quality/persons/{RUN}/report.html",
             "docs": f"{root}/reports/quality/data_docs/index.html"}).scalar_one()  # fmt: skip
    grant(e, "wang.fang", DATASET, "read", "test")
    return int(check_run_id)


def _sync_report_dag(folder: Path) -> None:
    """Serialize the DAG ``console_reports`` into Airflow's metadata database, as the
    dag-processor would, from a folder of its own (the project's DAG folder is not parsed)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    (folder / "console_reports.py").write_text(REPORT_DAG)
    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ledger_gen = own_ledger()
    ledger = next(ledger_gen)
    url = ledger.url.render_as_string(hide_password=False)
    _seed(ledger)
    folder = tmp_path_factory.mktemp("console")
    lake = folder / "lake"
    lake.mkdir()
    check_run_id = _seed_reports(ledger, lake)
    dags = folder / "dags"
    dags.mkdir()
    _sync_report_dag(dags)
    env = {"GOVOPS_DATABASE_URL": url, "AIRFLOW_CONN_GOVOPS_DB": url, "GOVOPS_LAKE_ROOT": lake.as_uri(),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False"}  # fmt: skip
    try:
        with airflow_api_server(folder, USERS, env) as (base, passwords):
            tokens = {}
            for user in USERS:
                login = {"username": user, "password": passwords[user]}
                reply = httpx.post(f"{base}/auth/token", json=login, timeout=30)
                assert reply.status_code == 201, reply.text
                tokens[user] = reply.json()["access_token"]
            yield Server(base, tokens, ledger, url, lake, check_run_id)
    finally:
        next(ledger_gen, None)


def test_the_plugin_loads_with_all_its_entries(server: Server) -> None:
    """Airflow drops a plugin whole when one entry is invalid: the REST API lists ours with
    the app, the top-level entry, the six pages under the category and the DAG-run tab."""
    with server.client("viewer") as c:
        plugins = {p["name"]: p for p in c.get("/api/v2/plugins").json()["plugins"]}
        errors = c.get("/api/v2/plugins/importErrors").json()["import_errors"]
    assert [e for e in errors if "console" in e["source"]] == []
    plugin = plugins["govops_console"]
    assert [(a["name"], a["url_prefix"]) for a in plugin["fastapi_apps"]] == [("govops console", "/govops")]
    views = {v["url_route"]: v for v in plugin["external_views"]}
    assert views["govops"] | {} == views["govops"] and views["govops"]["nav_top_level"] is True
    assert views["govops"]["name"] == "计量结算"
    pages = sorted(r for r, v in views.items() if v.get("category") == "计量结算")
    assert pages == ["govops-event-orders", "govops-health", "govops-reports", "govops-statements",
                     "govops-unassigned", "govops-usage", "govops-work-orders"]  # fmt: skip
    assert plugin["global_operator_extra_links"] == ["<govops.console.links.ConsoleReportsLink object>"]
    assert views["govops-run-usage"]["destination"] == "dag_run"
    assert views["govops-run-usage"]["href"] == "/govops/runs/{DAG_ID}/{RUN_ID}"


def test_every_route_refuses_anonymous_callers_and_read_only_users_cannot_change_anything(server: Server) -> None:
    from fastapi.routing import APIRoute

    from govops.console.app import create_app

    routes = [r for r in create_app().routes if isinstance(r, APIRoute)]
    assert len(routes) >= 25
    posts = 0
    with server.client() as anonymous, server.client("viewer") as viewer, server.client("op") as op:
        for route in routes:
            path = "/govops" + re.sub(r"\{[^}]+\}", "x", route.path)
            for method in route.methods:
                reply = anonymous.request(method, path)
                assert reply.status_code == 401, (method, path, reply.status_code, reply.text)
                forged = anonymous.request(method, path, headers={"Authorization": "Bearer not-a-token"})
                assert forged.status_code in (401, 403), (method, path, forged.status_code)
                if method == "GET":  # a browser goes to the login page, and comes back afterwards
                    page = anonymous.get(path, headers={"Accept": "text/html"})
                    assert page.status_code == 303 and "/auth/login" in page.headers["location"], (path, page)
                else:
                    posts += 1
                    refused = viewer.request(method, path, data={"confirm": "x"})
                    assert refused.status_code == 403, (method, path, refused.status_code, refused.text)
        # An allowed user's cross-site form post (another Origin) is refused too.
        cross = op.post("/govops/unassigned/assign", data={"usage_event_id": "1", "work_order_id": "WO-C-01B"},
                        headers={"Origin": "http://evil.example"})  # fmt: skip
        assert cross.status_code == 403 and "cross-site" in cross.text
    assert posts == 8


def _ledger_usage(e: Engine) -> dict[tuple[str, str, str | None], int]:
    with e.connect() as conn:
        rows = conn.execute(text("""SELECT e.service_item_code, e.unit, coalesce(e.work_order_id, a.work_order_id),
                                           sum(e.quantity) FROM govops.usage_event e
                                      LEFT JOIN govops.usage_assignment a ON a.usage_event_id = e.id
                                     GROUP BY 1, 2, 3""")).all()  # fmt: skip
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def test_pages_and_their_json_twins_show_the_ledgers_figures(server: Server) -> None:
    with server.client("viewer") as c:
        usage = c.get("/govops/usage.json", params={"by": ["item", "work_order"]}).json()
        page = c.get("/govops/usage", params={"by": ["item", "work_order"]})
        events = c.get("/govops/usage/events.json", params={"work_order": "WO-C-01"}).json()
        statement = c.get(f"/govops/statements/{PERIOD}.json").json()
        statement_page = c.get(f"/govops/statements/{PERIOD}").text
        run = c.get("/govops/runs/console_probe/r3.json").json()
        run_page = c.get("/govops/runs/console_probe/r3").text
        orders = c.get("/govops/event-orders.json").json()["orders"]
        health = c.get("/govops/health.json")
        service_orders = c.get("/govops/work-orders.json").json()["service_orders"]
        index = c.get("/govops/").text
    assert page.status_code == 200 and "<style>" in page.text and "http" not in re.sub(r'href="[^"]*"', "", page.text)
    figures = {(r["item"], r["unit"], r["work_order"]): r["quantity"] for r in usage["rows"]}
    assert figures == _ledger_usage(server.ledger)
    assert usage["totals"] == {"record": 1_234_567 + 54_321 + 7_000, "table": 3}
    assert "1,234,567" in page.text and "1,295,888" in page.text  # thousands separators, the record total
    assert [(e["quantity"], e["department"], e["run_id"]) for e in events["rows"]] == [(1_234_567, "区公安局", "r2")]
    assert events["next_after"] is None

    # The statement: what `python -m govops.settlement show` prints, and the stored one.
    shown = subprocess.run([sys.executable, "-m", "govops.settlement", "show", PERIOD], capture_output=True, text=True,
                           env={**os.environ, "GOVOPS_DATABASE_URL": server.ledger_url}, check=True)  # fmt: skip
    cli = json.loads(shown.stdout)
    assert (statement["statement"]["content_hash"], statement["statement"]["totals"]) == (cli["content_hash"],
                                                                                         cli["totals"])  # fmt: skip
    stored = store.get_statement(server.ledger, PERIOD)
    assert stored is not None and stored["totals"] == statement["statement"]["totals"]
    [line] = statement["statement"]["lines"]
    [wo] = line["work_orders"]
    assert (line["service_order_id"], line["coefficient"], wo["raw_quantity"]) == ("SO-WO-C-04", "0.95", 3)
    assert sum(D(s["amount"]) for s in wo["tier_slices"]) == D(wo["tiered"])
    payable = D(stored["totals"]["payable"])
    gross = D(stored["totals"]["gross"])
    assert f"{gross:,.2f}" in statement_page and f"{payable:,.2f}" in statement_page
    assert stored["content_hash"] in statement_page

    assert [(r["task_id"], r["service_item_code"], r["quantity"], r["work_order_id"]) for r in run["rows"]] == [
        ("extract", "01", 54_321, None), ("label", "06", 7_000, None)]  # fmt: skip
    assert "54,321" in run_page and "本次计量" in run_page
    assert [(o["urgency"], o["title"]) for o in orders] == [("urgent", "共享接口中断"), ("low", "报表延迟")]
    assert health.status_code == 200 and set(health.json()["problems"]) >= {"failed", "stuck", "slow", "late"}
    delivered = {w["id"]: (w["quantity"], w["events"]) for so in service_orders for w in so["work_orders"]}
    assert {wo: delivered[wo] for wo in ("WO-C-01", "WO-C-04", "WO-C-06")} == {
        "WO-C-01": (1_234_567, 1), "WO-C-04": (3, 1), "WO-C-06": (0, 0)}  # fmt: skip
    assert "计量结算" in index and ">2<" in index  # two unassigned events


def test_the_metrics_endpoint_parses_and_holds_the_ledgers_figures(server: Server) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from prometheus_client.parser import text_string_to_metric_families
    from sqlalchemy import func, select

    with server.client("viewer") as c:
        reply = c.get("/govops/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(reply.text) for s in family.samples}  # fmt: skip

    def of(name: str) -> dict[tuple[str, ...], float]:  # label values in the order of their names
        return {tuple(v for _, v in labels): value for (n, labels), value in samples.items() if n == name}

    assert of("govops_usage_quantity") == {("2026-11", "01", "record"): 1_288_888, ("2026-11", "04", "table"): 3,
                                           ("2026-11", "06", "record"): 7_000}  # fmt: skip
    assert of("govops_usage_rows") == {("2026-11", "01", "record"): 2, ("2026-11", "04", "table"): 1,
                                       ("2026-11", "06", "record"): 1}  # fmt: skip
    assert of("govops_unassigned_usage_quantity") == {("01", "record"): 54_321, ("06", "record"): 7_000}
    assert of("govops_event_orders_open") == {("low",): 1, ("normal",): 0, ("urgent",): 1}
    with create_session() as session:
        ended = dict(session.execute(select(DagRun.dag_id, func.max(DagRun.end_date))
                                     .where(DagRun.state == "success", DagRun.end_date.is_not(None))
                                     .group_by(DagRun.dag_id)).all())  # fmt: skip
    ages = of("govops_last_successful_run_age_seconds")
    assert set(ages) == {(d,) for d in ended}
    now = datetime.now(UTC)
    for (dag_id,), age in ages.items():
        assert 0 <= (now - ended[dag_id]).total_seconds() - age < 60, dag_id


def test_reports_are_served_linked_from_their_task_instance_and_the_full_list_kept_to_the_owners_zone(
    server: Server,
) -> None:
    """The run's task publish gets the extra link 报告与数据文档, which opens the console's list
    of what it produced; each file is served from the lake. The full anomaly list goes to a
    user with a grant on the dataset or the admin role, each read audited; a viewer is
    refused it. Paths out of ``<lake>/reports/`` are refused, through ``..`` or a symlink."""
    run, full = RUN, f"/govops/quality/{server.check_run_id}/anomalies-full.csv"
    with server.client("admin") as admin, server.client("viewer") as viewer, server.client("wang.fang") as granted:
        created = admin.post("/api/v2/dags/console_reports/dagRuns", json={"dag_run_id": run, "logical_date": None})
        assert created.status_code == 200, created.text
        analytics_page = f"{server.lake.as_uri()}/reports/analytics/monthly/{run}/dashboard.html"
        (server.lake / f"reports/analytics/monthly/{run}").mkdir(parents=True)
        (server.lake / f"reports/analytics/monthly/{run}/dashboard.html").write_text("<h1>看板</h1>", encoding="utf-8")
        xcom = {"key": "return_value", "value": {"pages": {"overview": analytics_page}, "note": "/etc/passwd"}}
        assert admin.post(f"/api/v2/dags/console_reports/dagRuns/{run}/taskInstances/publish/xcomEntries",
                          json=xcom).status_code == 201  # fmt: skip

        # The extra link, as the UI asks for it: a console URL listing the task's files.
        links = viewer.get(f"/api/v2/dags/console_reports/dagRuns/{run}/taskInstances/publish/links").json()
        link = links["extra_links"]["报告与数据文档"]
        assert link == f"/govops/tasks/console_reports/{run}/publish", links
        listed = viewer.get(f"{link}.json").json()["artifacts"]
        hrefs = {a["title"].split(" ")[0]: a["href"] for a in listed}
        assert hrefs == {
            "质量报告": f"/files/reports/quality/persons/{run}/report.html",
            "异常数据清单（脱敏）CSV": f"/files/reports/quality/persons/{run}/anomalies.csv",
            "异常数据清单（脱敏）XLSX": f"/files/reports/quality/persons/{run}/anomalies.xlsx",
            "GX": "/files/reports/quality/data_docs/index.html",
            "异常数据清单（完整，数据所有方区）CSV": full.removeprefix("/govops"),
            "异常数据清单（完整，数据所有方区）XLSX": full.removeprefix("/govops").replace(".csv", ".xlsx"),
            "pages.overview:": f"/files/reports/analytics/monthly/{run}/dashboard.html",
        }  # fmt: skip
        assert "质量报告 persons" in viewer.get(f"{link}").text
        # The console's own list (报告与数据文档) has the same files of the check run.
        recorded = viewer.get("/govops/reports.json").json()["groups"]
        [mine] = [g for g in recorded["quality"] if g["run"] == f"console_reports / {run} / publish"]
        assert sorted(a["href"] for a in mine["artifacts"]) == sorted(
            h for t, h in hrefs.items() if not t.startswith("pages."))  # fmt: skip
        report = viewer.get("/govops" + hrefs["质量报告"])
        assert report.status_code == 200 and report.text == "<h1>质量报告 persons</h1>"
        assert report.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'self'" in report.headers["content-security-policy"]
        assert viewer.get("/govops" + hrefs["pages.overview:"]).text == "<h1>看板</h1>"
        assert "********" in viewer.get("/govops" + hrefs["异常数据清单（脱敏）CSV"]).text
        docs = viewer.get("/govops/files/reports/quality/data_docs")  # a folder: its page, links relative to it
        assert docs.status_code == 307 and docs.headers["location"] == "/govops/files/reports/quality/data_docs/"
        assert "Data Docs" in viewer.get(docs.headers["location"]).text
        assert viewer.get("/govops/files/reports/quality/data_docs/static/docs.css").text == "h1 { color: #333 }"
        # A task that recorded nothing: the link is there, disabled (no URL).
        empty = {"dag_run_id": f"{run}-empty", "logical_date": None}
        assert admin.post("/api/v2/dags/console_reports/dagRuns", json=empty).status_code == 200
        other = viewer.get(f"/api/v2/dags/console_reports/dagRuns/{run}-empty/taskInstances/publish/links").json()
        assert other["extra_links"] == {"报告与数据文档": None}

        # Nothing outside <lake>/reports/: not by .., encoded or not, nor through a symlink.
        for path in ("..%2Fsecret.txt", "%2e%2e/%2e%2e/secret.txt", "escape/secret.txt", "quality/%2e%2e/%2e%2e/..",
                     "%2Fetc%2Fpasswd", f"quality/persons/{run}/missing.html"):  # fmt: skip
            refused = viewer.get(f"/govops/files/reports/{path}")
            assert refused.status_code == 404 and "not a report" not in refused.text, (path, refused.status_code)
        assert (server.lake / "reports/escape/secret.txt").read_text() == "not a report"  # the symlink does lead out

        # The full list: refused to a viewer, served to the grant holder and to an admin, audited.
        refused = viewer.get(full)
        assert refused.status_code == 403 and "区公安分局" in refused.json()["detail"]
        assert FULL_ROW not in refused.text
        for client in (granted, admin):
            served = client.get(full)
            assert served.status_code == 200 and served.text == FULL_ROW, served.text
            assert "attachment" in served.headers["content-disposition"]
        assert viewer.get(full.replace(".csv", ".txt")).status_code == 404
    with server.ledger.connect() as conn:
        reads = conn.execute(text("""SELECT actor, details ->> 'allowed_by' FROM govops.security_audit_log
                                      WHERE action = 'console.anomalies.full' ORDER BY seq""")).all()  # fmt: skip
        used = conn.execute(text("SELECT last_access_at FROM govops.security_access_grant WHERE principal = :p"),
                            {"p": "wang.fang"})  # fmt: skip
    assert [(r[0], r[1].split(" ")[0]) for r in reads] == [("wang.fang", "grant"), ("admin", "role")]
    assert used.scalar() is not None  # the grant was used: the assessment's stale-access check sees it


def test_assign_accept_settle_verify_export_close_and_event_orders(server: Server) -> None:
    e = server.ledger
    json_ = {"Accept": "application/json"}
    with e.connect() as conn:
        queue = dict(conn.execute(text("SELECT service_item_code, id FROM govops.unassigned_usage_v1")).all())
        before = conn.execute(text("SELECT * FROM govops.usage_event ORDER BY id")).all()
    with server.client("viewer") as viewer, server.client("op") as op, server.client("admin") as admin:
        # Assign: refused to a viewer, and to a work order of another item; an op assigns.
        form = {"usage_event_id": str(queue["01"]), "work_order_id": "WO-C-01B"}
        assert viewer.post("/govops/unassigned/assign", data=form, headers=json_).status_code == 403
        wrong = op.post("/govops/unassigned/assign", data={**form, "work_order_id": "WO-C-04"}, headers=json_)
        assert wrong.status_code == 409 and "WORK_ORDER_REFUSED" in wrong.json()["detail"], wrong.text
        done = op.post("/govops/unassigned/assign", data=form, headers=json_)
        assert done.status_code == 200 and done.json()["assigned"] == [queue["01"]], done.text
        # Twice is refused; a browser is sent back to the page with the reason.
        browser_like = op.post("/govops/unassigned/assign", data=form, headers={"Accept": "text/html"})
        assert browser_like.status_code == 303
        reason = f"usage event {queue['01']} was already assigned to work order WO-C-01B"
        assert reason in unquote_plus(browser_like.headers["location"])
        unassigned = op.get("/govops/unassigned.json").json()["rows"]
        assert [r["service_item_code"] for r in unassigned] == ["06"]
        scraped = viewer.get("/govops/metrics").text  # the metrics' queue: the rollup less the assigned event
        assert 'govops_unassigned_usage_quantity{service_item="06",unit="record"} 7000.0' in scraped
        assert 'govops_unassigned_usage_quantity{service_item="01"' not in scraped
        # The usage page moves the assigned event from the queue to its work order.
        by = {"by": ["item", "work_order"]}
        usage = viewer.get("/govops/usage.json", params=by).json()["rows"]
        assert {(r["item"], r["unit"], r["work_order"]): r["quantity"] for r in usage} == _ledger_usage(e)
        assert ("01", "record", "WO-C-01B") in _ledger_usage(e) and ("01", "record", None) not in _ledger_usage(e)
        for work_order, expected in (("-", [("06", None, 7_000)]), ("WO-C-01B", [("01", "WO-C-01B", 54_321)])):
            rows = viewer.get("/govops/usage.json", params={**by, "work_order": work_order}).json()["rows"]
            assert [(r["item"], r["work_order"], r["quantity"]) for r in rows] == expected, work_order

        # Acceptance of the delivered service order (admin), then the draft re-settled (op).
        accept = {"quality_score": "92", "operator_opinion": "已交付", "purchaser_opinion": "同意",
                  "accepted_on": "2026-11-25"}  # fmt: skip
        assert op.post("/govops/service-orders/SO-WO-C-01/accept", data=accept, headers=json_).status_code == 403
        assert admin.post("/govops/service-orders/SO-WO-C-01/accept", data=accept, headers=json_).status_code == 200
        assert viewer.post(f"/govops/statements/{PERIOD}/settle", headers=json_).status_code == 403
        settled = op.post(f"/govops/statements/{PERIOD}/settle", headers=json_).json()
        statement = store.get_statement(e, PERIOD)
        assert statement is not None and settled["content_hash"] == statement["content_hash"]
        quantities = {w["work_order_id"]: w["raw_quantity"] for line in statement["lines"] for w in line["work_orders"]}
        assert quantities == {"WO-C-04": 3, "WO-C-01": 1_234_567}  # WO-C-01B's assigned usage: not accepted yet

        verified = viewer.get(f"/govops/statements/{PERIOD}/verify.json").json()
        assert verified["ok"] and verified["stored_hash"] == statement["content_hash"]
        exported = {fmt: viewer.get(f"/govops/statements/{PERIOD}/export.{fmt}") for fmt in ("csv", "json", "xlsx")}
        assert json.loads(exported["json"].content)["totals"] == statement["totals"]
        rows = csv.DictReader(io.StringIO(exported["csv"].content.decode("utf-8-sig")))
        assert {r["note"]: r["amount"] for r in rows if r["kind"] == "total"} == statement["totals"]
        assert exported["xlsx"].content[:2] == b"PK"
        evidence = viewer.get("/govops/work-orders/WO-C-01/evidence.json").json()
        assert sum(u["quantity"] for u in evidence["usage_events"]) == 1_234_567

        # Close: refused to an op, refused without the confirmation, closed by an admin with
        # an audit entry; a closed period is never recomputed.
        assert op.post(f"/govops/statements/{PERIOD}/close", data={"confirm": PERIOD}, headers=json_).status_code == 403
        unconfirmed = admin.post(f"/govops/statements/{PERIOD}/close", data={"confirm": "yes"}, headers=json_)
        assert unconfirmed.status_code == 422
        closed = admin.post(f"/govops/statements/{PERIOD}/close", data={"confirm": PERIOD}, headers=json_)
        assert closed.status_code == 200, closed.text
        again = op.post(f"/govops/statements/{PERIOD}/settle", headers=json_)
        assert again.status_code == 409 and "PERIOD_CLOSED" in again.json()["detail"]

        # Event orders: acknowledged and resolved by an op, evaluated by an admin only.
        number = next(o["id"] for o in op.get("/govops/event-orders.json").json()["orders"] if o["urgency"] == "urgent")
        assert viewer.post(f"/govops/event-orders/{number}/acknowledge", headers=json_).status_code == 403
        assert op.post(f"/govops/event-orders/{number}/acknowledge", data={"estimated_workload": "2"},
                       headers=json_).status_code == 200  # fmt: skip
        assert op.post(f"/govops/event-orders/{number}/resolve", data={"resolution": "重启接口服务"},
                       headers=json_).status_code == 200  # fmt: skip
        evaluation = {"operator_opinion": "已恢复", "purchaser_opinion": "认可"}
        assert op.post(f"/govops/event-orders/{number}/evaluate", data=evaluation, headers=json_).status_code == 403
        assert admin.post(f"/govops/event-orders/{number}/evaluate", data=evaluation, headers=json_).status_code == 200

    with e.connect() as conn:
        assert conn.execute(text("SELECT * FROM govops.usage_event ORDER BY id")).all() == before  # never edited
        assert conn.execute(text("SELECT state FROM govops.settlement_period WHERE id = :p"), {"p": PERIOD}).scalar() \
            == "closed"  # fmt: skip
        audit = conn.execute(
            text("""SELECT actor, action, details FROM govops.security_audit_log
                                      WHERE action LIKE 'console.%' AND action <> 'console.anomalies.full'
                                      ORDER BY seq""")
        ).all()  # the other test's reads and grant aside
        state = conn.execute(text("SELECT state, acknowledged_by, resolved_by, evaluated_by FROM govops.event_order "
                                  "WHERE id = :n"), {"n": number}).one()  # fmt: skip
    assert [(a.actor, a.action) for a in audit] == [
        ("op", "console.usage.assign"), ("admin", "console.service_order.accept"), ("op", "console.statement.settle"),
        ("admin", "console.period.close"), ("op", "console.event_order.acknowledge"),
        ("op", "console.event_order.resolve"), ("admin", "console.event_order.evaluate")]  # fmt: skip
    assert audit[3].details["content_hash"] == closed.json()["content_hash"]
    assert tuple(state) == ("evaluated", "op", "op", "admin")


@pytest.mark.browser
def test_the_pages_inside_the_airflow_ui_in_chromium(server: Server, tmp_path: Path) -> None:
    """An anonymous visit lands on the login page; with the UI's cookie the usage and
    statement pages open inside the Airflow UI with the ledger's figures, a statement is
    verified with a click, and no request leaves the machine."""
    host = urlparse(server.base).hostname

    def steps(page: Page, traffic: Traffic) -> Traffic:
        frame = page.frame_locator("iframe")  # the plugin's page inside the Airflow UI

        def frame_text(selector: str, must_contain: str) -> str:
            """The text of ``selector`` inside the iframe, once it contains ``must_contain``."""
            found = frame.locator(selector).first
            expect(found).to_contain_text(must_contain, timeout=30_000)
            return found.inner_text()

        def log_in(user: str) -> None:
            page.context.add_cookies([{"name": "_token", "value": server.tokens[user], "url": f"{server.base}/"}])

        page.goto(f"{server.base}/govops/usage")
        page.wait_for_url(re.compile("/auth/login"))

        log_in("viewer")
        totals = _ledger_usage(server.ledger)
        by = "by=period&by=item&by=work_order&by=department"
        page.goto(f"{server.base}/plugin/govops-usage/govops/usage?{by}")
        table = frame_text("#usage", "合计")
        cells = [line.split("\t") for line in table.splitlines()]
        for (item, unit, work_order), quantity in totals.items():  # columns: period, item, work order, dept, unit, qty
            [row] = [c for c in cells if c[1].startswith(item) and c[2] == (work_order or "未分配") and c[4] == unit]
            assert row[5] == f"{quantity:,}", (row, quantity)
        page.screenshot(path=tmp_path / "usage.png")
        assert_screenshot_not_blank(tmp_path / "usage.png")

        stored = store.get_statement(server.ledger, PERIOD)
        assert stored is not None
        page.goto(f"{server.base}/plugin/govops-statements/govops/statements/{PERIOD}")
        totals_text = frame_text("#totals", "本期应付")
        assert f"{D(stored['totals']['payable']):,.2f}" in totals_text
        assert f"{D(stored['totals']['gross']):,.2f}" in totals_text
        page.screenshot(path=tmp_path / "statement.png")
        frame.locator("#verify").click()
        assert "通过" in frame_text("#verify-result", "通过")
        # The outer URL follows the iframe: the verification can be linked to.
        expect(page).to_have_url(re.compile(f"/plugin/govops-statements/govops/statements/{PERIOD}/verify"))

        # An op assigns the item-06 row from the unassigned queue: picks the work order, clicks.
        log_in("op")
        page.goto(f"{server.base}/plugin/govops-unassigned")
        assert "7,000" in frame_text("#unassigned", "WO-C-06")
        form = frame.locator("form.assign", has=frame.locator("option", has_text="WO-C-06"))  # one row: strict
        form.locator("select[name=work_order_id]").select_option("WO-C-06")
        form.locator("button").click()
        assert "1 usage event(s) assigned to WO-C-06" in frame_text(".flash", "WO-C-06")
        assert "7,000" not in frame_text("#unassigned", "分配到工单")
        page.screenshot(path=tmp_path / "assigned.png")

        # An op is offered no close; an admin closes the next period, typing its id to confirm.
        with contextlib.suppress(store.PeriodClosed):  # closed already when the flows above ran
            store.close(server.ledger, PERIOD)
        with server.ledger.begin() as conn:
            store.add_period(conn, NEXT, "monthly", date(2026, 12, 1), date(2026, 12, 31))
            store.record_assessment(conn, NEXT, D("95"), D("90"))
        store.settle(server.ledger, NEXT)
        page.goto(f"{server.base}/plugin/govops-statements/govops/statements/{NEXT}")
        assert "草稿" in frame_text("h1", NEXT)
        assert frame.locator("#close").count() == 0
        log_in("admin")
        page.reload()
        frame_text("#close", "关闭周期")
        frame.locator("#close-form input[name=confirm]").fill(NEXT)
        frame.locator("#close").click()
        assert "已关闭" in frame_text("h1", "已关闭")
        assert f"{NEXT} closed (audit entry" in frame_text(".flash", "closed")
        page.screenshot(path=tmp_path / "closed.png")
        return traffic

    traffic = in_browser(steps)
    leaving = [u for u in traffic.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname != host]  # fmt: skip
    assert leaving == [] and traffic.blocked == []
    assert any("/govops/statements/" in u for u in traffic.requests)


_LEDGER_SUMS = """SELECT period, service_item_code, unit, work_order_id, department, count(*), sum(quantity),
                         coalesce(sum(records), 0), count(records)
                    FROM govops.usage_event GROUP BY 1, 2, 3, 4, 5"""
_ROLLUP = """SELECT period, service_item_code, unit, work_order_id, department, events, quantity, records,
                    records_events FROM govops.usage_rollup"""


def test_the_usage_rollup_the_pages_and_metrics_read_stays_equal_to_the_ledger() -> None:
    """Every way rows reach the ledger (record_usage batches and their replays, concurrent
    writers, a plain INSERT, COPY) moves the rollup with them in the same transaction, a
    rolled-back insert leaves it as it was, and it refuses every other write."""
    import threading

    import psycopg
    from sqlalchemy.exc import DBAPIError

    from govops.console import queries

    gen = own_ledger()
    e = next(gen)
    try:
        for wo, item in (("WO-R-01", "01"), ("WO-R-02", "01")):
            ensure_demo_work_order(e, wo, item, on=date(2026, 11, 1))

        def events(run: str, n: int) -> list[UsageEvent]:
            return [UsageEvent(task=TaskRef("rollup", run, "t", i), service_item_code="01", unit="record",
                               quantity=7 * i, work_order_id=(None, "WO-R-01", "WO-R-02")[i % 3],
                               event_time=datetime(2026, 10 + i % 2, 5, tzinfo=UTC),
                               records=None if i % 5 == 0 else i, department=(None, "区民政局")[i % 2])
                    for i in range(n)]  # fmt: skip

        record_usage(e, events("a", 120))
        record_usage(e, events("a", 200))  # a replay: only the 80 new rows are added
        writers = [threading.Thread(target=record_usage, args=(e, events(f"w{k}", 300))) for k in range(4)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        with e.begin() as conn:
            conn.execute(text("""INSERT INTO govops.usage_event (service_item_code, quantity, unit, records,
                                     work_order_id, period, dag_id, run_id, task_id, map_index, event_time)
                                 SELECT '01', g, 'record', NULL, 'WO-R-02', DATE '2026-11-01', 'rollup', 'sql',
                                        't', g, TIMESTAMPTZ '2026-11-02 10:00+08'
                                   FROM generate_series(1, 500) g"""))  # fmt: skip
        copy = """COPY govops.usage_event (service_item_code, quantity, unit, records, work_order_id, department,
                      period, dag_id, run_id, task_id, map_index, event_time) FROM STDIN"""
        with psycopg.connect(e.url.render_as_string(hide_password=False)) as raw, raw.cursor() as cur, \
                cur.copy(copy) as cp:  # fmt: skip
            for i in range(1000):
                cp.write_row(("01", i, "record", i, None, "区民政局", date(2026, 11, 1), "rollup", "copy", "t", i,
                              datetime(2026, 11, 3, tzinfo=UTC)))  # fmt: skip
        with contextlib.suppress(RuntimeError), e.begin() as conn:  # rolled back: no trace in either
            record = (
                "INSERT INTO govops.usage_event (service_item_code, quantity, unit, period, dag_id, run_id, "
                "task_id, event_time) VALUES ('01', 99, 'record', DATE '2026-11-01', 'x', 'y', 'z', now())"
            )
            conn.execute(text(record))
            raise RuntimeError("rolled back")

        with e.connect() as conn:
            ledger = sorted(map(tuple, conn.execute(text(_LEDGER_SUMS)).all()), key=str)
            rollup = sorted(map(tuple, conn.execute(text(_ROLLUP)).all()), key=str)
            assert conn.execute(text("SELECT count(*) FROM govops.usage_event")).scalar() == 200 + 1200 + 500 + 1000
            assert rollup == ledger and len(rollup) == 7
            # The usage page's figures: through the rollup, and straight from the ledger (a run filter).
            everything = queries.usage_summary(conn, queries.UsageFilter())
            runs = ("a", "w0", "w1", "w2", "w3", "sql", "copy")
            by_run = [r for run in runs for r in queries.usage_summary(conn, queries.UsageFilter(run_id=run))]
            merged: dict[tuple[Any, ...], list[int]] = {}
            for r in by_run:
                key = (r["period"], r["item"], r["work_order"], r["department"], r["unit"])
                current = merged.setdefault(key, [0, 0, 0])
                current[0] += r["quantity"]
                current[1] += r["records"] or 0
                current[2] += r["events"]
            assert {(r["period"], r["item"], r["work_order"], r["department"], r["unit"]):
                    [r["quantity"], r["records"] or 0, r["events"]] for r in everything} == merged  # fmt: skip
        for refused in ("UPDATE govops.usage_rollup SET events = 0", "DELETE FROM govops.usage_rollup",
                        "TRUNCATE govops.usage_rollup",
                        "INSERT INTO govops.usage_rollup VALUES (DATE '2026-11-01', '01', 'record', NULL, NULL, 1, 1, "
                        "0, 0)"):  # fmt: skip
            with pytest.raises(DBAPIError, match=r"usage_rollup|truncate"), e.begin() as conn:
                conn.execute(text(refused))
    finally:
        next(gen, None)


def test_job_health_lists_what_the_monitoring_pass_detected(server: Server) -> None:
    """(Last: the orders it opens would change the other tests' figures.) A monitoring pass
    (govops.ops.health, as the ops_job_health DAG runs it) over a run
    queued for three days and an import error: the page lists every order it opened, each
    under its kind, with no rule of its own."""
    from datetime import timedelta

    from govops.ops import health

    now = datetime.now(UTC)
    queued = now - timedelta(days=3)
    run = {"dag_id": "console_probe", "dag_run_id": "scheduled__late", "state": "queued", "run_type": "scheduled",
           "logical_date": (queued - timedelta(days=1)).isoformat(),
           "data_interval_start": (queued - timedelta(days=1)).isoformat(), "data_interval_end": queued.isoformat(),
           "queued_at": queued.isoformat(), "start_date": None, "end_date": None, "conf": {}}  # fmt: skip
    snapshot = health.Snapshot(
        taken_at=now, dag_runs=[run],
        dags=[{"dag_id": "console_probe", "is_paused": False, "is_stale": False, "tags": [{"name": "item:04"}]}],
        import_errors=[{"import_error_id": 1, "filename": "/dags/console_broken.py", "bundle_name": "dags-folder",
                        "timestamp": now.isoformat(), "stack_trace": "SyntaxError: invalid syntax"}],
    )  # fmt: skip
    found = health.detect(snapshot)
    with server.ledger.begin() as conn:
        health.apply(conn, found, now)
    assert {p.kind for p in found.problems} == {"late", "stuck", "import_error"}
    with server.client("viewer") as c:
        listed = c.get("/govops/health.json").json()
        page = c.get("/govops/health").text
    for p in found.problems:
        assert [o["title"] for o in listed["problems"][p.kind]] == [p.title], p.kind
        assert p.title in page
    assert "ops_job_health" in page  # the monitoring pass's last run, or the warning that it never ran
