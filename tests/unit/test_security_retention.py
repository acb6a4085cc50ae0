"""Retention policies (item 21): the file, its refusals with file and field, the dates that
make a partition due, and the dry run's exact list of partitions and files."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import pytest

from govops.security import archive as A
from govops.security import destruction as D
from govops.security import retention as R
from govops.security.archive_sample import DEMO_DATASET, write_sample_events

GOOD = """
datasets:
  raw/x/events:
    partition_column: event_date
    keep: 60 days
    destroy_after: 2 years
    key: events_key
    fingerprint_columns: [event_id]
  raw/y/other:
    partition_column: dt
    date_format: "%Y%m%d"
    basis: age
    keep: 3 months
    archive_location: hdfs://nn:8020/cold/y
    key: events_key
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "retention.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_project_file_loads_with_the_demo_policy() -> None:
    config = R.load()
    policy = config.policy(DEMO_DATASET)
    assert (policy.partition_column, policy.keep, policy.destroy_after, policy.key) == (
        "event_date", R.Period(180, "days"), R.Period(1, "years"), "service_events_history")
    assert policy.archive_uri("file:///lake") == f"file:///lake/archive/{DEMO_DATASET}"
    assert config.full_scan_zones == ("anomalies", "rejects", "owner")


def test_policies_and_locations(tmp_path: Path) -> None:
    config = R.load(_write(tmp_path, GOOD))
    x, y = config.policy("raw/x/events"), config.policy("raw/y/other")
    assert x.archive_uri("file:///l/") == "file:///l/archive/raw/x/events"
    assert y.archive_uri("file:///l") == "hdfs://nn:8020/cold/y"
    assert (y.basis, y.date_format, y.parse_date("20250131"), y.parse_date("2025-01-31")) == (
        "age", "%Y%m%d", date(2025, 1, 31), None)
    assert config.key_users("events_key") == ["raw/x/events", "raw/y/other"]
    assert x.destroy_cutoff(date(2026, 2, 28)) == date(2024, 2, 28)
    assert y.destroy_cutoff(date(2026, 2, 28)) is None


@pytest.mark.parametrize(("period", "as_of", "expected"), [
    (R.Period(60, "days"), date(2025, 4, 15), date(2025, 2, 14)),
    (R.Period(1, "months"), date(2025, 3, 31), date(2025, 2, 28)),
    (R.Period(1, "months"), date(2024, 3, 31), date(2024, 2, 29)),
    (R.Period(14, "months"), date(2025, 1, 15), date(2023, 11, 15)),
    (R.Period(1, "years"), date(2024, 2, 29), date(2023, 2, 28)),
])  # fmt: skip
def test_period_arithmetic(period: R.Period, as_of: date, expected: date) -> None:
    assert period.before(as_of) == expected


@pytest.mark.parametrize(("body", "message"), [
    ("datasets: [a]", "datasets: a mapping of dataset -> policy is required"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 6 weeks",
     "datasets.raw/x.keep: expected '<positive number> days|months|years', got '6 weeks'"),
    ("datasets:\n  raw/x:\n    partition_column: d", "datasets.raw/x.keep: required"),
    ("datasets:\n  raw/x:\n    keep: 1 days", "datasets.raw/x.partition_column: a non-empty string is required"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 1 days\n    basis: mtime",
     "datasets.raw/x.basis: 'mtime' is not one of partition_date, age"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 1 days\n    date_format: '%Y-%m'",
     "datasets.raw/x.date_format: '%Y-%m' does not read a day"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 1 days\n    destroy_after: 0 days",
     "datasets.raw/x.destroy_after: expected"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 1 days\n    keep_for: 2 days",
     "datasets.raw/x.keep_for: unknown field"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 1 days\n    fingerprint_columns: id",
     "datasets.raw/x.fingerprint_columns: a list of column names is required"),
    ("datasets:\n  raw/x:\n    partition_column: d\n    keep: 1 days\n    archive_location: ../../etc",
     "datasets.raw/x.archive_location: '../../etc' leaves the lake"),
    ("datasets:\n  events:\n    partition_column: d\n    keep: 1 days", "datasets.events: the dataset must be"),
    ("datasets:\n  archive/raw/x:\n    partition_column: d\n    keep: 1 days", "is not archived again"),
    ("scan: {log_folders: /var/log}\ndatasets: {}", "scan.log_folders: a list of strings is required"),
    ("datasets: {a: [}", "not valid YAML"),
])  # fmt: skip
def test_malformed_configuration_is_refused_naming_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(R.RetentionConfigError) as err:
        R.load(path)
    assert str(err.value).startswith(f"RETENTION_CONFIG_INVALID: {path}: ")
    assert message in str(err.value)


def test_unknown_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(R.RetentionConfigError, match=r"datasets.raw/z: no retention policy \(have: raw/x/events"):
        R.load(_write(tmp_path, GOOD)).policy("raw/z")


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def test_dry_run_lists_exactly_the_due_partitions_and_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_sample_events(lake.as_uri(), "raw/x/events", start=date(2025, 1, 1), end=date(2025, 3, 31), every_days=10,
                        rows_per_day=30, files_per_partition=2)  # fmt: skip
    before = _tree(lake)
    policy = R.RetentionPolicy("raw/x/events", "event_date", R.Period(60, "days"))
    plan = A.plan(lake.as_uri(), policy, "archive", as_of=date(2025, 4, 15))
    assert plan.cutoff == date(2025, 2, 14)
    assert [p.partition for p in plan.partitions] == [
        "event_date=2025-01-01", "event_date=2025-01-11", "event_date=2025-01-21", "event_date=2025-01-31",
        "event_date=2025-02-10"]  # fmt: skip
    assert plan.kept == ("event_date=2025-02-20", "event_date=2025-03-02", "event_date=2025-03-12",
                         "event_date=2025-03-22")  # fmt: skip
    first = plan.partitions[0]
    assert [(f.copy, f.path, f.rows) for f in first.files] == [("live", "part-00000.parquet", 15),
                                                                 ("live", "part-00001.parquet", 15)]  # fmt: skip
    part = lake / "raw/x/events/event_date=2025-01-01"
    assert [f.bytes for f in first.files] == [(part / n).stat().st_size for n in ("part-00000.parquet",
                                                                                   "part-00001.parquet")]  # fmt: skip
    assert first.target == f"{lake.as_uri()}/archive/raw/x/events/event_date=2025-01-01"
    assert first.reason == "dated 2025-01-01 < cutoff 2025-02-14"
    assert (plan.rows, plan.as_json()["totals"]["files"]) == (150, 10)
    text = plan.describe()
    assert "event_date=2025-02-10: 30 rows, 2 file(s)" in text and "[live] part-00001.parquet" in text
    assert "event_date=2025-02-20" not in text.split("\n", 1)[1]
    assert _tree(lake) == before  # a dry run changes nothing

    # Months are calendar months; a partition dated on the cutoff day is kept.
    months = R.RetentionPolicy("raw/x/events", "event_date", R.Period(2, "months"))
    due = A.plan(lake.as_uri(), months, "archive", as_of=date(2025, 3, 31)).partitions
    assert [p.value for p in due] == ["2025-01-01", "2025-01-11", "2025-01-21"]

    # Explicit partitions: just those (a bare value means the partition column's), even if not due.
    asked = A.plan(lake.as_uri(), policy, "archive", as_of=date(2025, 4, 15), partitions=["2025-03-22"])
    assert [(p.partition, p.reason) for p in asked.partitions] == [
        ("event_date=2025-03-22", "requested (dated 2025-03-22, not due before 2025-02-14)")]
    with pytest.raises(A.ArchiveError, match="partition event_date=2024-12-31: not in"):
        A.plan(lake.as_uri(), policy, "archive", as_of=date(2025, 4, 15), partitions=["event_date=2024-12-31"])
    with pytest.raises(A.ArchiveError, match="no such dataset folder"):
        A.plan(lake.as_uri(), R.RetentionPolicy("raw/x/nothing", "d", R.Period(1, "days")), "archive",
               as_of=date(2025, 1, 1))  # fmt: skip


def test_age_basis_uses_the_newest_file(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_sample_events(lake.as_uri(), "raw/x/events", start=date(2025, 1, 1), end=date(2025, 1, 3), rows_per_day=4,
                        every_days=1, files_per_partition=2)  # fmt: skip
    old = time.mktime((2024, 6, 1, 12, 0, 0, 0, 0, -1))
    for p in (lake / "raw/x/events").glob("event_date=*/*.parquet"):
        os.utime(p, (old, old))
    # One partition has one recently written file: it is not due.
    recent = lake / "raw/x/events/event_date=2025-01-02/part-00001.parquet"
    os.utime(recent, (time.time(), time.time()))
    policy = R.RetentionPolicy("raw/x/events", "event_date", R.Period(30, "days"), basis="age")
    plan = A.plan(lake.as_uri(), policy, "archive", as_of=date.today())
    assert [p.value for p in plan.partitions] == ["2025-01-01", "2025-01-03"]
    assert plan.partitions[0].reason.startswith("last written 2024-06-01 < cutoff")
    assert plan.kept == ("event_date=2025-01-02",)


def test_unreadable_partition_values_are_skipped_with_the_reason(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_sample_events(lake.as_uri(), "raw/x/events", start=date(2025, 1, 1), end=date(2025, 1, 1), rows_per_day=3)
    (lake / "raw/x/events/event_date=__HIVE_DEFAULT_PARTITION__").mkdir()
    policy = R.RetentionPolicy("raw/x/events", "event_date", R.Period(1, "days"))
    plan = A.plan(lake.as_uri(), policy, "archive", as_of=date(2025, 6, 1))
    assert [p.value for p in plan.partitions] == ["2025-01-01"]
    assert plan.skipped == (("event_date=__HIVE_DEFAULT_PARTITION__", "value does not read as %Y-%m-%d"),)


def test_manifest_diff_names_files_and_figures() -> None:
    want = [A.file_entry("a", 10, "x", 5), A.file_entry("b", 3, "y", None)]
    got = [A.file_entry("a", 10, "z", 4), A.file_entry("c", 1, "w", None)]
    assert A.manifest_diff(want, got) == ["b: missing", "c: not in the manifest", "a: sha256 z instead of x",
                                          "a: rows 4 instead of 5"]  # fmt: skip


def test_candidates_are_whole_tokens_and_fields() -> None:
    line = '2025-01-31 INFO id=310118199001011234, name="张三丰", tel:13912345678. note: EV2025013100012x'
    found = D.candidates(line, 6)
    assert {"310118199001011234", "13912345678", "EV2025013100012x", "2025-01-31"} <= found
    assert "张三丰" not in found  # shorter than 6
    assert "张三丰" in D.candidates(line, 3)
    assert "3101181990" not in found  # never a substring


def test_fingerprints_are_keyed_and_drop_short_values() -> None:
    one, two = D.Fingerprinter(b"k" * 32, 6, 1), D.Fingerprinter(b"j" * 32, 6, 1)
    values = one.of(["310118199001011234", " 310118199001011234 ", "abc", None, 1234567])
    assert values.size == 2 and values.dtype.name == "uint64"
    assert set(one.of(["1234567"]).tolist()) <= set(values.tolist())
    assert not set(two.of(["310118199001011234"]).tolist()) & set(values.tolist())


def test_residue_scan_names_files_lines_and_columns_never_values(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fp = D.Fingerprinter(b"k" * 32, 6, 1)
    secret = "310118199001011234"
    fingerprints = fp.of([secret, "EV2025013100001"])
    (tmp_path / "logs").mkdir()
    lines = [f"row {i},value{i:07d}" for i in range(1, 6001)]
    lines[4999] = f"row 5000,{secret}"  # past the first batch of lines
    (tmp_path / "logs" / "task.log").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "logs" / "attempt=1").write_text(f"id {secret}\n", encoding="utf-8")  # no suffix: a log folder
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"a": ["00000000", secret, "ZZZZZZZZ"], "n": [1, 2, 3]}), tmp_path / "data/p.parquet")
    (tmp_path / "data/skip.bin").write_bytes(b"\x00" + secret.encode())
    root = A.Location.of(tmp_path.as_uri())
    result = D.scan_residue([root], fp, fingerprints, any_text=[str(tmp_path / "logs")])
    found = sorted((r.location.rsplit("/", 1)[1], r.kind, r.where, r.matches) for r in result.residue)
    # Footer statistics alone miss a value between min and max; only a full read finds it.
    assert found == [("attempt=1", "text", "line(s) 1", 1), ("task.log", "text", "line(s) 5000", 1)]
    full = D.scan_residue([root], fp, fingerprints, full_scan=[str(tmp_path / "data")])
    assert sorted((r.kind, r.where) for r in full.residue) == [("parquet-values", "column a: 1 value(s)"),
                                                                ("text", "line(s) 5000")]  # fmt: skip
    assert result.scanned == {"parquet_footers": 1, "parquet_values": 0, "text": 2, "office": 0, "skipped": 1}
    excluded = D.scan_residue([root], fp, fingerprints, exclude=[str(tmp_path / "logs")])
    assert excluded.residue == []
    assert all(secret not in str(r) for r in [*result.residue, *full.residue])
