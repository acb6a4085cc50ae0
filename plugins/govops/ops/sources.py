"""Where the job registry reads the deployment from.

Airflow 3 task code cannot use the metadata database, so a task reads Airflow's state
through the REST API v2 of the api-server (``RestApiSource``; the Airflow connection
``govops_airflow_api``: ``http://user:password@host:port``, a JWT from ``/auth/token``). For
local use, ``DagFolderSource`` parses the DAG files itself (no pause state, no runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from govops.ops.registry import DagDescription, ScheduledRun

API_CONN_ID = "govops_airflow_api"


def _item(tags: list[str]) -> str | None:
    items = sorted(t.removeprefix("item:") for t in tags if t.startswith("item:"))
    return ",".join(items) or None


def _spec_departments() -> dict[str, str]:
    """The department of each spec-built pipeline DAG (its spec says it)."""
    from govops.pipelines.spec import SpecError, load_spec, spec_files

    found = {}
    for path in spec_files():
        try:
            spec = load_spec(path)
        except SpecError:
            continue
        found[f"pipeline_{spec.pipeline}"] = spec.department
    return found


def _describe(dag_id: str, schedule: str | None, owners: str, tags: list[str], params: dict[str, Any],
              description: str, fileloc: str, paused: bool | None, departments: dict[str, str]) -> DagDescription:
    work_order = params.get("scheduling_work_order_id") or params.get("work_order_id")
    return DagDescription(
        dag_id=dag_id, schedule=None if schedule in (None, "None") else schedule, owner=owners,
        department=params.get("department") or departments.get(dag_id),
        service_item_code=_item(tags), work_order_id=work_order or None, description=description or "",
        fileloc=fileloc, paused=paused, billable="ops" not in tags,
    )  # fmt: skip


@dataclass
class Deployment:
    dags: list[DagDescription]
    broken_files: frozenset[str] = frozenset()
    first_successes: dict[str, ScheduledRun] = field(default_factory=dict)


class DagFolderSource:
    """Parse the DAG folder (a DagBag): for development and tests."""

    name = "dag_folder"

    def __init__(self, dag_folder: Path) -> None:
        self.dag_folder = dag_folder

    def read(self, unmetered: list[str]) -> Deployment:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.serialization.encoders import coerce_to_core_timetable

        bag = DagBag(dag_folder=str(self.dag_folder))
        departments = _spec_departments()
        dags = []
        for dag in bag.dags.values():
            # A param without a default (the caller must pass one) names no work order or department.
            params = {k: dag.params.get_param(k).value for k in dag.params if dag.params.get_param(k).has_value}
            dags.append(_describe(
                dag.dag_id, coerce_to_core_timetable(dag.timetable).summary, dag.owner, sorted(dag.tags), params,
                dag.description or "", dag.fileloc, None, departments,
            ))  # fmt: skip
        return Deployment(dags=dags, broken_files=frozenset(bag.import_errors))


class RestApiSource:
    """Airflow's REST API v2: ``GET /api/v2/dags`` (and each scheduled DAG's details for its
    params), ``/api/v2/importErrors``, and each unmetered job's first successful scheduled run."""

    name = "rest_api"

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        token = httpx.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=timeout
        )
        token.raise_for_status()
        self.client = httpx.Client(
            base_url=f"{self.base_url}/api/v2", timeout=timeout,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )  # fmt: skip

    @classmethod
    def from_connection(cls, conn_id: str = API_CONN_ID) -> RestApiSource:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        scheme = conn.schema or "http"
        return cls(f"{scheme}://{conn.host}:{conn.port or 8080}", conn.login or "", conn.password or "")

    def _pages(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.client.get(path, params={**params, "limit": 100, "offset": len(out)})
            page.raise_for_status()
            body = page.json()
            out.extend(body[key])
            if not body[key] or len(out) >= body["total_entries"]:
                return out

    def read(self, unmetered: list[str]) -> Deployment:
        departments = _spec_departments()
        dags = []
        for d in self._pages("/dags", "dags", exclude_stale=True):
            params: dict[str, Any] = {}
            if d["timetable_summary"] not in (None, "None"):
                details = self.client.get(f"/dags/{d['dag_id']}/details")
                details.raise_for_status()
                params = {k: (v or {}).get("value") for k, v in (details.json().get("params") or {}).items()}
            dags.append(_describe(
                d["dag_id"], d["timetable_summary"], ",".join(d["owners"]), [t["name"] for t in d["tags"]], params,
                d.get("description") or "", d["fileloc"], d["is_paused"], departments,
            ))  # fmt: skip
        broken = frozenset(e["filename"] for e in self._pages("/importErrors", "import_errors"))
        firsts = {}
        for dag_id in unmetered:
            runs = self.client.get(
                f"/dags/{dag_id}/dagRuns",
                params={"run_type": "scheduled", "state": "success", "order_by": "end_date", "limit": 1},
            )
            if runs.status_code == 404:
                continue
            runs.raise_for_status()
            for r in runs.json()["dag_runs"]:
                firsts[dag_id] = ScheduledRun(
                    dag_id=dag_id, run_id=r["dag_run_id"], finished_at=datetime.fromisoformat(r["end_date"]),
                    logical_date=datetime.fromisoformat(r["logical_date"]) if r.get("logical_date") else None,
                )
        return Deployment(dags=dags, broken_files=broken, first_successes=firsts)
