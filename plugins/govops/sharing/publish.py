"""Publishing an interface set (数据共享/开放/服务, item 12): the steps of the sharing_publish DAG.

1. :func:`validate`: the spec validates, its dataset has a published version, the running
   API server serves this very spec (same SHA-256; a changed file needs a server restart),
   and, unless the set was metered before, the work order is open for item 12 in 组.
2. :func:`document`: the set's OpenAPI document, compared with the server's
   ``/openapi.json`` (they must be equal), and the interface documentation page.
3. :func:`test_interfaces`: the interface tests against the running server
   (govops.sharing.interface_tests) with a test caller's one-day key, revoked afterwards,
   and the interface test report. A failed case fails the run: nothing is registered or
   metered.
4. :func:`register`: the set in ``govops.api_set`` (the API list; ``govops.api_resource``,
   the data list 资源信息, is a view over it and the data catalog) with its open state and
   open time, and item 12 metered once: 1 组 against the work order, as the ledger row of
   run ``deliverable:<set>``, task ``deliver``. A set is one deliverable whatever runs
   publish it again (a new spec, a new data version, another work order): those runs update
   the registry and meter nothing. Then the API list and the data list files.

Files: ``<lake>/reports/sharing/<set>/<run>/`` (``openapi.json``, ``interface_doc.html``,
``test_report.html``, ``test_report.xlsx``) and ``<lake>/reports/sharing/`` (``api_list``
and ``resources``, ``.xlsx`` and ``.csv`` with a BOM).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.sharing.callers import TEST_CALLER
from govops.sharing.spec import ApiSetSpec, LoadedSet, apis_dir, check_catalog, load_set

DAG_ID = "sharing_publish"
ITEM, UNIT = "12", "api_set"
DELIVER_TASK = "deliver"


class PublishRefused(CodedError, ValueError):
    code = "PUBLISH_REFUSED"


class InterfaceTestsFailed(CodedError):
    code = "INTERFACE_TESTS_FAILED"


def api_url() -> str:
    """The running API server: GOVOPS_API_URL, else 127.0.0.1 on GOVOPS_API_PORT (8090)."""
    return os.environ.get("GOVOPS_API_URL") or f"http://127.0.0.1:{os.environ.get('GOVOPS_API_PORT', '8090')}"


def deliverable_run_id(set_name: str) -> str:
    """The ledger run id of a set's one billed event."""
    return f"deliverable:{set_name}"


def report_folder(lake_root: str, set_name: str, run_id: str) -> str:
    from govops.spark.manifest import _safe

    return f"{lake_root.rstrip('/')}/reports/sharing/{set_name}/{_safe(run_id)}"


def _load(set_name: str) -> LoadedSet:
    path = apis_dir() / f"{set_name}.yaml"
    if not path.is_file():
        raise PublishRefused(f"set {set_name!r}: no spec {path}")
    return load_set(path)  # SPEC_INVALID names the file and the field


def _validated_spec(validated: dict[str, Any]) -> ApiSetSpec:
    """The spec that validate checked: refused if its file changed since."""
    loaded = _load(validated["set"])
    if loaded.sha256 != validated["spec_sha256"]:
        raise PublishRefused(f"{loaded.path} changed during the publication: publish it again")
    return loaded.spec


def _registered(conn: Connection, set_name: str, lock: bool = False) -> Any:
    sql = "SELECT * FROM govops.api_set WHERE set_name = :s" + (" FOR UPDATE" if lock else "")
    return conn.execute(text(sql), {"s": set_name}).mappings().first()


def validate(engine: Engine, lake_root: str, set_name: str, work_order_id: str | None, url: str) -> dict[str, Any]:
    import httpx

    from govops.settlement.workorders import check_runnable
    from govops.sharing.versions import VersionResolver

    loaded = _load(set_name)
    spec = loaded.spec
    check_catalog(engine, loaded)
    if spec.cascade:
        from govops.sharing.cascade import check_platforms

        check_platforms(spec, loaded.path)
    version = VersionResolver(lake_root).resolve(spec.dataset)  # DATASET_UNAVAILABLE when not published
    with engine.connect() as conn:
        before = _registered(conn, spec.set)
    metered = before is not None and before["usage_event_id"] is not None
    work_order = work_order_id or spec.work_order
    if not metered:
        if work_order is None:
            raise PublishRefused(f"set {spec.set}: no work order (param work_order_id, or work_order in {loaded.path})")
        check_runnable(engine, work_order, ITEM, UNIT)
    try:
        served = httpx.get(f"{url}/api/sets", timeout=30).json()["sets"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise PublishRefused(f"the API server at {url} does not answer /api/sets ({type(exc).__name__}): "
                             "start it (./dev serve) or set GOVOPS_API_URL") from None  # fmt: skip
    found = next((s for s in served if s["set"] == spec.set), None)
    if found is None:
        raise PublishRefused(f"the API server at {url} does not serve set {spec.set}: it reads the specs when it "
                             "starts; restart it")  # fmt: skip
    if found.get("spec_sha256") != loaded.sha256:
        served_sha = str(found.get("spec_sha256"))[:12]
        raise PublishRefused(f"the API server at {url} serves another version of {loaded.path} (sha256 "
                             f"{served_sha}, the file {loaded.sha256[:12]}): restart it")  # fmt: skip
    note = ""
    if metered and work_order_id and work_order_id != before["work_order_id"]:
        note = (f"set {spec.set} was metered against work order {before['work_order_id']}; publishing it again "
                f"meters nothing, also not against {work_order_id}")  # fmt: skip
    return {"set": spec.set, "spec_sha256": loaded.sha256, "dataset_version": version.version_id,
            "work_order_id": None if metered else work_order, "metered_before": metered, "api_url": url,
            "note": note}  # fmt: skip


def _write(folder: str, files: dict[str, Callable[[Path], None]]) -> dict[str, str]:
    """Write each file locally with its writer, then copy them into the lake folder; their URIs."""
    from pyarrow import fs as pafs

    with tempfile.TemporaryDirectory() as tmp:
        for name, writer in files.items():
            writer(Path(tmp) / name)
        filesystem, base = pafs.FileSystem.from_uri(folder)
        filesystem.create_dir(base, recursive=True)
        pafs.copy_files(tmp, base, destination_filesystem=filesystem)
    return {name: f"{folder}/{name}" for name in files}


def document(lake_root: str, validated: dict[str, Any], run_id: str) -> dict[str, Any]:
    import httpx

    from govops.sharing import docs

    spec = _validated_spec(validated)
    url = validated["api_url"]
    doc = docs.openapi_document([spec])
    paths = docs.set_paths(doc, spec.set)
    served = docs.set_paths(httpx.get(f"{url}/openapi.json", timeout=30).json(), spec.set)
    if served != paths:
        differ = sorted(p for p in set(paths) | set(served) if paths.get(p) != served.get(p))
        raise PublishRefused(f"set {spec.set}: the server's /openapi.json differs from the spec's at {differ}")
    page = docs.render_page(doc, [spec], base_url=url)
    written = _write(report_folder(lake_root, spec.set, run_id), {
        "openapi.json": lambda p: p.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8"),
        "interface_doc.html": lambda p: p.write_text(page, encoding="utf-8"),
    })  # fmt: skip
    return {"openapi_sha256": docs.document_sha256(paths), "interfaces": sorted(paths), "openapi": doc,
            "docs_uri": written["interface_doc.html"], "openapi_uri": written["openapi.json"]}  # fmt: skip


def _test_key(engine: Engine, spec: ApiSetSpec) -> str:
    """A one-day key of the test caller (a department without roles: masking applies), with
    an approved application when the set is conditional."""
    from govops.sharing import callers

    callers.add_caller(engine, TEST_CALLER, "接口测试 (sharing_publish)", "department", "govops", [])
    if spec.open_type == "有条件开放":
        with engine.connect() as conn:
            approved = conn.execute(text("""SELECT 1 FROM govops.api_application WHERE caller_id = :c
                                            AND set_name = :s AND status = 'approved'"""),
                                    {"c": TEST_CALLER, "s": spec.set}).first()  # fmt: skip
        if approved is None:
            application = callers.apply(engine, TEST_CALLER, spec.set, "interface tests of the publishing DAG")
            callers.decide(engine, application, True, DAG_ID)
    return callers.issue_key(engine, TEST_CALLER, days=1)


def test_interfaces(engine: Engine, lake_root: str, validated: dict[str, Any], documented: dict[str, Any],
                    run_id: str) -> dict[str, Any]:  # fmt: skip
    from govops.sharing import callers
    from govops.sharing import interface_tests as it

    spec = _validated_spec(validated)
    key = _test_key(engine, spec)
    try:
        results = it.run(validated["api_url"], key, it.cases(documented["openapi"], spec))
    finally:
        callers.revoke_key(engine, key.split(".")[0], "interface tests done")
    meta = {"服务地址": validated["api_url"], "数据版本": validated["dataset_version"],
            "规格 SHA-256": validated["spec_sha256"][:16], "运行": run_id,
            "测试时间": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    written = _write(report_folder(lake_root, spec.set, run_id), {
        "test_report.html": lambda p: p.write_text(it.render_html(spec, results, meta), encoding="utf-8"),
        "test_report.xlsx": lambda p: it.write_xlsx(p, spec, results, meta),
    })  # fmt: skip
    return {**it.summary(results), "report_uri": written["test_report.html"], "xlsx_uri": written["test_report.xlsx"],
            "failures": [f"{c.interface} {c.parameter}={c.params.get(c.parameter, '')}: {c.detail}"
                         for c in results if not c.passed][:20]}  # fmt: skip


def require_passed(tested: dict[str, Any]) -> None:
    if tested["failed"]:
        raise InterfaceTestsFailed(f"{tested['failed']} of {tested['total']} interface test(s) failed (report "
                                   f"{tested['report_uri']}): " + "; ".join(tested["failures"]))  # fmt: skip


def register(engine: Engine, lake_root: str, validated: dict[str, Any], documented: dict[str, Any],
             tested: dict[str, Any], *, run_id: str, try_number: int | None = None,
             now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """The registry row and the metering, in one transaction; then the two lists."""
    from govops.ledger.usage import TaskRef, UsageEvent, record_usage

    require_passed(tested)
    now = now or datetime.now(UTC)
    spec = _validated_spec(validated)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{DAG_ID}|{spec.set}"})
        before = _registered(conn, spec.set, lock=True)
        usage_event_id = before["usage_event_id"] if before else None
        work_order = before["work_order_id"] if before else None
        billing = "republication"
        if usage_event_id is None:
            work_order = validated["work_order_id"]
            if work_order is None:
                raise PublishRefused(f"set {spec.set}: no work order to meter item {ITEM} against")
            task = TaskRef(DAG_ID, deliverable_run_id(spec.set), DELIVER_TASK, -1, try_number)
            record_usage(conn, [UsageEvent(
                task=task, service_item_code=ITEM, quantity=1, unit=UNIT, event_time=now, work_order_id=work_order,
                data_source=f"api_set/{spec.set}", manifest_uri=tested["report_uri"],
                attributes={"run_id": run_id, "spec_sha256": validated["spec_sha256"],
                            "dataset_version": validated["dataset_version"], "tests": tested["total"]},
            )])  # fmt: skip
            usage_event_id = conn.execute(text("""SELECT id FROM govops.usage_event WHERE dag_id = :d AND run_id = :r
                                                  AND task_id = :t AND data_source = :s"""),
                                          {"d": DAG_ID, "r": task.run_id, "t": DELIVER_TASK,
                                           "s": f"api_set/{spec.set}"}).scalar_one()  # fmt: skip
            billing = "delivery"
        event = "published" if before is None else "reopened" if before["open_state"] == "closed" else "republished"
        conn.execute(text("""
            INSERT INTO govops.api_set (set_name, title, dataset, catalog_dataset, open_type, spec_sha256,
                dataset_version, openapi_sha256, interfaces, open_state, opened_at, published_at, publish_run_id,
                publications, tests_passed, tests_total, docs_uri, report_uri, work_order_id, usage_event_id)
            VALUES (:s, :title, :dataset, :catalog, :open_type, :sha, :version, :oas, :interfaces, 'open', :now, :now,
                    :run, 1, :passed, :total, :docs, :report, :wo, :usage)
            ON CONFLICT (set_name) DO UPDATE SET title = :title, dataset = :dataset, catalog_dataset = :catalog,
                open_type = :open_type, spec_sha256 = :sha, dataset_version = :version, openapi_sha256 = :oas,
                interfaces = :interfaces, open_state = 'open', published_at = :now, publish_run_id = :run,
                opened_at = CASE WHEN govops.api_set.open_state = 'closed' THEN :now ELSE govops.api_set.opened_at END,
                closed_at = NULL, closed_reason = NULL,
                publications = govops.api_set.publications
                    + (CASE WHEN govops.api_set.publish_run_id = :run THEN 0 ELSE 1 END),
                tests_passed = :passed, tests_total = :total, docs_uri = :docs, report_uri = :report,
                work_order_id = :wo, usage_event_id = :usage"""),
            {"s": spec.set, "title": spec.title, "dataset": spec.dataset, "catalog": spec.catalog,
             "open_type": spec.open_type, "sha": validated["spec_sha256"], "version": validated["dataset_version"],
             "oas": documented["openapi_sha256"], "interfaces": documented["interfaces"], "now": now, "run": run_id,
             "passed": tested["passed"], "total": tested["total"], "docs": documented["docs_uri"],
             "report": tested["report_uri"], "wo": work_order, "usage": usage_event_id})  # fmt: skip
        _event(conn, spec.set, event, now, run_id)
    lists = write_lists(engine, lake_root)
    return {"set": spec.set, "billing": billing, "usage_event_id": usage_event_id, "work_order_id": work_order,
            **lists}  # fmt: skip


def _event(conn: Connection, set_name: str, event: str, at: datetime, by: str, reason: str | None = None) -> None:
    """One line of the set's history; a retried run that already wrote its line writes none."""
    last = conn.execute(text("SELECT event, by_whom FROM govops.api_set_event WHERE set_name = :s ORDER BY id DESC "
                             "LIMIT 1"), {"s": set_name}).first()  # fmt: skip
    if last is not None and event != "closed" and last.by_whom == by:
        return
    conn.execute(text("""INSERT INTO govops.api_set_event (set_name, event, at, by_whom, reason)
                         VALUES (:s, :e, :at, :by, :r)"""),
                 {"s": set_name, "e": event, "at": at, "by": by, "r": reason})  # fmt: skip


def close(engine: Engine, lake_root: str, set_name: str, reason: str, by: str,
          now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """Close (关闭) a published set: the API list and the data list show it closed and when,
    and the server answers its interfaces 410 (within ``GOVOPS_API_STATE_SECONDS``). Its call
    records stay; nothing is metered. Publishing it again reopens it, metering nothing more:
    the set was delivered once (1 组), whatever happens to it later."""
    now = now or datetime.now(UTC)
    if not reason.strip() or not by.strip():
        raise PublishRefused(f"set {set_name}: closing needs a reason and who decides it")
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{DAG_ID}|{set_name}"})
        before = _registered(conn, set_name, lock=True)
        if before is None:
            raise PublishRefused(f"set {set_name} was never published (govops.api_set): nothing to close")
        if before["open_state"] == "closed":
            raise PublishRefused(f"set {set_name} is closed already, since {before['closed_at'].isoformat()}")
        conn.execute(text("""UPDATE govops.api_set SET open_state = 'closed', closed_at = :now, closed_reason = :r
                             WHERE set_name = :s"""), {"s": set_name, "now": now, "r": reason})  # fmt: skip
        _event(conn, set_name, "closed", now, by, reason)
    return {"set": set_name, "closed_at": now.isoformat(), **write_lists(engine, lake_root)}


def cascade(engine: Engine, lake_root: str, validated: dict[str, Any]) -> list[dict[str, Any]]:
    """Step 5: the set's registration reported to the upstream platforms of its ``cascade``."""
    from govops.sharing.cascade import report

    return report(engine, lake_root, _validated_spec(validated), validated["api_url"])


API_LIST = {"set_name": "接口集", "title": "名称", "interface": "接口地址", "method": "方法", "protocol": "协议",
            "open_type": "开放属性", "open_state": "开放状态", "opened_at": "开放时间", "published_at": "最近发布时间",
            "closed_at": "关闭时间", "docs_uri": "接口文档"}  # fmt: skip
RESOURCES = {"title": "资源名称", "set_name": "接口集", "dataset": "数据集", "catalog_dataset": "目录条目",
             "catalog_name": "目录名称", "provider_department": "提供部门", "update_frequency": "更新频率",
             "open_type": "开放属性", "open_state": "开放状态", "opened_at": "开放时间",
             "dataset_version": "数据版本", "closed_at": "关闭时间"}  # fmt: skip
STATE_ZH = {"open": "已开放", "closed": "已关闭"}


def _table_writers(name: str, headers: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, Callable[[Path], None]]:
    def cells(row: dict[str, Any]) -> list[Any]:
        out = []
        for key in headers:
            value = row.get(key)
            value = STATE_ZH.get(value, value) if key == "open_state" else value
            out.append(value.isoformat(timespec="seconds") if isinstance(value, datetime) else value)
        return out

    def xlsx(path: Path) -> None:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        book = Workbook()
        sheet = book.active
        sheet.title = name
        sheet.append(list(headers.values()))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(cells(row))
        sheet.freeze_panes = "A2"
        book.save(path)

    def csv_file(path: Path) -> None:
        with path.open("w", encoding="utf-8-sig", newline="") as handle:  # a BOM: Excel reads it as UTF-8
            writer = csv.writer(handle)
            writer.writerow(list(headers.values()))
            writer.writerows(cells(row) for row in rows)

    return {"xlsx": xlsx, "csv": csv_file}


def write_lists(engine: Engine, lake_root: str) -> dict[str, str]:
    """The API list (one line per interface of every registered set) and the data list
    (资源信息), as ``.xlsx`` and ``.csv`` under ``<lake>/reports/sharing/``."""
    with engine.connect() as conn:
        sets = [dict(r) for r in conn.execute(text("SELECT * FROM govops.api_set ORDER BY set_name")).mappings()]
        resources = [dict(r) for r in
                     conn.execute(text("SELECT * FROM govops.api_resource ORDER BY set_name")).mappings()]  # fmt: skip
    interfaces = [{**s, "interface": path, "method": "GET", "protocol": "HTTP(S)"} for s in sets
                  for path in s["interfaces"]]  # fmt: skip
    files: dict[str, Callable[[Path], None]] = {}
    for stem, title, headers, rows in (("api_list", "API接口列表", API_LIST, interfaces),
                                       ("resources", "资源信息", RESOURCES, resources)):  # fmt: skip
        for ext, writer in _table_writers(title, headers, rows).items():
            files[f"{stem}.{ext}"] = writer
    written = _write(f"{lake_root.rstrip('/')}/reports/sharing", files)
    return {"api_list_uri": written["api_list.xlsx"], "resources_uri": written["resources.xlsx"]}
