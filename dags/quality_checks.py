"""
### 归集端 / 应用端质量检查 · Data quality checks (catalog items 07 and 08)

Runs a Great Expectations suite of `include/quality_suites/` over its lake dataset:
ingestion-side suites (归集端, item 07: basic, generic rules) or application-side suites
(应用端, item 08: business, cross-table and balance rules on fused data). Every rule is
tagged with its quality dimension and severity.

* **Spark job**: `spark_jobs/check_quality.py`: the whole suite in a couple of passes
  (`govops.quality.engine`), with the failing rows. **Metered** by `publish`, once every
  output is written: batch mode one table (张) per run, stream mode (only what arrived
  since the last run) per record (万条), against the `work_order_id` param.
* **Outputs**: the check log (`govops.quality_check_run` / `quality_check_result`), the
  full anomaly list (异常数据清单) with its CSV / XLSX exports in the data owner's zone
  `<lake>/owner/<department>/quality/<suite>/…`, the quality report with the masked
  exports and the GX data docs under `<lake>/reports/quality/` (the `publish` task's XCom
  and log give both links).
* **Gate**: the score and the suite's thresholds decide pass / warn / fail; an ingestion
  suite that fails stops here, so the batch is not promoted to the `clean` zone.
* **Governance chain** (`govops.chain`): one more DAG `quality_check__<suite>` per ingestion
  suite, scheduled on its raw dataset's Asset: each new version a pipeline publishes is
  checked, and a batch that passes is promoted and published as the `clean/…` Asset, which
  starts its labeling and masking. A manual run's promotion is published too (the asset
  alias `govops-promoted`).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetAlias, Param, task

from govops import chain
from govops.dag_policy import default_args, fail_fast, service_tags
from govops.operators import SparkJobOperator

PROMOTED = AssetAlias("govops-promoted")  # a manual run's promotion, to whichever clean dataset


def chain_doc(link: chain.Link) -> str:
    return (f"### 治理链 · Quality check of `{link.raw}` (governance chain)\n\n"
            f"Scheduled on the Asset `{link.raw}`: every version a pipeline publishes is checked with the "
            f"suite `{link.suite}` (batch mode, the DAG's default work order). A batch that passes the gate is "
            f"promoted and published as the Asset `{link.clean}`, which starts its labeling and masking. "
            f"Declared in `meta.govops` of `{link.path.name}`; the tasks are those of `quality_check`.")


def quality_dag(dag_id: str, link: chain.Link | None = None) -> DAG:
    """The manual service (no link) or the chain's check of one raw dataset: the same tasks."""
    with DAG(
        dag_id=dag_id,
        schedule=[chain.asset(link.raw)] if link else None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__ if link is None else chain_doc(link),
        tags=[*service_tags("07"), "item:08"],
        default_args=default_args(),
        params={
            "suite": Param(link.suite if link else "public_security_persons.ingestion", type="string",
                           pattern=r"^[A-Za-z0-9_.-]+$",
                           description="the suite: a file name under include/quality_suites/, without .json"),
            "work_order_id": Param("WO-DEMO-QUALITY", type="string", description="工单 to meter against"),
            "mode": Param("batch", type="string", enum=["batch", "stream"],
                          description="batch: the whole dataset, per table; stream: what arrived since the last run, "
                                      "per record"),
            "anomaly_list": Param(True, type="boolean", description="write the failing rows (off: counts only)"),
        },
    ) as dag:

        @task
        @fail_fast()  # a refusal (work order, spec, suite, policy) needs a person, not a retry
        def prepare(params: dict | None = None, dag_run=None, triggering_asset_events=None) -> dict:
            """Check the suite file and the work order; in stream mode, which batches to meter.
            A run of the chain checks the dataset and version its asset event names."""
            from airflow.sdk.exceptions import AirflowSkipException
            from sqlalchemy import create_engine

            from govops import settings
            from govops.ledger.usage import contract_timezone
            from govops.pipelines import stream
            from govops.quality import promotion, suites
            from govops.settlement.workorders import require_runnable

            event = None
            if triggering_asset_events:  # a run of the chain, for the dataset its event names
                declared = chain.links()
                current = chain.find("quality", params["suite"], declared)
                event = chain.resolve("quality", current, chain.events(triggering_asset_events), declared,
                                      settings.lake_root())
                now = promotion.version(settings.lake_root(), current.raw)
                if event.version != now:
                    raise AirflowSkipException(f"{event.dataset} version {event.version} was replaced by {now}: "
                                               "the newer version's own event checks it")  # fmt: skip
                print(f"governance chain: {event.dataset} version {event.version} published by {event.source}")
            suite = suites.load(params["suite"], settings.lake_root())  # a malformed suite stops here, named
            unit = "table" if params["mode"] == "batch" else "record"
            require_runnable(params["work_order_id"], suite.service_item, unit)
            plan = {"metered_through": "", "meter_through": ""}
            if params["mode"] == "stream":
                engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
                try:
                    with engine.connect() as conn:
                        found = stream.metering_plan(
                            conn, dag_run.dag_id, dag_run.run_id,
                            stream.stream_id(settings.lake_root(), f"quality/{suite.name}"),
                            params["work_order_id"], service_item=suite.service_item)  # fmt: skip
                finally:
                    engine.dispose()
                plan = {k: "" if found[k] is None else str(found[k]) for k in plan}
            # The job judges "today" in the contract's time zone and reads code tables beside the suites.
            job_env = {"GOVOPS_TIMEZONE": str(contract_timezone()), suites.SUITES_DIR_ENV: str(suites.suites_dir())}
            return {"suite": str(suite.path), "side": suite.side, "dataset": suite.dataset, "env": job_env,
                    "version": promotion.version(settings.lake_root(), suite.dataset), **plan}  # fmt: skip

        prepared = prepare()
        check = SparkJobOperator(
            task_id="check",
            job="check_quality",
            job_args={
                "suite": "{{ ti.xcom_pull(task_ids='prepare')['suite'] }}",
                "mode": "{{ params.mode }}",
                "anomaly-list": "{{ 'on' if params.anomaly_list else 'off' }}",
                "metered-through": "{{ ti.xcom_pull(task_ids='prepare')['metered_through'] }}",
                "meter-through": "{{ ti.xcom_pull(task_ids='prepare')['meter_through'] }}",
            },
            work_order_id="{{ params.work_order_id }}",
            env_vars={name: f"{{{{ ti.xcom_pull(task_ids='prepare')['env']['{name}'] }}}}"
                      for name in ("GOVOPS_TIMEZONE", "GOVOPS_QUALITY_SUITES_DIR")},
            meter=False,  # publish meters, once the outputs exist
        )

        @task
        def publish(manifest: dict, prepared: dict) -> dict:
            """Score, GX validation result and data docs, report, anomaly exports, check log."""
            from sqlalchemy import create_engine

            from govops import settings
            from govops.quality.publish import publish as publish_run

            engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
            try:
                summary = publish_run(engine, manifest, prepared["suite"], settings.lake_root())
            finally:
                engine.dispose()
            if summary["report"]:
                print(f"quality report: {summary['report']}\ndata docs: {summary['data_docs']}")
                for rule, error in summary["errors"].items():
                    print(f"rule error: {rule}: {error}")
            else:
                print("nothing arrived since the last run: nothing checked")
            return summary

        @task
        def gate(summary: dict) -> dict:
            """A failing check stops here: its batch goes no further."""
            from airflow.sdk.exceptions import AirflowFailException

            if summary["status"] == "fail":
                raise AirflowFailException(
                    f"{summary['suite']}: quality check failed (score {summary['score']}, failed rules "
                    f"{summary['failed_rules']}); see {summary['report']}"
                )
            return summary

        # The promoted batch is published as the clean dataset's Asset (the chain's next step).
        clean = chain.asset(link.clean) if link else None

        @task(outlets=[clean] if clean else [PROMOTED])
        def promote(summary: dict, prepared: dict, params: dict | None = None, outlet_events=None) -> dict:
            """An ingestion batch that passed (or only warned) moves to the clean zone."""
            from airflow.sdk.exceptions import AirflowSkipException

            from govops import settings
            from govops.quality import promotion

            if prepared["side"] != "ingestion" or params["mode"] != "batch":
                if clean:  # a skipped task publishes no asset event
                    raise AirflowSkipException("only batch checks of ingestion suites promote")
                return {"promoted": None, "why": "only batch checks of ingestion suites promote"}
            done = promotion.promote(settings.lake_root(), prepared["dataset"], prepared["version"])
            dataset = "clean/" + prepared["dataset"].split("/", 1)[1]
            extra = chain.publication(dataset, settings.lake_root(), promoted_from=prepared["dataset"],
                                      suite=summary["suite"], score=summary["score"],
                                      status=summary["status"])  # fmt: skip
            if clean:
                outlet_events[clean].extra = extra
            else:
                outlet_events[PROMOTED].add(chain.asset(dataset), extra=extra)
            return done

        summary = publish(check.output, prepared)
        prepared >> check
        promote(gate(summary), prepared)
    return dag


quality_check = quality_dag("quality_check")
for _link in chain.declared_links():  # one DAG per dataset an ingestion suite gates
    _dag_id = chain.dag_id("quality_check", _link.suite)
    globals()[_dag_id] = quality_dag(_dag_id, _link)
