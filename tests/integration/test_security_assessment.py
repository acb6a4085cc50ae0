"""The security assessment (item 19) on a small lake, with the real scan job
(spark_jobs/assess_security.py through spark-submit), PostgreSQL and files: the exact
findings (an ID column in clear in the sharing zone, a column the detectors find despite a
wrong label, a masked dataset that is not a finding although its FF1 output looks like ID
numbers, a masked dataset overwritten afterwards, an unlabeled partitioned dataset, stale
labels, stale grants and a grant on a missing dataset), the storage distribution, the
lifecycle (open → fixed → re-verified; fixed but found again → reopened; gone without a fix
→ resolved; re-verified and back → reopened), an idempotent re-run, a limited scope, the
report and issue list without a clear value, and the access-grant API."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

from govops.identifiers import resident_id_check_char
from govops.security import assessment as A
from govops.security import assessment_report as R
from govops.security import audit, grading
from govops.spark import manifest as manifests

from . import spark_submit

pytestmark = pytest.mark.integration

AS_OF = datetime(2026, 9, 1, tzinfo=UTC)
PERSONS = "raw/frontdb/public_security/persons"
EXPORT = "sharing/open_data/persons_export"
MASKED = "sharing/public_security/persons"
COPY = "sharing/public_security/persons_copy"
LEGAL = "raw/frontdb/market_regulation/legal_persons_incremental"
ARCHIVED = "archive/frontdb/old_events"


def resident_ids(n: int, sequence: int = 0) -> list[str]:
    """Valid GB 11643 numbers of Qingpu (310118), one birth day each."""
    out = []
    for i in range(n):
        body = f"310118{date(1960, 1, 1) + timedelta(days=37 * i):%Y%m%d}{(i + sequence) % 1000:03d}"
        out.append(body + resident_id_check_char(body))
    return out


def mobiles(n: int) -> list[str]:
    return [f"138{i:08d}" for i in range(n)]


def write(lake: Path, dataset: str, frame: pd.DataFrame, marker: dict[str, Any] | None,
          marker_name: str = "_GOVOPS_COMMIT.json") -> None:  # fmt: skip
    folder = lake / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-0.parquet")
    if marker is not None:
        (folder / marker_name).write_text(json.dumps(marker))


def marker(dag_id: str, run_id: str, rows: int) -> dict[str, Any]:
    return {"run": {"dag_id": dag_id, "run_id": run_id, "task_id": "mask"}, "rows": rows}


def size_of(lake: Path, dataset: str) -> int:
    return sum(f.stat().st_size for f in (lake / dataset).rglob("*") if f.is_file())


def build_lake(lake: Path) -> list[str]:
    """The lake; returns the clear ID numbers it holds (the report must show none of them)."""
    ids = resident_ids(300)
    write(lake, PERSONS, pd.DataFrame({
        "id": range(300), "name": ["张三"] * 300, "id_number": ids, "phone": mobiles(300), "remark": ["-"] * 300,
    }), marker("pipeline_frontdb_persons", "p-1", 300))  # fmt: skip
    # Sharing: an export of clear ID numbers, and a contact column labelled general L2 (wrongly).
    export = {"id": range(200), "id_number": ids[:200], "contact": mobiles(200), "score": [i % 7 for i in range(200)]}
    write(lake, EXPORT, pd.DataFrame(export), marker("adhoc", "export-1", 200))
    # Sharing: the masking job's output, here valid ID numbers (FF1 outputs rarely are, and then
    # the detectors find them): the masking log, not the content, says it is controlled.
    write(lake, MASKED, pd.DataFrame({"id": range(300), "id_number": resident_ids(300, sequence=500),
                                      "phone": [f"138****{i % 10000:04d}" for i in range(300)]}),
          marker("security_masking", "mask-1", 300))  # fmt: skip
    # Sharing: masked once, then overwritten by another job with clear values.
    write(lake, COPY, pd.DataFrame({"id": range(100), "id_number": ids[:100]}), marker("adhoc", "copy-1", 100))
    # Raw, unlabeled, published a partition at a time: one dataset of 40 + 25 rows.
    write(lake, f"{LEGAL}/load=r1", pd.DataFrame({"uscc": ["x"] * 40}), marker("pipeline_legal", "r1", 40))
    write(lake, f"{LEGAL}/load=r2", pd.DataFrame({"uscc": ["y"] * 25}), marker("pipeline_legal", "r2", 25))
    # Archive: partitions archived by item 21 carry its manifest instead of a commit marker.
    for day, n in (("2020-01-01", 50), ("2020-01-02", 30)):
        write(lake, f"{ARCHIVED}/event_date={day}", pd.DataFrame({"event": ["e"] * n}),
              {"partition": f"event_date={day}", "rows": n, "files": [{"path": "part-0.parquet", "rows": n}]},
              "_ARCHIVE_MANIFEST.json")  # fmt: skip
    # Zones that are not assessed, and staging: never scanned.
    write(lake, "rejects/frontdb/public_security/persons", pd.DataFrame({"id_number": ids[:10]}), {"rows": 10})
    write(lake, "sharing/_staging/x/y", pd.DataFrame({"id_number": ids[:10]}), {"rows": 10})
    return ids


def label(conn: Any, dataset: str, column: str, grade: str, level: str, version: int = 1) -> None:
    conn.execute(text(
        """INSERT INTO govops.security_label (dataset, column_name, version, category, data_type, grade, level, source)
           VALUES (:d, :c, :v, 'identity', NULL, :g, :l, 'confirmed')"""),
        {"d": dataset, "c": column, "v": version, "g": grade, "l": level})  # fmt: skip


def masking_run(conn: Any, dag_id: str, run_id: str, output: str, rules: dict[str, str], at: datetime) -> int:
    run = conn.execute(text(
        """INSERT INTO govops.security_masking_run (dag_id, run_id, dataset, output_dataset, policy, policy_sha256,
                  rows_controlled, finished_at)
           VALUES (:d, :r, :s, :o, '{}'::jsonb, 'x', 0, :at) RETURNING id"""),
        {"d": dag_id, "r": run_id, "s": PERSONS, "o": output, "at": at}).scalar_one()  # fmt: skip
    for column, rule in rules.items():
        conn.execute(text(
            """INSERT INTO govops.security_masking_column (masking_run_id, column_name, rule, reversible,
                      records_controlled) VALUES (:id, :c, :rule, :rev, 0)"""),
            {"id": run, "c": column, "rule": rule, "rev": rule == "ff1"})  # fmt: skip
    return run


def setup_database(engine: Engine) -> None:
    with engine.begin() as conn:
        for column, grade, level in (("id", "general", "L1"), ("name", "general", "L3"),
                                     ("id_number", "important", "L4"), ("phone", "general", "L3"),
                                     ("old_email", "general", "L3")):  # fmt: skip
            label(conn, PERSONS, column, grade, level)
        for column, grade, level in (("id", "general", "L1"), ("id_number", "important", "L4"),
                                     ("contact", "general", "L2"), ("score", "general", "L1")):  # fmt: skip
            label(conn, EXPORT, column, grade, level)
        for column, grade, level in (("id", "general", "L1"), ("id_number", "important", "L4"),
                                     ("phone", "general", "L3")):  # fmt: skip
            label(conn, MASKED, column, grade, level)
        for column, grade, level in (("id", "general", "L1"), ("id_number", "core", "L5")):
            label(conn, COPY, column, grade, level)
        masking_run(conn, "security_masking", "mask-0", MASKED, {"id_number": "hmac"}, AS_OF - timedelta(days=9))
        masking_run(conn, "security_masking", "mask-1", MASKED, {"id": "keep", "id_number": "ff1", "phone": "partial"},
                    AS_OF - timedelta(days=8))  # fmt: skip
        masking_run(conn, "security_masking", "mask-2", COPY, {"id_number": "ff1"}, AS_OF - timedelta(days=7))
    A.grant(engine, "wang.fang", PERSONS, "read", "admin", at=AS_OF - timedelta(days=40))
    A.record_access(engine, "wang.fang", PERSONS, AS_OF - timedelta(days=2))
    A.grant(engine, "li.qiang", PERSONS, "read", "admin", at=AS_OF - timedelta(days=400))
    A.record_access(engine, "li.qiang", PERSONS, AS_OF - timedelta(days=200))
    A.grant(engine, "sun.li", MASKED, "read", "admin", at=AS_OF - timedelta(days=100))  # never used
    A.grant(engine, "zhao.min", "sharing/retired/persons_2024", "read", "admin", at=AS_OF - timedelta(days=60))
    A.grant(engine, "zhou.lei", PERSONS, "write", "admin", at=AS_OF - timedelta(days=300))
    A.revoke(engine, "zhou.lei", PERSONS, "write", "admin")  # revoked: never a finding


def scan(lake: Path, run_id: str, **options: str) -> dict[str, Any]:
    uri = manifests.manifest_uri(lake.as_uri(), "security_assessment", run_id, "scan", -1)
    result = spark_submit.run("assess_security", {
        "dag-id": "security_assessment", "run-id": run_id, "task-id": "scan", "work-order-id": "WO-T",
        "lake-root": lake.as_uri(), "manifest": uri, **options,
    })  # fmt: skip
    manifest = manifests.read(uri) if result.returncode == 0 or Path(uri[7:]).exists() else {}
    assert result.returncode == 0, manifest.get("error") or result.stderr[-3000:]
    return manifest


def state(engine: Engine) -> dict[tuple[str, str, str], tuple[str, str]]:
    return {(f["kind"], f["dataset"], f["subject"]): (f["severity"], f["status"]) for f in A.findings(engine)}


def finding_id(engine: Engine, kind: str, dataset: str, subject: str = "") -> int:
    return next(f["id"] for f in A.findings(engine)
                if (f["kind"], f["dataset"], f["subject"]) == (kind, dataset, subject))  # fmt: skip


def test_assessment_findings_distribution_lifecycle_and_report(fresh_ledger: Engine, tmp_path: Path) -> None:
    engine = fresh_ledger
    lake = tmp_path / "lake"
    ids = build_lake(lake)
    setup_database(engine)
    contact_severity = "high" if grading.load().label_for("mobile")[1] in ("core", "important") else "medium"

    # --- run 1 -------------------------------------------------------------------------
    first = scan(lake, "run-1")
    output = A.scan_of(first)
    by_name = {d["dataset"]: d for d in output["datasets"]}
    assert sorted(by_name) == sorted([ARCHIVED, LEGAL, PERSONS, COPY, MASKED, EXPORT])
    assert {k: by_name[k]["rows"] for k in by_name} == {PERSONS: 300, EXPORT: 200, MASKED: 300, COPY: 100,
                                                          LEGAL: 65, ARCHIVED: 80}  # fmt: skip
    assert by_name[ARCHIVED]["markers"] == [  # the archive manifest's figures, not its list of files
        {"archive_manifest": True, "partition": "event_date=2020-01-01", "rows": 50},
        {"archive_manifest": True, "partition": "event_date=2020-01-02", "rows": 30}]
    assert by_name[LEGAL]["partitions"] == ["load=r1", "load=r2"] and by_name[LEGAL]["columns"] == ["uscc", "load"]
    assert {k: by_name[k]["bytes"] for k in by_name} == {k: size_of(lake, k) for k in by_name}
    assert by_name[PERSONS]["detections"] is None  # raw: not run through the detectors
    assert by_name[EXPORT]["detections"]["id_number"]["data_type"] == "resident_id"
    assert by_name[EXPORT]["detections"]["id_number"]["matches"] == 200
    assert by_name[MASKED]["detections"]["id_number"]["data_type"] == "resident_id"  # FF1 output looks real
    assert first["metering"] == [{"service_item": "19", "unit": "record", "quantity": 1045, "records": 1045,
                                  "data_source": "lake"}]  # fmt: skip
    assert not any(i in json.dumps(first, ensure_ascii=False) for i in ids)  # names and figures only

    summary = A.assess(engine, first, work_order_id="WO-T", as_of=AS_OF)
    expected = {
        ("UNMASKED_SENSITIVE", EXPORT, "id_number"): ("high", "open"),
        ("UNMASKED_SENSITIVE", EXPORT, "contact"): (contact_severity, "open"),
        ("UNMASKED_SENSITIVE", COPY, "id_number"): ("high", "open"),
        ("UNLABELED_DATASET", LEGAL, ""): ("low", "open"),
        ("LABEL_STALE", PERSONS, "remark"): ("low", "open"),
        ("LABEL_STALE", PERSONS, "old_email"): ("low", "open"),
        ("STALE_ACCESS", PERSONS, "li.qiang:read"): ("medium", "open"),
        ("STALE_ACCESS", MASKED, "sun.li:read"): ("medium", "open"),
        ("ACCESS_TO_MISSING_DATASET", "sharing/retired/persons_2024", "zhao.min:read"): ("medium", "open"),
    }
    assert state(engine) == expected
    details = {(f["kind"], f["dataset"], f["subject"]): f["detail"] for f in A.findings(engine)}
    assert details[("UNMASKED_SENSITIVE", EXPORT, "id_number")] == (
        "grade important (L4) by label v1; resident_id found in 200 of 200 values (100.0%); "
        "not masked: no masking run published this dataset")
    assert details[("UNMASKED_SENSITIVE", COPY, "id_number")].endswith(
        "not masked: the published version was not written by masking run security_masking/mask-2 (the latest "
        "for it)")  # fmt: skip
    assert details[("STALE_ACCESS", PERSONS, "li.qiang:read")] == (
        "last access 2026-02-13, 200 days ago (limit 90)")
    assert details[("STALE_ACCESS", MASKED, "sun.li:read")] == (
        "never used since granted on 2026-05-24, 100 days ago (limit 90)")
    assert summary["changes"] == {"new": 9, "still_open": 0, "reopened": 0, "reverified": 0, "resolved": 0}
    assert summary["status"] == {"open": 9, "fixed": 0, "reverified": 0}
    assert summary["findings"]["by_kind"] == {"ACCESS_TO_MISSING_DATASET": 1, "LABEL_STALE": 2, "STALE_ACCESS": 2,
                                              "UNLABELED_DATASET": 1, "UNMASKED_SENSITIVE": 3}  # fmt: skip
    dist = summary["distribution"]
    sizes = {k: size_of(lake, k) for k in by_name}
    assert dist["by_zone"] == {
        "raw": {"datasets": 2, "rows": 365, "files": 6, "bytes": sizes[PERSONS] + sizes[LEGAL]},
        "sharing": {"datasets": 3, "rows": 600, "files": 6, "bytes": sizes[EXPORT] + sizes[MASKED] + sizes[COPY]},
        "archive": {"datasets": 1, "rows": 80, "files": 4, "bytes": sizes[ARCHIVED]},
    }  # fmt: skip
    assert {g: (v["datasets"], v["rows"]) for g, v in dist["by_grade"].items()} == {
        "core": (1, 100), "important": (3, 800), "unlabeled": (2, 145)}
    assert {z: {g: v["rows"] for g, v in grades.items()} for z, grades in dist["by_zone_grade"].items()} == {
        "raw": {"important": 300, "unlabeled": 65}, "sharing": {"core": 100, "important": 500},
        "archive": {"unlabeled": 80}}  # fmt: skip
    row = {d["dataset"]: d for d in dist["datasets"]}
    assert (row[EXPORT]["sensitive_columns"], row[EXPORT]["unmasked_columns"]) == (1, 2)
    # name, id_number, phone (old_email's label is stale: its column is gone)
    assert (row[PERSONS]["sensitive_columns"], row[MASKED]["unmasked_columns"]) == (3, 0)

    # --- the rectification: the export is re-published through masking and marked fixed;
    # the unlabeled dataset is marked fixed but nothing was done; li.qiang's grant is
    # revoked without anyone recording a fix.
    write(lake, EXPORT, pd.DataFrame({"id": range(200), "id_number": ["3" + "*" * 16 + "1"] * 200,
                                      "contact": ["138****0000"] * 200, "score": [1] * 200}),
          marker("security_masking", "mask-3", 200))  # fmt: skip
    with engine.begin() as conn:
        masking_run(conn, "security_masking", "mask-3", EXPORT, {"id_number": "partial", "contact": "partial"},
                    AS_OF - timedelta(days=1))  # fmt: skip
    A.mark_fixed(engine, finding_id(engine, "UNMASKED_SENSITIVE", EXPORT, "id_number"), by="张运营",
                 note="re-published through masking policy persons_export")  # fmt: skip
    A.mark_fixed(engine, finding_id(engine, "UNLABELED_DATASET", LEGAL), by="李数据", note="labels applied")
    A.revoke(engine, "li.qiang", PERSONS, "read", "admin")
    with pytest.raises(A.FindingError, match="is fixed, only an open finding"):
        A.mark_fixed(engine, finding_id(engine, "UNLABELED_DATASET", LEGAL), by="李数据", note="again")
    with pytest.raises(A.FindingError, match="say who fixed it"):
        A.mark_fixed(engine, finding_id(engine, "LABEL_STALE", PERSONS, "remark"), by=" ", note="x")
    with pytest.raises(A.FindingError, match="finding 999999 does not exist"):
        A.mark_fixed(engine, 999999, by="x", note="y")

    # --- run 2 -------------------------------------------------------------------------
    second = scan(lake, "run-2")
    summary2 = A.assess(engine, second, work_order_id="WO-T", as_of=AS_OF + timedelta(days=1))
    after = {**expected,
             ("UNMASKED_SENSITIVE", EXPORT, "id_number"): ("high", "reverified"),  # fixed, then gone
             ("UNMASKED_SENSITIVE", EXPORT, "contact"): (contact_severity, "reverified"),  # gone without a fix
             ("UNLABELED_DATASET", LEGAL, ""): ("low", "open"),  # "fixed", found again: reopened
             ("STALE_ACCESS", PERSONS, "li.qiang:read"): ("medium", "reverified")}  # fmt: skip
    assert state(engine) == after
    assert summary2["changes"] == {"new": 0, "still_open": 5, "reopened": 1, "reverified": 1, "resolved": 2}
    assert summary2["status"] == {"open": 6, "fixed": 0, "reverified": 3}
    run2 = summary2["run"]
    records = {(f["kind"], f["dataset"], f["subject"]): f for f in A.findings(engine)}
    fixed = records[("UNMASKED_SENSITIVE", EXPORT, "id_number")]
    assert (fixed["fixed_by"], fixed["fix_note"], fixed["reverified_run_id"]) == (
        "张运营", "re-published through masking policy persons_export", run2)
    assert [h["event"] for h in fixed["history"]] == ["found", "fixed", "reverified"]
    resolved = records[("STALE_ACCESS", PERSONS, "li.qiang:read")]
    assert resolved["fixed_by"] is None and resolved["fix_note"] == (
        f"resolved without a recorded fix: not found by assessment run {run2}")
    assert [h["event"] for h in resolved["history"]] == ["found", "resolved"]
    reopened = records[("UNLABELED_DATASET", LEGAL, "")]
    assert reopened["fixed_by"] is None and reopened["last_seen_run_id"] == run2
    assert "[reopened: fixed by 李数据 on " in reopened["detail"] and f"found again by assessment run {run2}]" in (
        reopened["detail"])  # fmt: skip
    assert [(h["event"], h.get("by"), h.get("was")) for h in reopened["history"]] == [
        ("found", None, None), ("fixed", "李数据", None), ("reopened", None, "fixed")]

    # --- a re-run of run 2: the same run row, nothing changes, nothing is duplicated ----
    before = A.findings(engine)
    again = A.assess(engine, second, work_order_id="WO-T", as_of=AS_OF + timedelta(days=1))
    assert again["run"] == run2 and again["changes"] == summary2["changes"] and A.findings(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM govops.security_assessment_run")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM govops.security_finding")).scalar() == 9

    # --- run 3, limited to the export: it is published in clear again; only it is judged --
    write(lake, EXPORT, pd.DataFrame({"id": range(200), "id_number": ids[:200], "contact": ["-"] * 200,
                                      "score": [1] * 200}), marker("adhoc", "export-2", 200))  # fmt: skip
    third = scan(lake, "run-3", zones="sharing", prefixes="sharing/open_data")
    assert [d["dataset"] for d in A.scan_of(third)["datasets"]] == [EXPORT]
    assert third["metering"][0]["quantity"] == 200
    summary3 = A.assess(engine, third, as_of=AS_OF + timedelta(days=2))
    assert state(engine) == {**after, ("UNMASKED_SENSITIVE", EXPORT, "id_number"): ("high", "open")}
    assert summary3["changes"] == {"new": 0, "still_open": 0, "reopened": 1, "reverified": 0, "resolved": 0}
    records = {(f["kind"], f["dataset"], f["subject"]): f for f in A.findings(engine)}
    back = records[("UNMASKED_SENSITIVE", EXPORT, "id_number")]
    assert "[reopened: reverified on " in back["detail"] and back["reverified_run_id"] is None
    assert [h["event"] for h in back["history"]] == ["found", "fixed", "reverified", "reopened"]
    # Outside the scope: not seen, not resolved.
    assert records[("LABEL_STALE", PERSONS, "remark")]["last_seen_run_id"] == run2

    # --- the report and the issue list ---------------------------------------------------
    published = R.publish(engine, summary3["run"], lake.as_uri())
    folder = lake / "reports/security/assessment/run-3"
    assert published["report"] == f"{folder.as_uri()}/report.html" and published["issues"] == 9
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "数据安全评估报告" in page and page.count("data:image/png;base64,") == 3
    assert "<b id=status-open>7</b>" in page and "<b id=rows>200</b>" in page
    with (folder / "issues.csv").open(encoding="utf-8-sig") as fh:
        issues = list(csv.DictReader(fh))
    assert (folder / "issues.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert [k for k in issues[0]] == list(R.ISSUE_COLUMNS)
    assert len(issues) == 9 and {i["status"] for i in issues} == {"open", "reverified"}
    fixed_row = next(i for i in issues if (i["kind"], i["dataset"]) == ("UNLABELED_DATASET", LEGAL))
    assert "fixed 李数据" in fixed_row["history"] and "reopened" in fixed_row["history"]
    sheet = openpyxl.load_workbook(folder / "issues.xlsx").active
    assert sheet.max_row == 10 and [c.value for c in sheet[1]] == list(R.ISSUE_COLUMNS)
    for produced in ("report.html", "issues.csv"):
        body = (folder / produced).read_text(encoding="utf-8-sig")
        assert not any(i in body for i in ids), f"{produced} shows a clear ID number"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT report_uri FROM govops.security_assessment_run WHERE id = :id"),
                            {"id": summary3["run"]}).scalar() == published["report"]  # fmt: skip
        check = audit.verify(conn)
        actions = [r[0] for r in conn.execute(text("SELECT action FROM govops.security_audit_log ORDER BY seq"))]
    assert check.ok, check.reason
    assert actions.count("assessment.finding_fixed") == 2 and actions.count("assessment.run") == 4
    assert actions.count("access.grant") == 5 and actions.count("access.revoke") == 2


def test_access_grant_api(fresh_ledger: Engine) -> None:
    engine = fresh_ledger
    first = A.grant(engine, "wang.fang", PERSONS, "read", "admin", at=AS_OF - timedelta(days=10))
    assert A.grant(engine, "wang.fang", PERSONS, "read", "someone") == first  # live: left as it is
    A.record_access(engine, "wang.fang", PERSONS, AS_OF)
    A.record_access(engine, "wang.fang", PERSONS, AS_OF - timedelta(days=5))  # older: last access stays
    A.revoke(engine, "wang.fang", PERSONS, "read", "admin")
    with pytest.raises(A.AccessError, match="no live grant on raw/frontdb/public_security/persons"):
        A.record_access(engine, "wang.fang", PERSONS, AS_OF)
    with pytest.raises(A.AccessError, match="no live read grant"):
        A.revoke(engine, "wang.fang", PERSONS, "read", "admin")
    assert A.grant(engine, "wang.fang", PERSONS, "read", "admin2", at=AS_OF) == first  # granted again
    with engine.connect() as conn:
        row = conn.execute(text("SELECT granted_by, granted_at, last_access_at, revoked_at FROM "
                                "govops.security_access_grant WHERE id = :id"), {"id": first}).one()  # fmt: skip
    assert row == ("admin2", AS_OF, None, None)
    with pytest.raises(A.AccessError, match="'public' is not a named account"):
        A.grant(engine, "public", PERSONS, "read", "admin")
    with pytest.raises(A.AccessError, match="dataset 'persons' must be <zone>/<path>"):
        A.grant(engine, "li.qiang", "persons", "read", "admin")
    with pytest.raises(A.AccessError, match="say who grants it"):
        A.grant(engine, "li.qiang", PERSONS, "read", "")

    # The demo's grants: idempotent, one stale, one on a missing dataset.
    ids = A.ensure_sample_grants(engine, now=AS_OF)
    assert A.ensure_sample_grants(engine, now=AS_OF + timedelta(days=3)) == ids
    with engine.connect() as conn:
        grants = A.load_grants(conn)
    present = [{"dataset": d, "zone": d.split("/")[0], "rows": 1, "files": 1, "bytes": 1, "columns": []}
               for d in (PERSONS, "raw/frontdb/planning_resources/addresses", MASKED)]  # fmt: skip
    found = A.evaluate(present, {}, {}, grants, zones=list(A.ZONES), prefixes=[], as_of=AS_OF)
    assert sorted((f.kind, f.dataset, f.subject) for f in found if f.kind != "UNLABELED_DATASET") == [
        ("ACCESS_TO_MISSING_DATASET", "sharing/retired/persons_2024", "zhao.min:read"),
        ("STALE_ACCESS", "raw/frontdb/planning_resources/addresses", "li.qiang:read"),
    ]  # fmt: skip


def test_scope_and_bad_parameters() -> None:
    assert A.parse_zones("open, raw") == ["raw", "open"] and A.parse_zones("") == list(A.ZONES)
    with pytest.raises(A.AssessmentError, match="unknown zone"):
        A.parse_zones("raw,reports")
    with pytest.raises(A.AssessmentError, match="'x/y' must start with a zone"):
        A.parse_prefixes("x/y", A.ZONES)
    with pytest.raises(A.AssessmentError, match="not scanned"):
        A.parse_prefixes("open/a", ["raw"])
    assert A.in_scope("sharing/a/b", ["sharing"], ["sharing/a"]) and not A.in_scope("sharing/ab", ["sharing"],
                                                                                     ["sharing/a"])  # fmt: skip
