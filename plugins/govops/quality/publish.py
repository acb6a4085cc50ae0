"""After the Spark job: from its manifest, the score and status, the GX validation result
and data docs, the quality report, the anomaly list exports and the check log rows, and
last the run's usage.

Files go to ``<lake>/reports/quality/<suite>/<run>/`` (report, the masked anomalies.csv/.xlsx)
and the data docs site to ``<lake>/reports/quality/data_docs/``; the full exports go to the
data owner's zone, ``<lake>/owner/<department>/quality/<suite>/exports/<run>/``. GX's own
project (its suite and validation result stores, from which the site is rebuilt with every
run's results) lives in ``<GOVOPS_HOME>/gx``.

The run is metered here, not by the Spark task: in the transaction that writes its check
log, once the data docs, the exports and the report are in the lake. A check whose outputs
could not be produced is not billed, and its retry meters it once.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine

from govops import settings
from govops.quality import owner_zone, report, results, store, suites


def _copy_to_lake(local: Path, uri: str) -> None:
    from pyarrow import fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(uri)
    filesystem.create_dir(base, recursive=True)
    pafs.copy_files(str(local), base, destination_filesystem=filesystem)


def publish(engine: Engine, manifest: dict[str, Any], suite_path: str, lake_root: str) -> dict[str, Any]:
    from govops.ledger.usage import TaskRef, meter_manifest
    from govops.spark.manifest import _safe

    figures = next(o for o in manifest["outputs"] if o.get("kind") == "quality")
    run = manifest["run"]
    task = TaskRef(run["dag_id"], run["run_id"], run["task_id"], run.get("map_index", -1), run.get("try_number"))
    suite = suites.load(suite_path, lake_root)
    if suite.sha256 != figures["suite_sha256"]:
        raise ValueError(f"{suite.path} changed while the check ran: run it again")
    if figures["mode"] == "stream" and not figures.get("batches"):  # nothing arrived since the last run
        return {"suite": suite.name, "side": suite.side, "dataset": suite.dataset, "status": "pass", "score": None,
                "rows": 0, "failed_rules": [], "warned_rules": [], "report": None, "data_docs": None}  # fmt: skip
    score = results.score(suite, figures["results"])
    finished = datetime.fromisoformat(manifest["finished_at"])
    validation = results.validation_result(
        suite, figures["results"], run_name=run["run_id"], run_time=finished, batch=suite.dataset,
        extra_meta={"govops": {"dag_id": run["dag_id"], "task_id": run["task_id"], "score": score.score,
                               "status": score.status, "mode": figures["mode"]}},
    )  # fmt: skip
    root = lake_root.rstrip("/")
    folder = f"{root}/reports/quality/{suite.name}/{_safe(run['run_id'])}"
    owner_exports = f"{owner_zone.suite_folder(suite)}/exports/{_safe(run['run_id'])}"
    docs_uri = f"{root}/reports/quality/data_docs"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        site = local / "data_docs"
        page = results.build_data_docs(settings.home() / "gx", site, suite, validation)
        _copy_to_lake(site, docs_uri)
        docs_page = f"{docs_uri}/{quote(page.relative_to(site).as_posix())}"
        exports: dict[str, str] = {}
        exported: dict[str, Any] = {}
        # Stream mode lists the anomalies of this run's micro-batches (none when nothing arrived).
        sources = ([f"{figures['anomalies']}/batch={b}" for b in figures.get("batches", [])]
                   if figures["mode"] == "stream" else [figures["anomalies"]]) if figures.get("anomalies") else []
        if sources:
            # The report's folder gets the masked view only; the full list stays in the owner's zone.
            exported = report.export_anomalies(sources, local / "run", masked=True)
            report.export_anomalies(sources, local / "owner", masked=False)
            _copy_to_lake(local / "owner", owner_zone.uri(root, owner_exports))
            owner_zone.restrict(root, owner_exports)
            exports = {"anomalies.csv": f"{folder}/anomalies.csv", "anomalies.xlsx": f"{folder}/anomalies.xlsx"}
        with engine.begin() as conn:  # the check log and the usage: both or neither, after every file
            run_id = store.record_run(conn, store.RunRef(run["dag_id"], run["run_id"], run["task_id"]), suite,
                                      figures, score, report_uri=f"{folder}/report.html", data_docs_uri=docs_page,
                                      work_order_id=run.get("work_order_id"))  # fmt: skip
            report.write_report(local / "run", suite, figures, score, store.history(conn, suite.name),
                                data_docs=docs_page, exports=exports)  # fmt: skip
            _copy_to_lake(local / "run", folder)
            metered = meter_manifest(conn, manifest, task, work_order_id=run.get("work_order_id"),
                                     manifest_uri=manifest.get("manifest_uri"))  # fmt: skip
    return {
        "check_run_id": run_id, "suite": suite.name, "side": suite.side, "dataset": suite.dataset,
        "status": score.status, "score": score.score, "by_dimension": score.by_dimension,
        "failed_rules": score.failed_rules, "warned_rules": score.warned_rules, "rows": figures["rows"],
        "anomaly_rows": figures.get("anomaly_rows"), "anomalies_exported": exported.get("rows"),
        "report": f"{folder}/report.html", "data_docs": docs_page,
        "errors": {f["rule"]: f["exception"] for f in figures["results"] if f.get("exception")},
        "metered": {"inserted": metered.inserted, "unchanged": metered.unchanged},
    }  # fmt: skip
