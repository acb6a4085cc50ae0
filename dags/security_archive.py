"""
### 历史数据归档及销毁 · Archive, restore and destruction (catalog item 21)

Moves old partitions of a lake dataset to the archive zone, brings them back, or destroys
them for good, by the dataset's retention policy in `include/security/retention.yaml`
(partition column, `keep`, archive location, `destroy_after`, data key, fingerprint columns).

* **Params**: `action` = `preview` (a dry run: logs every partition and file that would be
  archived, changes nothing) | `archive` | `restore` | `destroy`; `dataset` (a policy of the
  file); `partitions` (optional: these partitions only, e.g. `event_date=2025-01-31`);
  `as_of` (YYYY-MM-DD, default the run's date) for what is due; `work_order_id` (item 21). A restore
  without `partitions` restores every archived partition of the dataset.
* **Tasks**: `prepare` (policy, work order, for a destruction the approval, and the run's
  partitions: fixed at the first attempt, so re-runs redo exactly those) → `process`, one
  mapped task per partition (archive: copy with sha256, manifest, verify, remove live;
  restore: copy back, verify, remove the archived copy; destroy: inventory and fingerprints,
  then delete live and archived copies) → `finalize` (a destruction: crypto-shredding of the
  dataset's key when nothing of it is left, the residue scan of the lake and the logs, the
  destruction certificate; fails naming any residue) → `meter` → `report`.
* **Resumable**: every partition's step is recorded in `govops.security_archive_operation`;
  clearing a failed task (or the run) finishes the work without losing or duplicating data.
* **Destruction** refuses to run without a runnable work order of item 21 and an approval
  (`govops.security_destruction_approval`, approver ≠ requester) covering the partitions.
* **Metered**: item 21, unit `record` (billed per 万条), the records archived or destroyed,
  one event per run, exactly once across retries and re-runs; a restore meters nothing.
* **Outputs**: `_ARCHIVE_MANIFEST.json` in each archived partition; certificates in
  `<lake>/reports/security/destruction/<dataset>/<run>/`; the report with charts in
  `<lake>/reports/security/archive/report.html`; an audit-log entry per operation.
* **Code**: `govops.security.archive`, `govops.security.destruction`,
  `govops.security.archive_tasks`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from govops.dag_policy import default_args, service_tags

with DAG(
    dag_id="security_archive",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=service_tags("21"),
    default_args=default_args(),
    params={
        "work_order_id": Param("WO-DEMO-ARCHIVE", type="string", description="工单 of item 21 to meter against"),
        "action": Param("preview", type="string", enum=["preview", "archive", "restore", "destroy"],
                        description="preview is a dry run of archive"),
        "dataset": Param("raw/frontdb/government_services/service_events_history", type="string",
                         description="<zone>/<dataset> with a policy in include/security/retention.yaml"),
        "partitions": Param([], type="array", items={"type": "string"},
                            description="only these partitions (e.g. event_date=2025-01-31); empty: what is due"),
        "as_of": Param("", type="string", description="YYYY-MM-DD for what is due; empty: the run's date"),
    },
):

    @task
    def prepare(params: dict | None = None, dag_run=None) -> list[str]:
        """Policy, work order, approval; the run's partitions (a preview logs its plan and maps nothing)."""
        from govops.ledger.usage import contract_timezone
        from govops.security import archive_tasks

        moment = dag_run.logical_date or dag_run.run_after
        prepared = archive_tasks.prepare(params, dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                         run_date=moment.astimezone(contract_timezone()).date())  # fmt: skip
        return prepared["partitions"]

    @task(map_index_template="{{ partition_name }}")
    def process(partition: str, params: dict | None = None, ti=None) -> dict:
        """One partition: archive, restore or destroy it (resuming an interrupted attempt)."""
        from airflow.sdk import get_current_context

        from govops.security import archive_tasks

        get_current_context()["partition_name"] = partition
        return archive_tasks.process(params, partition, dag_id=ti.dag_id, run_id=ti.run_id)

    @task
    def finalize(done: list, params: dict | None = None, ti=None) -> dict:
        """A destruction: key shredding, residue check, certificate. Otherwise the run's totals."""
        from airflow.configuration import conf

        from govops.security import archive_tasks

        logs = [conf.get("logging", "base_log_folder")]
        return archive_tasks.finalize(params, dag_id=ti.dag_id, run_id=ti.run_id, log_folders=logs)

    @task
    def meter(totals: dict, params: dict | None = None, ti=None) -> dict:
        """One usage event per run (item 21, records archived or destroyed); a restore meters nothing."""
        from govops.ledger.usage import TaskRef
        from govops.security import archive_tasks

        task_ref = TaskRef(ti.dag_id, ti.run_id, ti.task_id, ti.map_index if ti.map_index is not None else -1,
                           ti.try_number)  # fmt: skip
        return archive_tasks.meter(params, task_ref)

    @task
    def report() -> str:
        """The archive and destruction report with charts, over every run."""
        from govops.security import archive_tasks

        return archive_tasks.report()

    totals = finalize(process.expand(partition=prepare()))
    meter(totals) >> report()
