"""The check log (检查日志) in PostgreSQL: one ``quality_check_run`` row per suite run and one
``quality_check_result`` row per rule. Writing a run again (a retry, a re-run) replaces its
rows in one transaction: the log never holds a run twice. A rule that could not run has its
error in ``quality_check_result.error``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from govops.quality.results import Score, unexpected_percent
from govops.quality.suites import Suite


@dataclass(frozen=True)
class RunRef:
    dag_id: str
    run_id: str
    task_id: str


def record_run(
    conn: Connection, run: RunRef, suite: Suite, figures: dict[str, Any], score: Score, *,
    report_uri: str | None = None, data_docs_uri: str | None = None, work_order_id: str | None = None,
) -> int:  # fmt: skip
    """Write (or rewrite) the run and its rules, in the caller's transaction; returns the run's id."""
    run_id = conn.execute(
        text(
            """INSERT INTO govops.quality_check_run
                 (dag_id, run_id, task_id, dataset, side, suite, suite_sha256, mode, rows_checked, anomaly_rows,
                  score, dimension_scores, status, anomalies_uri, report_uri, data_docs_uri, work_order_id)
               VALUES (:dag_id, :run_id, :task_id, :dataset, :side, :suite, :sha, :mode, :rows, :anomaly_rows,
                  :score, CAST(:dimensions AS jsonb), :status, :anomalies, :report, :docs, :wo)
               ON CONFLICT (dag_id, run_id, task_id, dataset) DO UPDATE SET
                  side = EXCLUDED.side, suite = EXCLUDED.suite, suite_sha256 = EXCLUDED.suite_sha256,
                  mode = EXCLUDED.mode, rows_checked = EXCLUDED.rows_checked,
                  anomaly_rows = EXCLUDED.anomaly_rows, score = EXCLUDED.score,
                  dimension_scores = EXCLUDED.dimension_scores, status = EXCLUDED.status,
                  anomalies_uri = EXCLUDED.anomalies_uri, report_uri = EXCLUDED.report_uri,
                  data_docs_uri = EXCLUDED.data_docs_uri, work_order_id = EXCLUDED.work_order_id,
                  finished_at = now()
               RETURNING id"""
        ),
        {
            "dag_id": run.dag_id, "run_id": run.run_id, "task_id": run.task_id, "dataset": suite.dataset,
            "side": suite.side, "suite": suite.name, "sha": suite.sha256, "mode": figures["mode"],
            "rows": figures["rows"], "anomaly_rows": figures.get("anomaly_rows") or 0, "score": score.score,
            "dimensions": json.dumps(score.by_dimension), "status": score.status,
            "anomalies": figures.get("anomalies"), "report": report_uri, "docs": data_docs_uri,
            "wo": work_order_id,
        },
    ).scalar_one()
    conn.execute(text("DELETE FROM govops.quality_check_result WHERE check_run_id = :id"), {"id": run_id})
    conn.execute(
        text(
            """INSERT INTO govops.quality_check_result
                 (check_run_id, rule, expectation_type, column_name, dimension, severity, rows_checked,
                  unexpected, unexpected_percent, success, error)
               VALUES (:id, :rule, :type, :column, :dimension, :severity, :rows, :unexpected, :percent, :ok,
                       :error)"""
        ),
        [
            {
                "id": run_id, "rule": f["rule"], "type": f["type"], "column": ",".join(f["columns"]) or None,
                "dimension": f["dimension"], "severity": f["severity"],
                "rows": f["element_count"] - f["missing_count"], "unexpected": f["unexpected_count"],
                "percent": unexpected_percent(f),
                "ok": bool(f["success"]) and not f.get("exception"),
                "error": f.get("exception"),
            }
            for f in figures["results"]
        ],
    )
    return int(run_id)


def history(conn: Connection, suite: str, limit: int = 30) -> list[dict[str, Any]]:
    """The suite's last runs, oldest first: for the trend chart."""
    rows = conn.execute(
        text(
            """SELECT run_id, finished_at, score, status, rows_checked, anomaly_rows, dimension_scores
                 FROM govops.quality_check_run WHERE suite = :suite
                ORDER BY finished_at DESC, id DESC LIMIT :limit"""
        ),
        {"suite": suite, "limit": limit},
    ).mappings()
    found = [dict(r) for r in rows]
    return found[::-1]
