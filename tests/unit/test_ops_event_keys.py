"""Event orders' dedup key and classification (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from govops.ops.event_orders import classify, dedup_key

D1, D2 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)


def test_the_key_is_dag_task_and_interval_not_the_run() -> None:
    assert dedup_key("d", "t", "manual__1", D1, D2, D1) == dedup_key("d", "t", "manual__2", D1, D2, D1)
    assert dedup_key("d", "t", "r", D1, D2, D1) == "d|t|2026-11-01T00:00:00+00:00/2026-11-02T00:00:00+00:00"
    assert dedup_key("d", "t", "r", None, None, D1) == "d|t|2026-11-01T00:00:00+00:00"
    assert dedup_key("d", "t", "r", None, None, None) == "d|t|run:r"
    assert dedup_key("d", "t1", "r", D1, D2, D1) != dedup_key("d", "t2", "r", D1, D2, D1)


def test_classification_by_the_error_text() -> None:
    assert classify("ManifestError: m.json: counts do not reconcile: read 3 != written 2 + rejected 0")[:2] == (
        "reconciliation", "urgent")
    assert classify("AirflowFailException: s: quality check failed (score 9)")[:2] == ("quality_gate", "normal")
    assert classify("AirflowFailException: WORK_ORDER_REFUSED: work order W is accepted")[:2] == ("refusal", "normal")
    assert classify("RuntimeError: boom")[:2] == ("failed", "urgent")
