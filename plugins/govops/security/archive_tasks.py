"""The task bodies of ``dags/security_archive.py`` (item 21), so the DAG file only wires tasks.

Each function opens the ledger, does one task's work through :mod:`govops.security.archive`
and :mod:`govops.security.destruction`, and returns what goes to XCom: partition names,
counts, checksums and URIs, never values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import Engine

from govops.ledger.usage import TaskRef

log = logging.getLogger(__name__)


@contextmanager
def _engine() -> Iterator[Engine]:
    from sqlalchemy import create_engine

    from govops import settings

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _refusals_fail_fast() -> Iterator[None]:
    """A refusal (no approval, a bad policy, a conflict, residue) needs a person, not a retry."""
    from airflow.sdk.exceptions import AirflowFailException

    from govops.security.archive import ArchiveConflict, RestoreConflict
    from govops.security.destruction import DestructionRefused, ResidueFound
    from govops.security.retention import RetentionConfigError
    from govops.settlement.workorders import WorkOrderError

    try:
        yield
    except (ArchiveConflict, RestoreConflict, DestructionRefused, ResidueFound, RetentionConfigError,
            WorkOrderError) as exc:  # fmt: skip
        raise AirflowFailException(str(exc)) from exc


def _context(params: Mapping[str, Any], dag_id: str, run_id: str) -> Any:
    from govops.security.archive import RunContext

    return RunContext(dag_id, run_id, params["work_order_id"], actor=f"airflow:{dag_id}")


def _policy(params: Mapping[str, Any]) -> tuple[Any, Any]:
    from govops.security import retention

    config = retention.load()
    return config, config.policy(params["dataset"])


def prepare(params: Mapping[str, Any], *, dag_id: str, run_id: str, run_date: date) -> dict[str, Any]:
    """Policy, work order (for a destruction its approval: see ``archive.prepare_run``), and the run's partitions. A
    preview logs the plan, file by file, and returns no partitions: nothing else runs."""
    from govops import settings
    from govops.security import archive
    from govops.settlement.workorders import require_runnable

    action = params["action"]
    with _refusals_fail_fast():
        _, policy = _policy(params)
        require_runnable(params["work_order_id"], archive.SERVICE_ITEM, archive.UNIT)
    as_of = archive.as_of_date(params.get("as_of"), run_date)
    partitions: Sequence[str] = params.get("partitions") or []
    lake = settings.lake_root()
    if action == "preview":
        the_plan = archive.plan(lake, policy, "archive", as_of=as_of, partitions=partitions or None)
        log.info("preview (dry run), nothing changed:\n%s", the_plan.describe())
        due = archive.plan(lake, policy, "destroy", as_of=as_of) if policy.destroy_after else None
        if due is not None:
            log.info("due for destruction (needs an approved work order):\n%s", due.describe())
        return {"partitions": [], "action": action, "plan": the_plan.as_json(with_files=False),
                "destroy_due": [p.partition for p in due.partitions] if due else []}  # fmt: skip
    with _engine() as engine, _refusals_fail_fast():
        prepared = archive.prepare_run(engine, lake, policy, action, _context(params, dag_id, run_id), as_of=as_of,
                                       partitions=partitions or None)  # fmt: skip
    if prepared["plan"] is not None:
        log.info("%s plan of %s as of %s: %s partition(s), %s rows", action, policy.dataset, as_of,
                 prepared["plan"]["totals"]["partitions"], prepared["plan"]["totals"]["rows"])  # fmt: skip
    else:
        log.info("re-run: the partitions planned by the first run: %s", ", ".join(prepared["partitions"]))
    return {"partitions": prepared["partitions"], "action": action, "plan": prepared["plan"]}


def process(params: Mapping[str, Any], partition: str, *, dag_id: str, run_id: str) -> dict[str, Any]:
    from govops import settings
    from govops.security import archive

    _, policy = _policy(params)
    with _engine() as engine, _refusals_fail_fast():
        done = archive.process_partition(engine, settings.lake_root(), policy, params["action"], partition,
                                         _context(params, dag_id, run_id))  # fmt: skip
    log.info("%s %s: %s (%s rows, %s files)", params["action"], partition, done["state"], done["rows"], done["files"])
    return done


def finalize(params: Mapping[str, Any], *, dag_id: str, run_id: str, log_folders: Sequence[str] = ()) -> dict[str, Any]:
    """A destruction: key, residue check and certificate (fails naming the residue). Otherwise
    the run's totals (and a check that every partition finished)."""
    from govops import settings
    from govops.security import archive
    from govops.security.destruction import finalize_destruction

    config, policy = _policy(params)
    action = params["action"]
    with _engine() as engine:
        totals = archive.run_totals(engine, policy.dataset, action, dag_id, run_id)
        if totals["pending"]:
            raise archive.ArchiveError(f"partition(s) {', '.join(totals['pending'])} are not finished")
        if action != "destroy":
            return totals
        with _refusals_fail_fast():
            cert = finalize_destruction(engine, settings.lake_root(), policy, _context(params, dag_id, run_id),
                                        config=config, log_folders=log_folders)  # fmt: skip
    log.info("destruction certificate: complete, %s rows destroyed, audit entry %s: %s", cert.get("rows_before"),
             (cert.get("audit") or {}).get("seq"), cert.get("uri"))  # fmt: skip
    return {**totals, "complete": cert.get("complete"), "certificate": cert.get("uri"),
            "audit": cert.get("audit"), "key": cert.get("key")}  # fmt: skip


def meter(params: Mapping[str, Any], task: TaskRef) -> dict[str, Any]:
    from govops.security import archive

    _, policy = _policy(params)
    with _engine() as engine:
        return archive.meter_run(engine, task, work_order_id=params["work_order_id"], dataset=policy.dataset,
                                 kind=params["action"])  # fmt: skip


def report() -> str:
    from govops import settings
    from govops.security.archive_report import write_report

    with _engine() as engine:
        return write_report(engine, settings.lake_root())
