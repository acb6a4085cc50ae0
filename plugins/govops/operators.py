"""The one way Airflow runs Spark work: SparkJobOperator.

It submits a program from ``spark_jobs/`` with ``SparkSubmitOperator`` (master, deploy
mode and queue come from the ``spark_default`` connection), passes the run's identity and
work order, ships the govops package with ``--py-files``, reads the job's manifest back,
checks it belongs to this attempt and reconciles, meters it into the ledger, and returns
it as the task's XCom.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from govops import settings
from govops.spark import jdbc
from govops.spark import manifest as manifests


class SparkJobOperator(SparkSubmitOperator):
    template_fields: Sequence[str] = (
        *SparkSubmitOperator.template_fields, "job_args", "work_order_id", "department", "data_key",
    )
    ui_color = "#fde9c9"

    def __init__(
        self,
        *,
        job: str,
        job_args: Mapping[str, Any] | None = None,
        work_order_id: str | None = None,
        department: str | None = None,
        jdbc_conn_id: str | None = None,
        data_key: str | None = None,
        meter: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("conn_id", settings.SPARK_CONN_ID)
        kwargs.setdefault("name", f"govops-{job}")
        super().__init__(application=str(settings.spark_jobs_dir() / f"{job}.py"), **kwargs)
        self.job = job
        self.job_args = dict(job_args or {})
        self.work_order_id = work_order_id
        self.department = department
        self.jdbc_conn_id = jdbc_conn_id
        self.data_key = data_key
        self.meter = meter

    def execute(self, context: Any) -> dict[str, Any]:
        from sqlalchemy import create_engine

        from govops.ledger.usage import TaskRef, meter_manifest
        from govops.spark.package import build_zip

        ti = context["ti"]
        task = TaskRef(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=ti.map_index if ti.map_index is not None else -1,
            try_number=ti.try_number,
        )
        lake_root = settings.lake_root()
        uri = manifests.manifest_uri(lake_root, task.dag_id, task.run_id, task.task_id, task.map_index)
        manifests.remove(uri)
        args = {
            "dag-id": task.dag_id,
            "run-id": task.run_id,
            "task-id": task.task_id,
            "map-index": task.map_index,
            "try-number": task.try_number,
            "lake-root": lake_root,
            "manifest": uri,
            "work-order-id": self.work_order_id,
            **self.job_args,
        }
        if self.jdbc_conn_id:
            # Credentials are resolved now, never at parse time; the password goes in the
            # environment, not on the command line where `ps` would show it.
            source = jdbc.from_database_url(settings.connection_url(self.jdbc_conn_id))
            args.update({"jdbc-url": source.url, "user": source.user})
            self.env_vars = {**(self.env_vars or {}), jdbc.PASSWORD_ENV: source.password or ""}
            if self.jars is None:
                self.jars = ",".join(settings.jdbc_jars()) or None
        if self.data_key:
            # The data key's versions, unwrapped now, go in the job's environment (as the JDBC
            # password does) and are masked in every log line Airflow writes.
            from govops.security.keys import JOB_ENV

            self.env_vars = {**(self.env_vars or {}), JOB_ENV: self._data_keys()}
        self.application_args = [str(x) for k, v in args.items() if v is not None for x in (f"--{k}", v)]
        self.py_files = str(build_zip())
        try:
            super().execute(context)
        except Exception as exc:
            failure = self._job_failure(uri, task.try_number)
            if failure is None:
                raise
            raise failure from exc

        manifest = manifests.read(uri)
        manifests.validate(
            manifest,
            expected_run={"run_id": task.run_id, "task_id": task.task_id, "try_number": task.try_number},
            uri=uri,
        )
        if self.meter:
            started = time.perf_counter()
            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                result = meter_manifest(
                    engine,
                    manifest,
                    task,
                    work_order_id=self.work_order_id,
                    department=self.department,
                    manifest_uri=uri,
                )
            finally:
                engine.dispose()
            manifest["metering_s"] = round(time.perf_counter() - started, 4)
            self.log.info("metered %s: %d new event(s), %d already recorded", uri, result.inserted, result.unchanged)
        manifest["manifest_uri"] = uri
        return manifest

    def _job_failure(self, uri: str, try_number: int) -> Exception | None:
        """The job's own error from this attempt's manifest, as the task's exception: a
        refusal (the manifest says not retryable) fails at once, without retries. None when
        the job wrote no manifest (killed, or it never started)."""
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        try:
            manifest = manifests.read(uri)
        except manifests.ManifestError:
            return None
        if manifest.get("run", {}).get("try_number") != try_number or manifest.get("status") != "failed":
            return None
        lines = (manifest.get("error") or "").strip().splitlines()
        error = manifest.get("error_message") or (lines[-1] if lines else "no error recorded")
        message = f"Spark job {self.job} failed: {error} (manifest {uri})"
        return AirflowException(message) if manifest.get("retryable", True) else AirflowFailException(message)

    def _data_keys(self) -> str:
        from airflow.sdk.log import mask_secret
        from sqlalchemy import create_engine

        from govops.security import keys

        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            with engine.begin() as conn:
                active, _ = keys.data_key(conn, self.data_key, by=f"{self.dag_id}.{self.task_id}")
                versions = keys.key_versions(conn, self.data_key)
        finally:
            engine.dispose()
        payload = keys.encode_for_job(self.data_key, versions, active)
        mask_secret(payload)
        for key in versions.values():
            mask_secret(base64.b64encode(key).decode())
        return payload

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:  # -> OperatorLineage
        """OpenLineage (provider ``apache-airflow-providers-openlineage``, when configured): the
        datasets this attempt's job read and wrote, from its manifest."""
        from govops.spark.lineage import operator_lineage

        map_index = task_instance.map_index if task_instance.map_index is not None else -1
        uri = manifests.manifest_uri(settings.lake_root(), task_instance.dag_id, task_instance.run_id,
                                     task_instance.task_id, map_index)  # fmt: skip
        return operator_lineage(manifests.read(uri))
