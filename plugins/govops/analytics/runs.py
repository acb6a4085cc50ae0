"""Before and after an analytics run: the work-order and difficulty check, and the commit
that records the run and its results and meters it, in one transaction.

**The same deliverable** is the spec (its name) under one work order. It is billed once, by
its first successful run: the ledger row's key is the DAG, the run id
``deliverable:<work order>`` and the task ``deliver``, so the ledger's unique index makes it
exactly once whatever runs it (a retry, a correction, a refresh, two runs at once). Later
runs of the same deliverable are corrections and additions (同一个统计任务的数据修正及补充不再
另外收费) or automatic refreshes (a scheduled or Asset-triggered run): recorded, not billed.
A report's manual refresh (``manual_refresh``) is billed once per run against the refresh
work order, at difficulty x factor; it needs the delivery first. Another work order for the
same spec is a new requirement and a new deliverable.

**At most 20 analyses per work order and library** (item 14, govops.analytics.difficulty):
an analysis's first run bills it only while fewer than ``PROGRAM_CAP`` analyses of its
library (``AnalyticsSpec.library_name``) have been billed against the work order; past
that it is recorded with ``billing = over_cap`` and no ledger row, and its later runs stay
unbilled (the ledger's rows never change, so the count never falls).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops.analytics import difficulty as dif
from govops.analytics.spec import AnalyticsSpec
from govops.errors import CodedError

DELIVER_TASK = "deliver"
AUTOMATIC_RUN_TYPES = ("scheduled", "asset_triggered")


class AnalyticsError(CodedError, ValueError):
    code = "ANALYTICS_REFUSED"


class DifficultyMismatch(AnalyticsError):
    code = "DIFFICULTY_MISMATCH"


def spec_sha256(spec: AnalyticsSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def deliverable_run_id(work_order: str) -> str:
    """The ledger run id of a deliverable's one billed event."""
    return f"deliverable:{work_order}"


def data_source(spec: AnalyticsSpec) -> str:
    return f"analytics/{spec.name}"


def lines_for(
    spec: AnalyticsSpec, work_order: str, manual_refresh: bool, refresh_work_order: str | None
) -> list[dif.MeterLine]:
    """The lines a run would bill: the delivery's (the main work order replaced by the run's),
    or one manual refresh."""
    if manual_refresh:
        if spec.kind != "report" or spec.refresh is None or spec.refresh.mode != "manual":
            raise AnalyticsError(f"{spec.name}: manual_refresh needs a report whose refresh.mode is manual")
        return [dif.refresh_line(spec, refresh_work_order)]
    return [
        dif.MeterLine(work_order if line.work_order == spec.work_order else line.work_order, line.service_item,
                      line.unit, line.quantity, line.difficulty, line.basis)
        for line in dif.delivery_lines(spec)
    ]  # fmt: skip


def check_work_orders(engine: Engine, lines: list[dif.MeterLine]) -> None:
    """Each line's work order must be open for runs, for its item and unit, and priced at the
    difficulty the spec gives (settlement multiplies by the work order's difficulty)."""
    from govops.settlement.workorders import check_runnable

    for line in lines:
        check_runnable(engine, line.work_order, line.service_item, line.unit)
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT difficulty FROM govops.work_order WHERE id = :id"), {"id": line.work_order}
            ).scalar_one()
        if Decimal(found) != line.difficulty:
            raise DifficultyMismatch(
                f"work order {line.work_order} has difficulty {Decimal(found).normalize()}, the spec gives "
                f"{line.difficulty.normalize()} ({line.basis}): correct the work order or the spec"
            )


def resolve_parameters(spec: AnalyticsSpec, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec's parameters, overridden by the run's; an unknown name is refused."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        raise AnalyticsError(
            f"{spec.name}: unknown parameter(s) {unknown}; the spec declares {sorted(spec.parameters)}"
        )
    return {**spec.parameters, **given}


def _delivery(conn: Connection, spec: AnalyticsSpec, work_order: str) -> Any:
    return conn.execute(
        text("""SELECT id, work_order_id, attributes FROM govops.usage_event
                 WHERE dag_id = :dag AND run_id = :run AND task_id = :task AND data_source = :src ORDER BY id"""),
        {"dag": spec.dag_id, "run": deliverable_run_id(work_order), "task": DELIVER_TASK, "src": data_source(spec)},
    ).all()  # fmt: skip


def _library_full(conn: Connection, spec: AnalyticsSpec, work_order: str) -> bool:
    """Whether the work order has billed PROGRAM_CAP analyses of the spec's library already;
    serialised per work order and library, so two first runs never both take the 20th place."""
    library = spec.library_name
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"analytics-cap|{work_order}|{library}"})
    billed = conn.execute(
        text("""SELECT count(DISTINCT dag_id) FROM govops.usage_event
                 WHERE work_order_id = :wo AND service_item_code = :item AND task_id = :task
                   AND attributes ->> 'library' = :library"""),
        {"wo": work_order, "item": dif.ITEMS["analysis"], "task": DELIVER_TASK, "library": library},
    ).scalar_one()  # fmt: skip
    return int(billed) >= dif.PROGRAM_CAP


def meter(
    conn: Connection,
    spec: AnalyticsSpec,
    *,
    run_id: str,
    run_type: str,
    work_order: str,
    lines: list[dif.MeterLine],
    manual_refresh: bool,
    event_time: datetime,
    manifest_uri: str | None,
    try_number: int | None = None,
) -> dict[str, Any]:
    """Bill the run if it is the deliverable's first or a manual refresh; say how it was billed."""
    from govops.ledger.usage import TaskRef, UsageEvent, record_usage

    # Serialise the runs of one deliverable, so the first and the billing are decided once.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{spec.dag_id}|{work_order}"})
    delivered = _delivery(conn, spec, work_order)
    first_run = delivered[0].attributes.get("first_run_id") if delivered else None
    attributes: dict[str, Any] = {"kind": spec.kind, "domains": spec.domains, "spec_sha256": spec_sha256(spec)}
    if spec.kind == "analysis":
        attributes["library"] = spec.library_name
    if manual_refresh:
        if not delivered:
            raise AnalyticsError(f"{spec.name}: work order {work_order} has no delivery yet; a refresh follows one")
        task, billing = TaskRef(spec.dag_id, run_id, "commit", -1, try_number), "manual_refresh"
    elif not delivered and spec.kind == "analysis" and _library_full(conn, spec, work_order):
        return {"billing": "over_cap", "delivery_run_id": None, "usage_event_ids": [], "difficulty": None,
                "billed_work_order_id": None}  # fmt: skip
    elif not delivered or first_run == run_id:
        task, billing = TaskRef(spec.dag_id, deliverable_run_id(work_order), DELIVER_TASK, -1, try_number), "delivery"
        attributes["first_run_id"] = first_run or run_id
    else:
        billing = "automatic_refresh" if run_type in AUTOMATIC_RUN_TYPES else "correction"
        return {"billing": billing, "delivery_run_id": first_run, "usage_event_ids": [], "difficulty": None,
                "billed_work_order_id": None}  # fmt: skip
    events = [
        UsageEvent(task=task, service_item_code=line.service_item, quantity=line.quantity, unit=line.unit,
                   event_time=event_time, work_order_id=line.work_order, data_source=data_source(spec),
                   records=None, department=spec.department, manifest_uri=manifest_uri,
                   attributes={**attributes, "difficulty": str(line.difficulty), "basis": line.basis, "run_id": run_id})
        for line in lines
    ]  # fmt: skip
    record_usage(conn, events)
    ids = conn.execute(
        text("""SELECT id FROM govops.usage_event WHERE dag_id = :dag AND run_id = :run AND task_id = :task
                   AND data_source = :src ORDER BY id"""),
        {"dag": task.dag_id, "run": task.run_id, "task": task.task_id, "src": data_source(spec)},
    ).scalars().all()  # fmt: skip
    return {"billing": billing, "delivery_run_id": first_run or run_id, "usage_event_ids": list(ids),
            "difficulty": str(lines[0].difficulty), "billed_work_order_id": lines[0].work_order}  # fmt: skip


def read_outputs(manifest: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The result rows of each output, read back from the run's versioned lake datasets."""
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    found = {}
    for out in manifest["outputs"]:
        if out.get("kind") != "parquet":  # a fitted model is not a result table
            continue
        filesystem, path = pafs.FileSystem.from_uri(out["uri"])
        table = pq.read_table(path, filesystem=filesystem)
        found[out["name"]] = table.select(out["columns"]).to_pylist()
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would round
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def commit(
    engine: Engine,
    spec: AnalyticsSpec,
    manifest: Mapping[str, Any],
    prepared: Mapping[str, Any],
    *,
    run_type: str,
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Record the run, its parameters, input versions, result rows and delivered files (in
    ``outputs``, ``kind: file``), and meter it: one transaction, so a result is never
    recorded unbilled or billed unrecorded."""
    run = manifest["run"]
    results = read_outputs(manifest)
    lines = [dif.MeterLine(**{**line, "difficulty": Decimal(line["difficulty"])}) for line in prepared["lines"]]
    with engine.begin() as conn:
        billed = meter(
            conn, spec, run_id=run["run_id"], run_type=run_type, work_order=prepared["work_order_id"], lines=lines,
            manual_refresh=prepared["manual_refresh"], event_time=datetime.fromisoformat(manifest["finished_at"]),
            manifest_uri=manifest.get("manifest_uri"), try_number=run.get("try_number"),
        )  # fmt: skip
        pk = conn.execute(
            text(
                """INSERT INTO govops.analytics_run (spec_name, kind, dag_id, run_id, run_type, work_order_id, billing,
                       billed_work_order_id, difficulty, delivery_run_id, usage_event_ids, spec_sha256, spec,
                       parameters, inputs, outputs, manifest_uri)
                   VALUES (:name, :kind, :dag, :run, :rt, :wo, :billing, :bwo, :d, :drun, :ids, :sha,
                       CAST(:spec AS jsonb), CAST(:params AS jsonb), CAST(:inputs AS jsonb),
                       CAST(:outputs AS jsonb), :m)
                   ON CONFLICT (dag_id, run_id) DO UPDATE SET run_type = EXCLUDED.run_type,
                       work_order_id = EXCLUDED.work_order_id, billing = EXCLUDED.billing,
                       billed_work_order_id = EXCLUDED.billed_work_order_id, difficulty = EXCLUDED.difficulty,
                       delivery_run_id = EXCLUDED.delivery_run_id, usage_event_ids = EXCLUDED.usage_event_ids,
                       spec_sha256 = EXCLUDED.spec_sha256, spec = EXCLUDED.spec, parameters = EXCLUDED.parameters,
                       inputs = EXCLUDED.inputs, outputs = EXCLUDED.outputs, manifest_uri = EXCLUDED.manifest_uri,
                       recorded_at = now()
                   RETURNING id"""
            ),
            {"name": spec.name, "kind": spec.kind, "dag": run["dag_id"], "run": run["run_id"], "rt": run_type,
             "wo": prepared["work_order_id"], "billing": billed["billing"], "bwo": billed["billed_work_order_id"],
             "d": billed["difficulty"], "drun": billed["delivery_run_id"], "ids": billed["usage_event_ids"],
             "sha": spec_sha256(spec), "spec": spec.model_dump_json(),
             "params": json.dumps(prepared["parameters"], ensure_ascii=False),
             "inputs": json.dumps(manifest["inputs"], ensure_ascii=False, default=str),
             "outputs": json.dumps([*manifest["outputs"], *({"name": n, "kind": "file", "uri": u}
                                                           for n, u in (files or {}).items())],
                                   ensure_ascii=False, default=str),
             "m": manifest.get("manifest_uri")},
        ).scalar_one()  # fmt: skip
        conn.execute(text("DELETE FROM govops.analytics_result WHERE run_pk = :pk"), {"pk": pk})
        rows = [
            {"pk": pk, "out": name, "n": n,
             "row": json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False)}
            for name, output_rows in results.items() for n, row in enumerate(output_rows, start=1)
        ]  # fmt: skip
        if rows:
            conn.execute(
                text("INSERT INTO govops.analytics_result (run_pk, output, row_no, row) "
                     "VALUES (:pk, :out, :n, CAST(:row AS jsonb))"), rows,
            )  # fmt: skip
    return {"spec": spec.name, "run_pk": pk, **billed, "rows": {k: len(v) for k, v in results.items()}}
