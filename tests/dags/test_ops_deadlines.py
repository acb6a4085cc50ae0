"""The cluster policy (plugins/airflow_local_settings.py) gives every scheduled DAG its
service item's deadline (include/catalog/job_deadlines.yaml) as an Airflow Deadline Alert
when GOVOPS_DEADLINE_ALERTS is on, with no change to the DAG files; off, it adds none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govops import settings

pytestmark = pytest.mark.airflow


def parse(*files: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    dags = {}
    for name in files:
        bag = DagBag(dag_folder=str(settings.repo_root() / "dags" / name))
        assert not bag.import_errors, bag.import_errors
        dags.update(bag.dags)
    return dags


def test_scheduled_dags_get_their_items_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import AsyncCallback
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline
    from airflow.serialization.serialized_objects import DagSerialization

    assert not parse("ops_job_health.py")["ops_job_health"].deadline
    monkeypatch.setenv("GOVOPS_DEADLINE_ALERTS", "1")
    dags = parse("ops_job_health.py", "extraction_pipelines.py")
    found = {d.dag_id: d.deadline[0].interval for d in dags.values() if d.deadline}
    assert found["ops_job_health"] == timedelta(minutes=30)  # item 05
    assert found["pipeline_frontdb_persons"] == timedelta(hours=4)  # item 04
    assert found["pipeline_frontdb_events_capture"] == timedelta(minutes=30)  # item 02
    unscheduled = {d.dag_id for d in dags.values() if not d.timetable.can_be_scheduled}
    assert unscheduled and not unscheduled & set(found)
    alert = dags["ops_job_health"].deadline[0]
    assert isinstance(alert.reference, DagRunQueuedAtDeadline) and isinstance(alert.callback, AsyncCallback)
    assert (alert.callback.path, alert.callback.kwargs) == ("govops.ops.deadlines.deadline_missed", {"minutes": 30})
    # It serializes as the DAG processor stores it.
    stored = DagSerialization.to_dict(dags["ops_job_health"])["dag"]["deadline"]
    assert stored[0]["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
