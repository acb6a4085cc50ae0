"""The govops console plugin (计量结算): usage, statements, work orders, event orders and job
health, reports and data docs as pages inside the Airflow UI, served by a FastAPI app under ``/govops`` that
requires Airflow's authentication (``govops.console``)."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from govops.console import URL_PREFIX, app
from govops.console.links import ConsoleReportsLink

CATEGORY = "计量结算"
# (url_route, name, path): each opens at /plugin/<url_route> in the UI, its page in an iframe.
PAGES = (
    ("govops-usage", "用量", "/usage"),
    ("govops-unassigned", "未分配用量", "/unassigned"),
    ("govops-statements", "结算单", "/statements"),
    ("govops-work-orders", "服务单与工单", "/work-orders"),
    ("govops-event-orders", "事件单", "/event-orders"),
    ("govops-health", "作业健康", "/health"),
    ("govops-reports", "报告与数据文档", "/reports"),
)


class GovopsConsolePlugin(AirflowPlugin):
    name = "govops_console"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": app, "url_prefix": URL_PREFIX, "name": "govops console"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        # The top-level entry of the navigation bar: the console's overview.
        {"name": CATEGORY, "href": f"{URL_PREFIX}/", "url_route": "govops", "destination": "nav",
         "nav_top_level": True},
        # The pages, grouped under the category in the plugins menu.
        *({"name": name, "href": f"{URL_PREFIX}{path}", "url_route": route, "destination": "nav",
           "category": CATEGORY} for route, name, path in PAGES),
        # A tab on every DAG run: what that run metered.
        {"name": "本次计量", "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}", "url_route": "govops-run-usage",
         "destination": "dag_run"},
    ]  # fmt: skip
    # On every task instance: the reports and data docs it produced, served by the console.
    global_operator_extra_links: ClassVar[list[Any]] = [ConsoleReportsLink()]
