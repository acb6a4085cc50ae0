"""Reports and data docs one click away: what the services wrote, served by the console and
linked from the task instances that produced them.

Two roots are served, both of the configured lake (``GOVOPS_LAKE_ROOT``), never a path a
caller names outside them:

- ``<lake>/reports/``: every service's reports (quality reports with the *masked* anomaly
  lists, the GX data docs site, security assessment, labeling, archive and destruction
  reports, sharing documents, application-service reports and dashboards, operations
  reports), to any authenticated user, at ``/govops/files/reports/<path>``. The path is
  resolved (symlinks too) and must stay under the root.
- the *full* anomaly list of a quality check run, in the data owner's zone
  (``<lake>/owner/<department>/quality/<suite>/exports/<run>/``), by the check run's id in
  the ledger, only to a user allowed to see that zone (``govops.console.auth``).

A task instance's artifacts are the ledger's quality check runs of that task and every
``<lake>/reports/`` URI or settlement period in the task's return value (its XCom), which is
what the task logged; the operator extra link 报告与数据文档 opens their list.
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlparse

from sqlalchemy import Connection, text

from govops import settings

REPORTS = "reports"
FULL_FORMATS = ("csv", "xlsx")
_OWNER = re.compile(r"^(?P<root>.+)/owner/(?P<department>[^/]+)/quality/")


class NotServed(LookupError):
    """The path is not a file under a served root (missing, a folder, or outside)."""


@dataclass(frozen=True)
class Artifact:
    title: str
    href: str  # under the console's URL prefix
    uri: str  # what the service recorded
    restricted: bool = False  # the full anomaly list: the owner zone's rule applies


def reports_root() -> str:
    return f"{settings.lake_root()}/{REPORTS}"


def relative_report(uri: str) -> str | None:
    """The path under ``<lake>/reports/`` of a recorded URI, or None when it is not there."""
    prefix = reports_root() + "/"
    if not uri.startswith(prefix):
        return None
    rel = uri.removeprefix(prefix)
    return rel if _clean(unquote(rel)) else None


def report_href(uri: str) -> str | None:
    rel = relative_report(uri)
    return None if rel is None else f"/files/{REPORTS}/{rel}"


def _clean(rel: str) -> PurePosixPath | None:
    """``rel`` as a relative path with no ``..``, no empty or hidden-dot tricks, or None."""
    if not rel or "\\" in rel or "\x00" in rel or rel.startswith("/"):
        return None
    parts = PurePosixPath(rel).parts
    if any(p in ("..", ".") for p in parts):
        return None
    return PurePosixPath(*parts)


@dataclass(frozen=True)
class Served:
    """A file to send: a local path, or the bytes read from the lake's file system."""

    name: str
    media_type: str
    path: Path | None = None
    content: bytes | None = None


def _media(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind.endswith(("json", "javascript")) else kind


def read(root_uri: str, rel: str) -> Served:
    """The file ``rel`` under ``root_uri`` (a folder: its ``index.html``). Refused (NotServed)
    when the path leaves the root, also through a symlink, or is not a file."""
    clean = _clean(rel)
    if clean is None:
        raise NotServed(rel)
    if root_uri.startswith("file:"):
        root = Path(unquote(urlparse(root_uri).path)).resolve()
        target = (root / clean).resolve()
        if target.is_dir():
            target = (target / "index.html").resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise NotServed(rel)
        return Served(target.name, _media(target.name), path=target)
    from pyarrow import fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(root_uri)
    path = f"{base.rstrip('/')}/{clean.as_posix()}"
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        path, info = f"{path}/index.html", filesystem.get_file_info(f"{path}/index.html")
    if info.type != pafs.FileType.File:
        raise NotServed(rel)
    with filesystem.open_input_stream(path) as stream:
        return Served(PurePosixPath(path).name, _media(path), content=stream.read())


def read_report(rel: str) -> Served:
    return read(reports_root(), rel)


# --- the full anomaly list --------------------------------------------------------------


@dataclass(frozen=True)
class FullList:
    check_run_id: int
    department: str  # the data owner, whose zone holds the list
    dataset: str  # the checked dataset (<zone>/<path>), whose records the list repeats in clear
    folder: str  # <lake>/owner/<department>/quality/<suite>/exports/<run>


def full_list(conn: Connection, check_run_id: int) -> FullList | None:
    """Where the full exports of a check run are, from its ledger row; None when the run
    exported no anomaly list or wrote it to another lake than the configured one."""
    from govops.spark.manifest import _safe

    row = conn.execute(
        text("SELECT suite, run_id, dataset, anomalies_uri FROM govops.quality_check_run WHERE id = :id"),
        {"id": check_run_id},
    ).first()
    if row is None or not row.anomalies_uri:
        return None
    found = _OWNER.match(row.anomalies_uri)
    if found is None or found["root"] != settings.lake_root():
        return None
    folder = f"{found['root']}/owner/{found['department']}/quality/{row.suite}/exports/{_safe(row.run_id)}"
    return FullList(check_run_id, found["department"], row.dataset, folder)


# --- what was recorded ------------------------------------------------------------------


def _quality(row: Any) -> list[Artifact]:
    label = f"{row.suite}（{row.dataset}）"
    out = []
    if row.report_uri and (href := report_href(row.report_uri)):
        out.append(Artifact(f"质量报告 {label}", href, row.report_uri))
        if row.anomalies_uri:  # the masked exports beside the report
            folder = row.report_uri.rsplit("/", 1)[0]
            for fmt in FULL_FORMATS:
                uri = f"{folder}/anomalies.{fmt}"
                out.append(Artifact(f"异常数据清单（脱敏）{fmt.upper()} {label}", report_href(uri) or "", uri))
    if row.data_docs_uri and (href := report_href(row.data_docs_uri)):
        out.append(Artifact(f"GX 数据文档 {label}", href, row.data_docs_uri))
    if row.anomalies_uri:
        for fmt in FULL_FORMATS:
            href = f"/quality/{row.id}/anomalies-full.{fmt}"
            title = f"异常数据清单（完整，数据所有方区）{fmt.upper()} {label}"
            out.append(Artifact(title, href, row.anomalies_uri, restricted=True))
    return out


_QUALITY = """SELECT id, dag_id, run_id, task_id, dataset, suite, status, score, report_uri, data_docs_uri,
                     anomalies_uri, finished_at FROM govops.quality_check_run"""


def _uris(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(key path, string) of every string in a JSON value."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _uris(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _uris(v, f"{path}[{i}]")]
    return []


def from_return_value(conn: Connection, value: Any) -> list[Artifact]:
    """The artifacts a task's return value names: ``<lake>/reports/`` URIs, and a settlement
    period (``{"period": …}``, the settlement DAG's ``settle``) with its statement."""
    out = []
    for key, uri in _uris(value):
        if href := report_href(uri):
            out.append(Artifact(f"{key}: {PurePosixPath(urlparse(uri).path).name}", href, uri))
    period = value.get("period") if isinstance(value, dict) else None
    if isinstance(period, str) and _has_statement(conn, period):
        ref = f"/statements/{quote(period, safe='')}"
        out.append(Artifact(f"结算单 {period}", ref, ref))
        out += [Artifact(f"结算单 {period} {f.upper()}", f"{ref}/export.{f}", ref) for f in ("csv", "json", "xlsx")]
    return out


def _has_statement(conn: Connection, period: str) -> bool:
    found = conn.execute(text("SELECT 1 FROM govops.settlement_statement WHERE period_id = :p"), {"p": period})
    return found.first() is not None


def return_value(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """The task instance's return value (XCom ``return_value``) from Airflow's metadata
    database: the api-server's own, where this runs (never task code)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            key="return_value", run_id=run_id, dag_ids=dag_id, task_ids=task_id, map_indexes=map_index
        )
        row = session.execute(query.with_only_columns(XComModel.value)).first()
    if row is None:
        return None
    try:
        return json.loads(row.value) if isinstance(row.value, str | bytes) else row.value
    except ValueError:
        return row.value


def of_task(conn: Connection, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[Artifact]:
    """What one task instance produced: its quality check runs (the ledger), then what its
    return value names."""
    rows = conn.execute(text(f"{_QUALITY} WHERE dag_id = :d AND run_id = :r AND task_id = :t ORDER BY id"),
                        {"d": dag_id, "r": run_id, "t": task_id}).all()  # fmt: skip
    found = [a for row in rows for a in _quality(row)]
    seen = {a.uri for a in found}
    found += [a for a in from_return_value(conn, return_value(dag_id, run_id, task_id, map_index)) if a.uri not in seen]
    return found


_ASSESSMENTS = """SELECT dag_id, run_id, report_uri, finished_at FROM govops.security_assessment_run
                   WHERE report_uri IS NOT NULL ORDER BY id DESC LIMIT :n"""
_ANALYTICS = """SELECT spec_name, dag_id, run_id, outputs, recorded_at FROM govops.analytics_run
                 ORDER BY id DESC LIMIT :n"""
_SHARING = """SELECT set_name, publish_run_id, docs_uri, report_uri, published_at FROM govops.api_set
               ORDER BY published_at DESC LIMIT :n"""


def recorded(conn: Connection, limit: int = 50) -> dict[str, list[dict[str, Any]]]:
    """The latest recorded artifacts of each service, newest first: quality check runs,
    security assessments, application-service files (``analytics_run.outputs`` of kind
    ``file``), sharing sets, and the archive report."""
    groups: dict[str, list[dict[str, Any]]] = {"quality": [], "security": [], "analytics": [], "sharing": []}
    for row in conn.execute(text(f"{_QUALITY} ORDER BY id DESC LIMIT :n"), {"n": limit}):
        groups["quality"].append({"run": f"{row.dag_id} / {row.run_id} / {row.task_id}", "at": row.finished_at,
                                  "status": row.status, "artifacts": _quality(row)})  # fmt: skip
    for row in conn.execute(text(_ASSESSMENTS), {"n": limit}):
        folder = row.report_uri.rsplit("/", 1)[0]
        uris = [("数据安全评估报告", row.report_uri), ("问题清单 CSV", f"{folder}/issues.csv"),
                ("问题清单 XLSX", f"{folder}/issues.xlsx")]  # fmt: skip
        groups["security"].append({"run": f"{row.dag_id} / {row.run_id}", "at": row.finished_at, "status": "",
                                   "artifacts": _listed(uris)})  # fmt: skip
    for row in conn.execute(text(_ANALYTICS), {"n": limit}):
        files = [(f"{row.spec_name}: {o.get('name')}", o["uri"]) for o in row.outputs or []
                 if o.get("kind") == "file" and isinstance(o.get("uri"), str)]  # fmt: skip
        if files:
            groups["analytics"].append({"run": f"{row.dag_id} / {row.run_id}", "at": row.recorded_at, "status": "",
                                        "artifacts": _listed(files)})  # fmt: skip
    for row in conn.execute(text(_SHARING), {"n": limit}):
        files = _listed([("接口文档", row.docs_uri), ("测试报告", row.report_uri)])
        groups["sharing"].append({"run": f"{row.set_name} / {row.publish_run_id}", "at": row.published_at,
                                  "status": "", "artifacts": files})  # fmt: skip
    archive = f"{reports_root()}/security/archive/report.html"
    groups["security"].append({"run": "security_archive", "at": None, "status": "",
                               "artifacts": _listed([("历史数据归档及销毁报告", archive)])})  # fmt: skip
    return groups


def _listed(named: list[tuple[str, str]]) -> list[Artifact]:
    return [Artifact(title, href, uri) for title, uri in named if (href := report_href(uri))]
