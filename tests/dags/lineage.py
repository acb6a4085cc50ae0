"""OpenLineage under dag.test(): the provider's listener with the ``file`` transport, for
one block of a test (``openlineage_events``), and the check that a Spark task's COMPLETE
event names the datasets of its manifest (``assert_manifest_lineage``; the event comes from
``SparkJobOperator.get_openlineage_facets_on_complete``).

OpenLineage is off in every other test: the provider disables itself when no transport is
configured, so its plugin registers no listener. The block configures the transport and
registers the listener in the task runner's listener manager itself (the plugins were loaded
once per process, maybe before), then removes both."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from govops.spark import manifest as manifests

SETTINGS = ("AIRFLOW__OPENLINEAGE__TRANSPORT", "AIRFLOW__OPENLINEAGE__NAMESPACE",
            "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD")  # fmt: skip


def _clear_openlineage_config() -> None:
    from airflow.providers.openlineage import conf

    for value in vars(conf).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@contextmanager
def openlineage_events(events: Path) -> Iterator[Path]:
    """Within the block, tasks run by dag.test() emit OpenLineage events as JSON lines to ``events``."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager

    saved = {k: os.environ.get(k) for k in SETTINGS}
    os.environ.update({
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "govops-test",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",  # no fork of the test process
    })  # fmt: skip
    _clear_openlineage_config()
    manager = get_listener_manager()
    listener = get_openlineage_listener()
    manager.add_listener(listener)
    try:
        yield events
    finally:
        manager.pm.unregister(listener)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _clear_openlineage_config()


def assert_manifest_lineage(events: Path, lake: Path, dag_id: str, run_id: str, task_id: str, table: str) -> None:
    """The task's one COMPLETE event: its input is the JDBC table the manifest read, its
    outputs the lake folders the manifest wrote, each with the rows the manifest counted."""
    manifest = manifests.read(manifests.manifest_uri(lake.as_uri(), dag_id, run_id, task_id, -1))
    sent = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    complete = [e for e in sent if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{dag_id}.{task_id}"]
    assert len(complete) == 1, [(e["eventType"], e["job"]["name"]) for e in sent]
    event: dict[str, Any] = complete[0]
    assert event["job"]["namespace"] == "govops-test"
    (source,) = manifest["inputs"]
    jdbc = urlsplit(source["uri"].removeprefix("jdbc:"))  # jdbc:postgresql://host:port/database
    assert source["table"] == table and jdbc.scheme == "postgresql"
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [
        (f"postgres://{jdbc.netloc}", f"{jdbc.path.strip('/')}.{table}")]  # fmt: skip
    assert [(o["namespace"], o["name"]) for o in event["outputs"]] == [
        ("file", o["uri"].removeprefix("file://")) for o in manifest["outputs"]]  # fmt: skip
    assert [o["outputFacets"]["outputStatistics"]["rowCount"] for o in event["outputs"]] == [
        o["rows"] for o in manifest["outputs"]]  # fmt: skip
