"""Labeling on real Spark and PostgreSQL: precision and recall of the detectors on the labeled
evaluation sample (exact figures, column and value level), the labels as versions (same
result: no new version; changed: a new one; an override survives re-detection; confirm),
the labeling log once per run, the audit entries, and the labeling job as spark-submit runs it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from govops.sample_data import security_sample
from govops.security import audit, detectors, labeling
from govops.security.detectors import ColumnDetection
from tests.db import rows
from tests.integration import spark_submit

pytestmark = pytest.mark.integration



# Seed 6, 1,000 rows: 16 columns of 11 data types, 13 decoys and plain columns (a date column
# of birth-date range named registered_on among them).
EXPECTED = {  # data type: (column tp, fp, fn), (value tp, fp, fn)
    "resident_id": ((2, 0, 0), (1971, 0, 19)),  # 20 IDs with a wrong check digit (10 null)
    "uscc": ((1, 0, 0), (970, 0, 30)),  # 30 wrong check characters; 1,000 invalid decoys and 2,000 IDs: 0 fired
    "bank_card": ((1, 0, 0), (970, 0, 30)),  # 30 Luhn failures; 1,000 card-shaped decoys failing Luhn: 0 fired
    "mobile": ((1, 0, 0), (980, 0, 20)),  # 20 numbers a digit short; 50 written "+86 138 1234 5678" found
    "landline": ((1, 0, 0), (1000, 20, 0)),  # 20 random 11-digit numbers starting 010
    "email": ((1, 0, 0), (950, 0, 0)),
    "license_plate": ((1, 0, 0), (900, 0, 0)),
    "coordinate": ((3, 0, 0), (3000, 0, 0)),  # lon, lat and "lon,lat"; amount (80-130, not named lon): 0 fired
    "person_name": ((2, 0, 0), (2000, 46, 0)),  # 黄金周 in the remarks reads like a name
    "address": ((1, 0, 0), (1000, 0, 0)),  # 1,000 organisation names with 市 and 区: 0 fired
    "birth_date": ((1, 0, 0), (1000, 0, 0)),  # 1,000 registration dates of the same range: 0 fired (no hint)
}


def test_precision_and_recall_on_the_labeled_sample(spark: Any, tmp_path: Path) -> None:
    sample = security_sample.build(rows=1000, seed=6)
    folder = sample.write(tmp_path / "security_sample")
    found = detectors.detect(spark.read.parquet(folder.as_posix()))
    assert {c: d.data_type for c, d in found.items()} == sample.truth
    result = detectors.evaluate(found, sample.truth)
    figures = {t: ((c.tp, c.fp, c.fn), (result.values[t].tp, result.values[t].fp, result.values[t].fn))
               for t, c in result.columns.items()}  # fmt: skip
    assert figures == EXPECTED
    table = {r["data_type"]: r for r in result.table()}
    assert table["landline"]["value"] == {"tp": 1000, "fp": 20, "fn": 0, "precision": 0.9804, "recall": 1.0}
    assert table["person_name"]["value"]["precision"] == 0.9775
    assert table["resident_id"]["value"]["recall"] == 0.9905
    assert all(r["column"]["precision"] == r["column"]["recall"] == 1.0 for r in table.values())
    # The decoys came close on no detector: nothing reached even the name-hint threshold.
    decoys = [c for c, t in sample.truth.items() if t is None]
    assert max(found[c].match_ratio for c in decoys) == pytest.approx(0.046)
    assert json.loads((folder / "_truth.json").read_text())["truth"] == sample.truth


def _det(column: str, data_type: str | None, matches: int, non_null: int = 100) -> ColumnDetection:
    return ColumnDetection(column=column, data_type=data_type, match_ratio=matches / non_null, non_null=non_null,
                           matches=matches, name_hint=None, rows=120, candidate=data_type,
                           counts={data_type: matches} if data_type else {}, rule="content" if data_type else "")


def _versions(engine: Engine, dataset: str) -> list[tuple]:
    with engine.connect() as conn:
        return [(lab.column, lab.version, lab.source, lab.data_type, lab.level)
                for lab in labeling.label_history(conn, dataset)]  # fmt: skip


def test_versions_overrides_confirmations_and_the_log(ledger: Engine, ledger_url: str) -> None:
    dataset = f"raw/test/labels_{uuid.uuid4().hex[:6]}"
    first = {"sfzh": _det("sfzh", "resident_id", 98), "tel": _det("tel", "mobile", 90), "memo": _det("memo", None, 0)}
    run = lambda run_id, found, dag="security_labeling": labeling.record_run(  # noqa: E731
        ledger, dag_id=dag, run_id=run_id, dataset=dataset, detections=found, rows=120, work_order_id="WO-X")

    one = run("r1", first)
    assert (one["recorded"], one["rows_labeled"], one["columns_labeled"], one["sensitive_columns"]) == (True, 120, 3, 2)
    assert one["new_versions"] == ["sfzh", "tel", "memo"]
    assert one["labels"]["sfzh"] | {"detected": None} == {
        "category": "identity", "data_type": "resident_id", "grade": "important", "level": "L4", "version": 1,
        "source": "detected", "pending_detection": None, "detected": None, "match_ratio": 0.98, "matches": 98,
        "non_null": 100, "name_hint": None, "rule": "content", "sensitive": True}  # fmt: skip
    assert one["labels"]["memo"]["level"] == "L2" and not one["labels"]["memo"]["sensitive"]

    # The same run again (a retry, a re-run) changes nothing and says so.
    again = run("r1", first)
    assert (again["recorded"], again["labeling_run_id"], again["labels"]) == (False, one["labeling_run_id"],
                                                                            one["labels"])  # fmt: skip
    # A new run with the same result: a log row, no new version.
    assert run("r2", first)["new_versions"] == []
    assert len(_versions(ledger, dataset)) == 3

    # The phone column stops looking like phones: a new version, the others stay.
    second = {**first, "tel": _det("tel", None, 30)}
    assert run("r3", second)["new_versions"] == ["tel"]
    assert _versions(ledger, dataset)[-1] == ("tel", 2, "detected", None, "L2")

    # A person says tel holds mobile numbers after all.
    label = labeling.override(ledger, dataset, "tel", category="contact", level="L3", by="zhang.wei",
                              reason="legacy field holds mobile numbers", data_type="mobile")  # fmt: skip
    assert (label.version, label.source, label.data_type, label.grade, label.decided_by) == (
        3, "override", "mobile", "general", "zhang.wei")
    # Re-detection disagrees: recorded once as version 4, the override stays current.
    four = run("r4", second)
    assert four["new_versions"] == ["tel"]
    assert {k: four["labels"]["tel"][k] for k in ("source", "version", "data_type", "pending_detection")} == {
        "source": "override", "version": 3, "data_type": "mobile", "pending_detection": 4}
    assert run("r5", second)["new_versions"] == []
    with ledger.connect() as conn:
        current = labeling.current_labels(conn, dataset)
    assert (current["tel"].source, current["tel"].version, current["tel"].pending_detection) == ("override", 3, 4)
    assert current["sfzh"].version == 1 and current["memo"].version == 1

    # The reviewer accepts the detection: a confirmed copy of version 4 becomes current.
    confirmed = labeling.confirm(ledger, dataset, "tel", by="li.na", reason="checked 50 values")
    assert (confirmed.version, confirmed.source, confirmed.data_type, confirmed.level,
            confirmed.pending_detection) == (5, "confirmed", None, "L2", None)  # fmt: skip
    assert labeling.confirm(ledger, dataset, "tel", by="li.na").version == 5  # already confirmed: nothing new
    assert labeling.confirm(ledger, dataset, "sfzh", by="li.na", version=1).source == "confirmed"

    # Refusals name what is wrong.
    for kwargs, message in [
        ({"category": "contact", "level": "L9"}, "unknown level 'L9'"),
        ({"category": "contacts", "level": "L3"}, "unknown category 'contacts'"),
        ({"category": "contact", "level": "L3", "grade": "core"}, "level L3 is general, not core"),
        ({"category": "contact", "level": "L3", "data_type": "passport"}, "unknown data type 'passport'"),
    ]:
        with pytest.raises(labeling.LabelingError, match=message):
            labeling.override(ledger, dataset, "tel", by="zhang.wei", reason="x", **kwargs)
    with pytest.raises(labeling.LabelingError, match="needs a reason"):
        labeling.override(ledger, dataset, "tel", category="contact", level="L3", by="zhang.wei", reason=" ")
    with pytest.raises(labeling.LabelingError, match="who decides"):
        labeling.confirm(ledger, dataset, "tel", by="")
    with pytest.raises(labeling.LabelingError, match="no label to confirm"):
        labeling.confirm(ledger, dataset, "nope", by="li.na")

    # The log: one row per run, what was labeled and how many records.
    log = rows(ledger_url, """SELECT run_id, rows_labeled, columns_labeled, sensitive_columns, work_order_id
                              FROM govops.security_labeling_run WHERE dataset = :d ORDER BY id""", d=dataset)
    assert log == [("r1", 120, 3, 2, "WO-X"), ("r2", 120, 3, 2, "WO-X"), ("r3", 120, 3, 1, "WO-X"),
                   ("r4", 120, 3, 2, "WO-X"), ("r5", 120, 3, 2, "WO-X")]  # fmt: skip
    # Every operation is in the audit log, with names and counts only.
    actions = rows(ledger_url, "SELECT action, actor FROM govops.security_audit_log WHERE dataset = :d ORDER BY seq",
                   d=dataset)  # fmt: skip
    assert actions == [("label.run", "dag:security_labeling")] * 3 + [("label.override", "zhang.wei")] + [
        ("label.run", "dag:security_labeling")] * 2 + [("label.confirm", "li.na")] * 2  # fmt: skip
    with ledger.connect() as conn:
        assert audit.verify(conn).ok
        evidence = conn.execute(text("SELECT evidence FROM govops.security_label WHERE dataset = :d AND version = 1 "
                                     "AND column_name = 'sfzh'"), {"d": dataset}).scalar_one()  # fmt: skip
    assert evidence["ratios"] == {"resident_id": 0.98} and evidence["rows"] == 120


def test_labeling_job_under_spark_submit(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    sample = security_sample.build(rows=200, seed=3)
    sample.write(lake / "raw/test/security_sample")
    manifest = lake / "_manifests/job.json"
    args = {"dag-id": "d", "run-id": "r", "task-id": "label", "lake-root": lake.as_uri(), "manifest": manifest.as_uri(),
            "dataset": "raw/test/security_sample", "sample-rows": 150, "columns": "id_number,phone,remark"}
    done = spark_submit.run("label_dataset", args)
    assert done.returncode == 0, done.stderr[-3000:]
    written = json.loads(manifest.read_text())
    [out] = written["outputs"]
    assert (out["kind"], out["rows"], out["rows_in_dataset"], out["sample_rows"]) == ("labeling", 150, 200, 150)
    assert out["sensitive_types"] == {"id_number": "resident_id", "phone": "mobile"}
    assert written["metering"] == [{"service_item": "06", "unit": "record", "quantity": 150, "records": 150,
                                    "data_source": "raw/test/security_sample"}]  # fmt: skip
    assert written["counts"] == {"read": 150, "written": 150, "rejected": 0}
    # No value of the data is in the manifest: counts and ratios only.
    text_of = manifest.read_text()
    assert not any(str(v) in text_of for v in sample.frame["id_number"].dropna().head(50))

    failed = lake / "failed.json"
    bad = spark_submit.run("label_dataset", {**args, "dataset": "raw/test/missing", "manifest": failed.as_uri()})
    assert bad.returncode != 0
    assert "raw/test/missing: no such dataset in the lake" in json.loads(failed.read_text())["error"]
