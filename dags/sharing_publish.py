"""
### 数据共享/开放/服务 · Publish an interface set (item 12, 1 组)

Publishes one interface set of `include/apis/<set>.yaml` (param `set`) served by the
running sharing API server (`./dev serve`; `GOVOPS_API_URL` or param `api_url`):

1. **validate**: the spec, the dataset's published version, the server serving this very
   spec, and the work order (param `work_order_id`, default the spec's `work_order`).
2. **document**: the OpenAPI document (equal to the server's `/openapi.json`) and the
   interface documentation page (also served by the server at `/docs/<set>`).
3. **test_interfaces**: every parameter of every interface at its valid, boundary and wrong
   values, the set's examples and a second page, over HTTP; the interface test report
   (HTML, XLSX). A failed case stops the run here.
4. **register**: the API list (`govops.api_set`) and the data list (`govops.api_resource`,
   资源信息: open state, open time) and their files; item 12 metered once per set (1 组),
   never again when the set is published again.
5. **cascade**: the set's catalog registration (注册 / 变更) reported to the upstream
   platforms its spec lists in `cascade` (none: nothing to do); a refusal stops the run,
   an unreachable platform is retried.

Files under `<lake>/reports/sharing/`. Logic: `govops.sharing.publish`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, fail_fast, service_tags


def _engine():  # -> sqlalchemy.Engine
    from sqlalchemy import create_engine

    from govops import settings

    return create_engine(settings.connection_url(settings.LEDGER_CONN_ID))


def _lake() -> str:
    from govops import settings

    return settings.lake_root()


with DAG(
    dag_id="sharing_publish",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("12"),
    default_args=default_args(),
    params={
        "set": Param(
            "legal_persons",
            type="string",
            pattern=r"^[a-z][a-z0-9_]{1,62}$",
            description="the set: include/apis/<set>.yaml",
        ),
        "work_order_id": Param(
            None,
            type=["null", "string"],
            description="工单 item 12 is metered against (default: the spec's work_order)",
        ),
        "api_url": Param(
            None,
            type=["null", "string"],
            description="the running API server (default: GOVOPS_API_URL, else 127.0.0.1:8090)",
        ),
    },
):

    @task
    def validate(params: dict | None = None) -> dict:
        from govops.sharing import publish

        params = params or {}
        engine = _engine()
        try:
            with fail_fast():  # a bad spec, an unpublished dataset, a refused work order need a person
                validated = publish.validate(engine, _lake(), params["set"], params.get("work_order_id"),
                                             params.get("api_url") or publish.api_url())  # fmt: skip
        finally:
            engine.dispose()
        if validated["note"]:
            print(validated["note"])
        return validated

    @task
    def document(validated: dict, run_id: str | None = None) -> dict:
        from govops.sharing import publish

        with fail_fast():
            return publish.document(_lake(), validated, run_id or "")

    @task
    def test_interfaces(validated: dict, documented: dict, run_id: str | None = None) -> dict:
        from govops.sharing import publish

        engine = _engine()
        try:
            tested = publish.test_interfaces(engine, _lake(), validated, documented, run_id or "")
        finally:
            engine.dispose()
        print(f"interface tests: {tested['passed']} of {tested['total']} passed; report {tested['report_uri']}")
        with fail_fast():
            publish.require_passed(tested)
        return tested

    @task
    def register(validated: dict, documented: dict, tested: dict, run_id: str | None = None,
                 ti: Any = None) -> dict:  # fmt: skip
        from govops.sharing import publish

        engine = _engine()
        try:
            with fail_fast():
                result = publish.register(engine, _lake(), validated, documented, tested, run_id=run_id or "",
                                          try_number=getattr(ti, "try_number", None))  # fmt: skip
        finally:
            engine.dispose()
        print(f"{result['set']}: {result['billing']}, usage event {result['usage_event_id']}")
        return result

    @task
    def cascade(validated: dict, registered: dict) -> list:
        from govops.sharing import publish

        engine = _engine()
        try:
            with fail_fast():  # a refusal or a bad platform config needs a person; unreachable: retried
                sent = publish.cascade(engine, _lake(), validated)
        finally:
            engine.dispose()
        for item in sent:
            print(f"{item['platform']}: {item['action']} {item['outcome']} (message {item['message_id']})")
        return sent

    validated = validate()
    documented = document(validated)
    tested = test_interfaces(validated, documented)
    cascade(validated, register(validated, documented, tested))
