"""The console's FastAPI app: server-rendered pages (Jinja2) and their JSON twins.

Every page ``/x`` has the JSON twin ``/x.json`` with the same figures. Every route depends
on Airflow's authentication (``govops.console.auth``); a route that changes something also
on the role of its action, and writes an entry in the keyed audit log
(``govops.security.audit``, action ``console.<action>``) in the same transaction as the
change, except closing a period, whose audit entry follows the close (``store.close`` owns
its transaction; the master key is checked before the close, so the entry cannot be
refused for want of it).
"""

from __future__ import annotations

import gc
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlparse

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from starlette.background import BackgroundTask

from govops.console import URL_PREFIX, artifacts, queries
from govops.console.auth import MINIMUM_ROLE, Reader, allowed_to, may, may_see_owner_zone, user_name
from govops.console.db import engine, reading
from govops.errors import CodedError
from govops.ops import event_orders as eo
from govops.security import audit, signing
from govops.settlement import store
from govops.settlement.evidence import evidence_pack
from govops.settlement.export import WRITERS
from govops.settlement.workorders import (
    TRANSITIONS,
    WorkOrderError,
    accept_service_order,
    assign_usage,
    set_work_order_state,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"


# Formatting: integers and quantities with thousands separators, money with two decimals.
def fmt_num(value: Any) -> str:
    if isinstance(value, int):  # the common case, without a Decimal (a statement page formats thousands)
        return f"{value:,}"
    if value is None or value == "":
        return ""
    return f"{Decimal(str(value)):,}"


def fmt_money(value: Any) -> str:
    return "" if value is None or value == "" else f"{Decimal(str(value)).quantize(Decimal('0.01')):,}"


def fmt_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if value is None else str(value)


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters.update(num=fmt_num, money=fmt_money, time=fmt_time, q=lambda v: quote(str(v), safe=""))
templates.env.globals.update(STATES=TRANSITIONS, URGENCIES=eo.URGENCIES)


def _json(data: Any) -> JSONResponse:
    # Money and quantities stay exact: Decimal as a string, never a float.
    return JSONResponse(jsonable_encoder(data, custom_encoder={Decimal: str}))


def _airflow_base(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""


def respond(request: Request, user: BaseUser, template: str, data: dict[str, Any]) -> Response:
    """The page, or its JSON twin when the path ends in ``.json``."""
    if request.url.path.endswith(".json"):
        return _json(data)
    context = {**data, "root": request.scope.get("root_path", ""), "airflow": _airflow_base(request),
               "user": user_name(user), "can": {a: may(user, a) for a in MINIMUM_ROLE},
               "message": request.query_params.get("message"), "error": request.query_params.get("error")}  # fmt: skip
    return templates.TemplateResponse(request, template, context)


def done(request: Request, back: str, result: dict[str, Any]) -> Response:
    """After a change: JSON for an API client, else back to the page (Post/Redirect/Get)."""
    if "application/json" in request.headers.get("accept", ""):
        return _json(result)
    query = urlencode({"message": result.get("message", "")})
    return RedirectResponse(
        f"{request.scope.get('root_path', '')}{back}?{query}", status_code=status.HTTP_303_SEE_OTHER
    )


def _audit(conn: Connection, user: BaseUser, action: str, details: dict[str, Any]) -> int:
    return audit.append(conn, actor=user_name(user), action=f"console.{action}", dataset=None, details=details)


def _period(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value if len(value) > 7 else f"{value}-01")
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"period: {value!r} is not a month (YYYY-MM)"
        ) from None


def usage_filter(
    period: str | None = None,
    item: str | None = None,
    unit: str | None = None,
    work_order: str | None = None,
    department: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
) -> queries.UsageFilter:
    """The usage filters from the query string (empty values are no filter)."""
    return queries.UsageFilter(_period(period), item or None, unit or None, work_order or None, department or None,
                               dag_id or None, run_id or None, task_id or None)  # fmt: skip


Filter = Annotated[queries.UsageFilter, Depends(usage_filter)]


def pages(router: APIRouter, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a GET page and its ``.json`` twin (the twin first: ``{id}.json`` must win)."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        router.get(f"{path}.json", **kwargs)(func)
        router.get(path, **kwargs)(func)
        return func

    return register


router = APIRouter()


@pages(router, "/index")
def index(request: Request, user: Reader) -> Response:
    with reading() as conn:
        unassigned = queries.usage_summary(conn, queries.UsageFilter(work_order=queries.UNASSIGNED), by=("item",))
        open_orders = queries.event_orders(conn, eo.OPEN)
        periods = queries.periods(conn)
    urgent = sum(o["urgency"] == "urgent" for o in open_orders)
    return respond(request, user, "index.html", {"unassigned": unassigned, "open_event_orders": len(open_orders),
                                                 "urgent_event_orders": urgent, "periods": periods})  # fmt: skip


@router.get("/")
def home(request: Request, user: Reader) -> Response:
    return index(request, user)


@pages(router, "/usage")
def usage(request: Request, user: Reader, f: Filter, by: Annotated[list[str] | None, Query()] = None) -> Response:
    dims = tuple(d for d in (by or queries.DEFAULT_BY) if d in queries.DIMENSIONS) or queries.DEFAULT_BY
    with reading() as conn:
        rows = queries.usage_summary(conn, f, dims)
    return respond(request, user, "usage.html", {"filter": f.query(), "by": list(dims), "rows": rows,
                                                 "totals": queries.totals_per_unit(rows)})  # fmt: skip


@pages(router, "/usage/events")
def usage_events(request: Request, user: Reader, f: Filter, after: int = 0) -> Response:
    with reading() as conn:
        rows, next_after = queries.usage_events(conn, f, after)
    return respond(request, user, "events.html", {"filter": f.query(), "rows": rows, "after": after,
                                                  "next_after": next_after})  # fmt: skip


@pages(router, "/usage/events/{event_id}")
def usage_event(request: Request, user: Reader, event_id: int) -> Response:
    from govops.spark import manifest as manifests

    with reading() as conn:
        event = queries.usage_event(conn, event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"usage event {event_id} does not exist")
    manifest, manifest_error = None, None
    if event["manifest_uri"]:
        try:
            manifest = manifests.read(event["manifest_uri"])
        except (manifests.ManifestError, OSError) as exc:
            manifest_error = str(exc)
    return respond(request, user, "event.html", {"event": event, "manifest": manifest,
                                                 "manifest_error": manifest_error})  # fmt: skip


@pages(router, "/unassigned")
def unassigned(request: Request, user: Reader, after: int = 0) -> Response:
    with reading() as conn:
        rows, next_after = queries.usage_events(conn, queries.UsageFilter(work_order=queries.UNASSIGNED), after)
        candidates = queries.assignable_work_orders(conn)
    for r in rows:
        r["candidates"] = [w["id"] for w in candidates.get((r["service_item_code"], r["unit"]), [])]
    return respond(request, user, "unassigned.html", {"rows": rows, "after": after, "next_after": next_after})


@router.post("/unassigned/assign")
def assign(
    request: Request,
    user: Annotated[BaseUser, Depends(allowed_to("usage.assign"))],
    usage_event_id: Annotated[list[int], Form()],
    work_order_id: Annotated[str, Form()],
) -> Response:
    """Assign unassigned usage to an approved work order of the same item and unit: a new
    ``usage_assignment`` row; the ledger row stays as it was."""
    with engine().begin() as conn:
        candidates = queries.assignable_work_orders(conn)
        if not any(w["id"] == work_order_id for ws in candidates.values() for w in ws):
            raise WorkOrderError(f"work order {work_order_id} is not open for usage (approved, in progress or rework)")
        for event_id, earlier in queries.assigned(conn, usage_event_id).items():  # an assignment is final
            raise WorkOrderError(f"usage event {event_id} was already assigned to work order {earlier}")
        count = assign_usage(conn, usage_event_id, work_order_id, assigned_by=user_name(user))
        _audit(conn, user, "usage.assign", {"usage_event_ids": usage_event_id, "work_order_id": work_order_id})
    return done(request, "/unassigned", {"message": f"{count} usage event(s) assigned to {work_order_id}",
                                         "assigned": usage_event_id, "work_order_id": work_order_id})  # fmt: skip


@pages(router, "/statements")
def statements(request: Request, user: Reader) -> Response:
    with reading() as conn:
        rows = queries.periods(conn)
    return respond(request, user, "statements.html", {"periods": rows})


@pages(router, "/statements/{period_id}")
def statement(request: Request, user: Reader, period_id: str) -> Response:
    with reading() as conn:
        period = next((p for p in queries.periods(conn) if p["id"] == period_id), None)
        if period is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown settlement period {period_id!r}")
        catalog = queries.statement_catalog(conn, period_id)
    found = store.get_statement(engine(), period_id)
    if found is not None and catalog is not None:
        for line in found["lines"]:
            for wo in line.get("work_orders", []):
                wo["tier_slices"] = queries.tier_slices(catalog, wo)
    return respond(request, user, "statement.html", {"period": period, "statement": found})


@router.post("/statements/{period_id}/settle")
def settle(request: Request, user: Annotated[BaseUser, Depends(allowed_to("statement.settle"))],
           period_id: str) -> Response:  # fmt: skip
    """Recompute the draft (a closed period's statement is never recomputed: PERIOD_CLOSED)."""
    signing.signing_key(signing.AUDIT_CHAIN)
    statement = store.settle(engine(), period_id, force=True)
    with engine().begin() as conn:
        _audit(conn, user, "statement.settle", {"period_id": period_id, "content_hash": statement["content_hash"]})
    return done(request, f"/statements/{quote(period_id)}",
                {"message": f"{period_id}: draft recomputed, hash {statement['content_hash'][:12]}…",
                 "content_hash": statement["content_hash"], "totals": statement["totals"]})  # fmt: skip


@pages(router, "/statements/{period_id}/verify")
def verify(request: Request, user: Reader, period_id: str) -> Response:
    result = store.verify(engine(), period_id)
    return respond(request, user, "verify.html", {"period_id": period_id, "ok": result.ok,
                                                  "stored_hash": result.stored_hash,
                                                  "recomputed_hash": result.recomputed_hash,
                                                  "mismatches": result.ledger_mismatches})  # fmt: skip


def _removing(folder: Path) -> BackgroundTask:
    """Remove a download's temporary folder once the file is sent."""
    return BackgroundTask(shutil.rmtree, folder, ignore_errors=True)


MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}  # fmt: skip


@router.get("/statements/{period_id}/export.{fmt}")
def export(user: Reader, period_id: str, fmt: str) -> Response:
    """The statement as the settlement exports write it (``govops.settlement.export``)."""
    if fmt not in WRITERS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"format {fmt!r}: one of {', '.join(sorted(WRITERS))}")
    folder = Path(tempfile.mkdtemp(prefix="govops-export-"))
    path = WRITERS[fmt](store.statement_of(engine(), period_id), folder / f"statement_{period_id}.{fmt}")
    return FileResponse(path, media_type=MEDIA[fmt], filename=path.name, background=_removing(folder))


@router.post("/statements/{period_id}/close")
def close(request: Request, user: Annotated[BaseUser, Depends(allowed_to("period.close"))], period_id: str,
          confirm: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    """Settle and close the period, final. ``confirm`` must repeat the period id."""
    if confirm != period_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"confirm: type the period id {period_id} to close it (got {confirm!r})")  # fmt: skip
    signing.signing_key(signing.AUDIT_CHAIN)  # no audit key: refused before the close
    statement = store.close(engine(), period_id)
    with engine().begin() as conn:
        seq = _audit(conn, user, "period.close", {"period_id": period_id, "content_hash": statement["content_hash"],
                                                  "payable": statement["totals"]["payable"]})  # fmt: skip
    return done(request, f"/statements/{quote(period_id)}",
                {"message": f"{period_id} closed (audit entry {seq})", "content_hash": statement["content_hash"],
                 "audit_seq": seq, "totals": statement["totals"]})  # fmt: skip


@pages(router, "/work-orders")
def work_orders(request: Request, user: Reader) -> Response:
    with reading() as conn:
        orders = queries.work_orders(conn)
    return respond(request, user, "work_orders.html", {"service_orders": orders})


@router.get("/work-orders/{work_order_id}/evidence.json")
def evidence(user: Reader, work_order_id: str) -> Response:
    """The work order's evidence pack for the supervisor (监理): ledger rows, runs, manifests."""
    folder = Path(tempfile.mkdtemp(prefix="govops-evidence-"))
    path = evidence_pack(engine(), work_order_id, folder)
    return FileResponse(path, media_type="application/json", filename=path.name, background=_removing(folder))


@router.post("/work-orders/{work_order_id}/state")
def work_order_state(
    request: Request,
    user: Annotated[BaseUser, Depends(allowed_to("work_order.accept"))],
    work_order_id: str,
    state: Annotated[str, Form()],
    operator_opinion: Annotated[str, Form()] = "",
    purchaser_opinion: Annotated[str, Form()] = "",
) -> Response:
    opinions = {
        k: v for k, v in (("operator_opinion", operator_opinion), ("purchaser_opinion", purchaser_opinion)) if v
    }
    with engine().begin() as conn:
        set_work_order_state(conn, work_order_id, state, **opinions)
        _audit(conn, user, "work_order.state", {"work_order_id": work_order_id, "state": state, **opinions})
    return done(request, "/work-orders", {"message": f"work order {work_order_id}: {state}", "state": state})


def _decimal(name: str, value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: {value!r} is not a number") from None


@router.post("/service-orders/{service_order_id}/accept")
def accept(
    request: Request,
    user: Annotated[BaseUser, Depends(allowed_to("work_order.accept"))],
    service_order_id: str,
    quality_score: Annotated[str, Form()],
    operator_opinion: Annotated[str, Form()],
    purchaser_opinion: Annotated[str, Form()],
    accepted_on: Annotated[date | None, Form()] = None,
    rework_score: Annotated[str, Form()] = "",
) -> Response:
    """验收: both parties' opinions and the delivery-quality score (R4)."""
    on = accepted_on or datetime.now(UTC).date()
    with engine().begin() as conn:
        accept_service_order(conn, service_order_id, quality_score=_decimal("quality_score", quality_score),
                             accepted_on=on, operator_opinion=operator_opinion, purchaser_opinion=purchaser_opinion,
                             rework_score=_decimal("rework_score", rework_score) if rework_score else None)  # fmt: skip
        _audit(conn, user, "service_order.accept", {"service_order_id": service_order_id,
                                                    "quality_score": quality_score, "accepted_on": on})  # fmt: skip
    return done(request, "/work-orders", {"message": f"service order {service_order_id} accepted on {on}"})


@pages(router, "/event-orders")
def event_orders(request: Request, user: Reader, state: str = "open") -> Response:
    states = {"open": eo.OPEN, "resolved": ("resolved",), "evaluated": ("evaluated",), "all": eo.STATES}.get(state)
    if states is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"state: {state!r}: open, resolved, evaluated, all")
    from govops.settlement.catalog import parse_contract

    with reading() as conn:
        orders = queries.event_orders(conn, states)
    penalties = parse_contract(store._terms()[1]).penalties
    return respond(request, user, "event_orders.html", {"state": state, "orders": orders,
                                                        "incident_types": list(penalties)})  # fmt: skip


@router.post("/event-orders/{number}/acknowledge")
def acknowledge(request: Request, user: Annotated[BaseUser, Depends(allowed_to("event_order.handle"))], number: str,
                estimated_workload: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    with engine().begin() as conn:
        eo.acknowledge(conn, number, user_name(user),
                       estimated_workload=float(_decimal("estimated_workload", estimated_workload))
                       if estimated_workload else None)  # fmt: skip
        _audit(conn, user, "event_order.acknowledge", {"event_order": number})
    return done(request, "/event-orders", {"message": f"{number} acknowledged", "state": "acknowledged"})


@router.post("/event-orders/{number}/resolve")
def resolve(request: Request, user: Annotated[BaseUser, Depends(allowed_to("event_order.handle"))], number: str,
            resolution: Annotated[str, Form()]) -> Response:  # fmt: skip
    with engine().begin() as conn:
        eo.resolve(conn, number, user_name(user), resolution)
        _audit(conn, user, "event_order.resolve", {"event_order": number, "resolution": resolution})
    return done(request, "/event-orders", {"message": f"{number} resolved", "state": "resolved"})


@router.post("/event-orders/{number}/evaluate")
def evaluate(
    request: Request,
    user: Annotated[BaseUser, Depends(allowed_to("event_order.evaluate"))],
    number: str,
    operator_opinion: Annotated[str, Form()],
    purchaser_opinion: Annotated[str, Form()],
    incident_type: Annotated[str, Form()] = "",
    on: Annotated[date | None, Form()] = None,
) -> Response:
    with engine().begin() as conn:
        eo.evaluate(conn, number, user_name(user), operator_opinion=operator_opinion,
                    purchaser_opinion=purchaser_opinion, incident_type=incident_type or None, on=on)  # fmt: skip
        _audit(conn, user, "event_order.evaluate", {"event_order": number, "incident_type": incident_type or None})
    return done(request, "/event-orders", {"message": f"{number} evaluated", "state": "evaluated"})


@pages(router, "/runs/{dag_id}/{run_id}")
def run(request: Request, user: Reader, dag_id: str, run_id: str) -> Response:
    """The DAG-run tab 本次计量: what this run metered."""
    with reading() as conn:
        rows = queries.run_usage(conn, dag_id, run_id)
    return respond(request, user, "run.html", {"dag_id": dag_id, "run_id": run_id, "rows": rows,
                                               "totals": queries.totals_per_unit(rows)})  # fmt: skip


@pages(router, "/health")
def health(request: Request, user: Reader, hours: int = 24) -> Response:
    with reading() as conn:
        data = queries.job_health(conn, datetime.now(UTC), hours)
    return respond(request, user, "health.html", {**data, "hours": hours, "monitor": queries.last_monitoring_pass()})


@pages(router, "/reports")
def reports(request: Request, user: Reader) -> Response:
    """The latest reports and data docs each service recorded, one click away."""
    with reading() as conn:
        groups = artifacts.recorded(conn)
    return respond(request, user, "reports.html", {"groups": groups})


@pages(router, "/tasks/{dag_id}/{run_id}/{task_id}")
def task_artifacts(request: Request, user: Reader, dag_id: str, run_id: str, task_id: str,
                   map_index: int = -1) -> Response:  # fmt: skip
    """What one task instance produced (the operator extra link 报告与数据文档 opens this)."""
    with reading() as conn:
        found = artifacts.of_task(conn, dag_id, run_id, task_id, map_index)
    return respond(request, user, "task.html", {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                                                "map_index": map_index, "artifacts": found})  # fmt: skip


# Served reports run in this origin: they may load only from it (nothing from the internet)
# and may post no form; the type is the one sent.
FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'self' data: blob: 'unsafe-inline' 'unsafe-eval'; form-action 'none'; "
                               "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
}  # fmt: skip


def _send(served: artifacts.Served, download: str | None = None) -> Response:
    headers = dict(FILE_HEADERS)
    if download:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download)}"
    if served.path is not None:
        return FileResponse(served.path, media_type=served.media_type, headers=headers)
    return Response(served.content, media_type=served.media_type, headers=headers)


@router.get("/files/reports/{path:path}")
def report_file(request: Request, user: Reader, path: str) -> Response:
    """A file under ``<lake>/reports/`` (a folder: its index.html)."""
    try:
        served = artifacts.read_report(path)
    except artifacts.NotServed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report {path!r} under <lake>/reports/") from None
    if served.name == "index.html" and path and not path.endswith(("/", "index.html")):
        # A folder: its page's relative links resolve against the folder.
        return RedirectResponse(f"{request.scope.get('root_path', '')}/files/reports/{path}/")
    return _send(served)


@router.get("/quality/{check_run_id}/anomalies-full.{fmt}")
def full_anomalies(user: Reader, check_run_id: int, fmt: str) -> Response:
    """The full anomaly list of a quality check run, from the data owner's zone: only to a
    user allowed to see that zone (``auth.may_see_owner_zone``); each read is audited."""
    if fmt not in artifacts.FULL_FORMATS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"format {fmt!r}: one of {', '.join(artifacts.FULL_FORMATS)}")
    signing.signing_key(signing.AUDIT_CHAIN)  # no audit key, no read
    with engine().begin() as conn:
        found = artifacts.full_list(conn, check_run_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"quality check run {check_run_id}: no full anomaly list "
                                                           "in this lake's owner zone")  # fmt: skip
        why = may_see_owner_zone(conn, user, found.department, found.dataset)
        if why is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{user_name(user)} may not see the data owner's zone of {found.department}: the full "
                                f"anomaly list needs a live access grant on {found.dataset} or the admin role; the "
                                "masked list is beside the quality report")  # fmt: skip
        try:
            served = artifacts.read(found.folder, f"anomalies.{fmt}")
        except artifacts.NotServed:
            missing = f"quality check run {check_run_id}: {found.folder}/anomalies.{fmt} is missing"
            raise HTTPException(status.HTTP_404_NOT_FOUND, missing) from None
        _audit(conn, user, "anomalies.full", {"check_run_id": check_run_id, "department": found.department,
                                              "dataset": found.dataset, "format": fmt, "allowed_by": why})  # fmt: skip
    if why.startswith("grant "):  # the grant was used: the security assessment judges stale access by it
        from govops.security.assessment import record_access

        record_access(engine(), user_name(user), found.dataset)
    return _send(served, download=f"anomalies_full_{check_run_id}.{fmt}")


@router.get("/metrics")
def metrics(user: Reader) -> Response:
    """Prometheus text: usage rows and quantities per item and period, the unassigned queue,
    open event orders by urgency, the age of each DAG's last successful run."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from govops.console.metrics import render

    with reading() as conn:
        body = render(conn, datetime.now(UTC))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _refused(request: Request, status_code: int, detail: str) -> Response:
    """A refusal as problem details (JSON), or the page again with the reason (a browser)."""
    accept = request.headers.get("accept", "")
    if request.method == "POST" and "text/html" in accept and "application/json" not in accept:
        # Back to the page the form was on: only a page of this server.
        referer = urlparse(request.headers.get("referer", ""))
        same = referer.netloc == request.url.netloc and referer.path.startswith(request.scope.get("root_path", ""))
        back = referer.path if same else f"{request.scope.get('root_path', '')}/"
        return RedirectResponse(f"{back}?{urlencode({'error': detail})}", status_code=status.HTTP_303_SEE_OTHER)
    return JSONResponse({"type": "about:blank", "title": "refused", "status": status_code, "detail": detail},
                        status_code=status_code, media_type="application/problem+json")  # fmt: skip


def create_app() -> FastAPI:
    # The api-server's heap is large (Airflow, its providers, this app): a full garbage
    # collection, which a statement page's thousands of objects trigger about every other
    # request, scans all of it (~200 ms on the bench). What exists once the console is built
    # lives as long as the process, so it leaves the collector's scans (gc.freeze).
    gc.collect()
    gc.freeze()
    app = FastAPI(title="govops console (计量结算)", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)

    @app.exception_handler(CodedError)
    async def coded(request: Request, exc: CodedError) -> Response:
        return _refused(request, status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(ValueError)
    async def invalid(request: Request, exc: ValueError) -> Response:
        return _refused(request, status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(DBAPIError)
    async def database(request: Request, exc: DBAPIError) -> Response:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return _refused(request, status.HTTP_409_CONFLICT, f"refused by the database: {reason}")

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> Response:
        # An anonymous browser visit goes to Airflow's login, and comes back afterwards.
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and request.method == "GET" \
                and "text/html" in request.headers.get("accept", ""):  # fmt: skip
            from airflow.api_fastapi.app import get_auth_manager

            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
        return _refused(request, exc.status_code, str(exc.detail))

    return app
