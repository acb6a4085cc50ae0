import json

import pytest

from govops.spark import manifest as m

RUN = {"run_id": "r1", "task_id": "t", "try_number": 2}


def good() -> dict:
    return {
        "manifest_version": 1,
        "job": "extract",
        "status": "succeeded",
        "run": {"dag_id": "d", "run_id": "r1", "task_id": "t", "map_index": 0, "try_number": 2},
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "inputs": [],
        "outputs": [],
        "counts": {"read": 10, "written": 8, "rejected": 2},
        "metering": [],
    }


def test_a_good_manifest_validates() -> None:
    m.validate(good(), expected_run=RUN, uri="u")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("counts"), "missing field(s) counts"),
        (lambda d: d["run"].update(try_number=1), "run.try_number is 1, expected 2 (a stale manifest?)"),
        (lambda d: d.update(status="failed", error="boom"), "status is 'failed': boom"),
        (lambda d: d["counts"].update(written=9), "counts do not reconcile: read 10 != written 9 + rejected 2"),
        (lambda d: d["counts"].update(rejected=-1), "counts.rejected must be a non-negative integer"),
        (lambda d: d.update(manifest_version=2), "manifest_version 2 is not 1"),
    ],
)
def test_bad_manifests_name_the_field(change, message: str) -> None:
    d = good()
    change(d)
    with pytest.raises(m.ManifestError) as err:
        m.validate(d, expected_run=RUN, uri="file:///x.json")
    assert message in str(err.value)
    assert str(err.value).startswith("file:///x.json: ")


def test_manifest_location_is_per_task_instance_and_path_safe() -> None:
    uri = m.manifest_uri("file:///lake/", "dag", "manual__2026-01-01T00:00:00+00:00", "extract", 3)
    assert uri == "file:///lake/_manifests/dag/manual__2026-01-01T00_00_00_00_00/extract.3.json"
    assert m.manifest_uri("hdfs://nn/lake", "d", "r", "t", -1) == "hdfs://nn/lake/_manifests/d/r/t.json"


def test_read_and_remove_round_trip(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(good()))
    assert m.read(path.as_uri())["job"] == "extract"
    m.remove(path.as_uri())
    assert not path.exists()
    with pytest.raises(m.ManifestError, match="no manifest"):
        m.read(path.as_uri())
    path.write_text("{not json")
    with pytest.raises(m.ManifestError, match="not valid JSON"):
        m.read(path.as_uri())
