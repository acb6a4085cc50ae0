"""Archive, restore and destruction (item 21) against the real PostgreSQL ledger and a local
lake: identical round trips, a kill at every step resumed without loss or duplication,
destruction refused without a proper approval, no residue left (and planted copies found),
crypto-shredding, the audit chain, metering exactly once, and the report."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from govops.ledger.usage import TaskRef, contract_timezone
from govops.security import archive as A
from govops.security import audit, keys
from govops.security import destruction as D
from govops.security.archive_report import write_report
from govops.security.archive_sample import write_sample_events
from govops.security.retention import Period, RetentionConfig, RetentionPolicy
from govops.settlement.workorders import ensure_demo_work_order
from tests.integration.test_security_audit import tamper

pytestmark = pytest.mark.integration

WO = "WO-ARCHIVE-TEST"
AS_OF = date(2025, 4, 15)  # keep 60 days: cutoff 2025-02-14
DUE = ["event_date=2025-01-01", "event_date=2025-01-11", "event_date=2025-01-21", "event_date=2025-01-31",
       "event_date=2025-02-10"]  # fmt: skip
ROWS = 30  # per partition, in two files


class Killed(RuntimeError):
    pass


def kill_at(step: str):
    def hook(at: str) -> None:
        if at == step:
            raise Killed(f"killed at {step}")

    return hook


@pytest.fixture
def engine(ledger: Engine) -> Engine:
    ensure_demo_work_order(ledger, WO, "21", on=date(2026, 6, 1))
    return ledger


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def policy(lake: Path) -> RetentionPolicy:
    dataset = f"raw/test/events_{uuid.uuid4().hex[:8]}"  # the ledger is shared by the session's tests
    write_sample_events(lake.as_uri(), dataset, start=date(2025, 1, 1), end=date(2025, 3, 31), every_days=10,
                        rows_per_day=ROWS, files_per_partition=2)  # fmt: skip
    return RetentionPolicy(dataset, "event_date", Period(60, "days"), destroy_after=Period(1, "days"),
                           key=f"key_{dataset.rsplit('_', 1)[1]}",
                           fingerprint_columns=("event_id", "id_number"))  # fmt: skip


def ctx(run: str) -> A.RunContext:
    return A.RunContext("test_archive", f"{run}-{uuid.uuid4().hex[:6]}", WO, actor="tester")


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder (relative path -> digest), the archive manifest excluded."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != A.ARCHIVE_MANIFEST}  # fmt: skip


def audit_entries(engine: Engine, dataset: str, action: str | None = None) -> list[tuple]:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT action, details->>'partition', details->>'rows' FROM govops.security_audit_log "
                 "WHERE dataset = :d AND (CAST(:a AS text) IS NULL OR action = :a) ORDER BY seq"),
            {"d": dataset, "a": action},
        )  # fmt: skip
        return [tuple(r) for r in found]


def usage(engine: Engine, run_id: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            text("SELECT service_item_code, unit, quantity, records, data_source, work_order_id "
                 "FROM govops.usage_event "
                 "WHERE run_id = :r ORDER BY id"), {"r": run_id})]  # fmt: skip


def states(engine: Engine, run: A.RunContext) -> list[tuple[str, str]]:
    return [(o.partition, o.state) for o in A.operations(engine, dag_id=run.dag_id, run_id=run.run_id)]


def test_archive_then_restore_is_identical(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    live = lake / policy.dataset
    arch = lake / "archive" / policy.dataset
    before = {p: digests(live / p) for p in DUE}
    run = ctx("archive")
    result = A.run(engine, lake.as_uri(), policy, "archive", run, as_of=AS_OF)
    assert [(p["partition"], p["state"], p["rows"], p["files"]) for p in result["partitions"]] == [
        (p, "removed", ROWS, 2) for p in DUE]
    assert sorted(d.name for d in live.iterdir() if d.is_dir()) == ["event_date=2025-02-20", "event_date=2025-03-02",
                                                      "event_date=2025-03-12", "event_date=2025-03-22"]  # fmt: skip
    for p in DUE:
        manifest = json.loads((arch / p / A.ARCHIVE_MANIFEST).read_text())
        assert [(f["path"], f["rows"], f["sha256"]) for f in manifest["files"]] == [
            (name, 15, before[p][name]) for name in ("part-00000.parquet", "part-00001.parquet")]
        assert (manifest["rows"], manifest["source"]) == (ROWS, f"{lake.as_uri()}/{policy.dataset}/{p}")
        assert digests(arch / p) == before[p]
    assert not list((arch / A.STAGING).glob("*"))
    op = A.operations(engine, dag_id=run.dag_id, run_id=run.run_id)[0]
    assert (op.state, op.rows, op.files, op.manifest["files"][0]["sha256"]) == (
        "removed", ROWS, 2, before[DUE[0]]["part-00000.parquet"])
    assert audit_entries(engine, policy.dataset) == [("archive.partition", p, str(ROWS)) for p in DUE]

    back = ctx("restore")
    restored = A.run(engine, lake.as_uri(), policy, "restore", back, as_of=AS_OF, partitions=DUE[:2])
    assert [(p["partition"], p["state"]) for p in restored["partitions"]] == [(p, "restored") for p in DUE[:2]]
    for p in DUE[:2]:
        assert digests(live / p) == before[p]
        assert pq.read_table(live / p).num_rows == ROWS
        assert not (arch / p).exists()
    assert sorted(d.name for d in arch.iterdir() if not d.name.startswith(".")) == DUE[2:]
    assert audit_entries(engine, policy.dataset, "restore.partition") == [
        ("restore.partition", p, str(ROWS)) for p in DUE[:2]]

    # Archive again what was restored: the same bytes, the same manifest checksums.
    again = A.run(engine, lake.as_uri(), policy, "archive", ctx("again"), as_of=AS_OF, partitions=DUE[:1])
    assert again["partitions"][0]["state"] == "removed" and digests(arch / DUE[0]) == before[DUE[0]]


@pytest.mark.parametrize("step", A.MOVE_STEPS)
def test_a_killed_archive_resumes_without_loss_or_duplication(engine: Engine, lake: Path, policy: RetentionPolicy,
                                                             step: str) -> None:  # fmt: skip
    live, arch = lake / policy.dataset, lake / "archive" / policy.dataset
    before = {p: digests(live / p) for p in DUE}
    run = ctx("kill")
    with pytest.raises(Killed):
        A.run(engine, lake.as_uri(), policy, "archive", run, as_of=AS_OF, fail_at=kill_at(step))
    # Whatever the step, every record is still somewhere whole: live, or archived and verified.
    for p in DUE:
        assert (live / p).exists() or digests(arch / p) == before[p], p
    killed_at = [s for _, s in states(engine, run)]
    assert killed_at[1:] == ["planned"] * 4

    result = A.run(engine, lake.as_uri(), policy, "archive", run, as_of=AS_OF)  # the re-run
    assert [(p["partition"], p["state"]) for p in result["partitions"]] == [(p, "removed") for p in DUE]
    for p in DUE:
        assert not (live / p).exists()
        assert digests(arch / p) == before[p]
    assert not list((arch / A.STAGING).glob("*"))  # no staging leftovers
    assert audit_entries(engine, policy.dataset) == [("archive.partition", p, str(ROWS)) for p in DUE]
    task = TaskRef(run.dag_id, run.run_id, "meter")
    assert A.meter_run(engine, task, work_order_id=WO, dataset=policy.dataset, kind="archive")["metered"] == 5 * ROWS
    assert usage(engine, run.run_id) == [("21", "record", 5 * ROWS, 5 * ROWS, policy.dataset, WO)]


@pytest.mark.parametrize("step", A.MOVE_STEPS)
def test_a_killed_restore_resumes(engine: Engine, lake: Path, policy: RetentionPolicy, step: str) -> None:
    live, arch = lake / policy.dataset, lake / "archive" / policy.dataset
    before = digests(live / DUE[0])
    A.run(engine, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF, partitions=DUE[:1])
    run = ctx("restore")
    with pytest.raises(Killed):
        A.run(engine, lake.as_uri(), policy, "restore", run, as_of=AS_OF, partitions=DUE[:1], fail_at=kill_at(step))
    assert digests(live / DUE[0]) == before or digests(arch / DUE[0]) == before
    A.run(engine, lake.as_uri(), policy, "restore", run, as_of=AS_OF, partitions=DUE[:1])
    assert digests(live / DUE[0]) == before and not (arch / DUE[0]).exists()
    assert states(engine, run) == [(DUE[0], "restored")]
    assert audit_entries(engine, policy.dataset, "restore.partition") == [("restore.partition", DUE[0], str(ROWS))]


def test_another_run_takes_over_an_unfinished_archive_and_meters_it_once(engine: Engine, lake: Path,
                                                                          policy: RetentionPolicy) -> None:  # fmt: skip
    first, second = ctx("first"), ctx("second")
    with pytest.raises(Killed):
        A.run(engine, lake.as_uri(), policy, "archive", first, as_of=AS_OF, partitions=DUE[:2],
              fail_at=kill_at("verified"))  # fmt: skip
    # A restore may not start on a partition an archive left half done.
    pending = r"run test_archive/first-\w+ left its archive unfinished at step 'verified'"
    with pytest.raises(A.OperationPending, match=pending):
        A.run(engine, lake.as_uri(), policy, "restore", ctx("r"), as_of=AS_OF, partitions=DUE[:1])
    A.run(engine, lake.as_uri(), policy, "archive", second, as_of=AS_OF, partitions=DUE[:2])
    assert states(engine, first) == [(DUE[0], "superseded"), (DUE[1], "superseded")]
    assert states(engine, second) == [(DUE[0], "removed"), (DUE[1], "removed")]
    # The first run, re-run later, has nothing left to do and meters nothing.
    again = A.run(engine, lake.as_uri(), policy, "archive", first, as_of=AS_OF, partitions=DUE[:2])
    assert [p["state"] for p in again["partitions"]] == ["superseded", "superseded"]
    for run in (first, second):
        A.meter_run(engine, TaskRef(run.dag_id, run.run_id, "meter"), work_order_id=WO, dataset=policy.dataset,
                    kind="archive")  # fmt: skip
    assert usage(engine, first.run_id) == []
    assert usage(engine, second.run_id) == [("21", "record", 2 * ROWS, 2 * ROWS, policy.dataset, WO)]
    assert len(audit_entries(engine, policy.dataset, "archive.partition")) == 2


def test_restore_never_overwrites_other_live_content(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    live, arch = lake / policy.dataset, lake / "archive" / policy.dataset
    A.run(engine, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF, partitions=DUE[:1])
    archived = digests(arch / DUE[0])
    (live / DUE[0]).mkdir(parents=True)
    pq.write_table(pa.table({"event_id": ["NEW-1"]}), live / DUE[0] / "part-00000.parquet")
    newer = digests(live / DUE[0])
    conflict = r"exists with other content than the archive \(part-00001.parquet: missing; "
    with pytest.raises(A.RestoreConflict, match=conflict):
        A.run(engine, lake.as_uri(), policy, "restore", ctx("r"), as_of=AS_OF, partitions=DUE[:1])
    assert digests(live / DUE[0]) == newer and digests(arch / DUE[0]) == archived
    # Archiving the new content over the old archive is refused too.
    with pytest.raises(A.ArchiveConflict, match="already holds an archive of event_date=2025-01-01 with other content"):
        A.run(engine, lake.as_uri(), policy, "archive", ctx("b"), as_of=AS_OF, partitions=DUE[:1])
    assert digests(live / DUE[0]) == newer and digests(arch / DUE[0]) == archived


def test_a_corrupted_archive_is_not_restored(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    arch = lake / "archive" / policy.dataset
    A.run(engine, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF, partitions=DUE[:1])
    target = arch / DUE[0] / "part-00001.parquet"
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(A.VerificationFailed, match=r"part-00001\.parquet: sha256"):
        A.run(engine, lake.as_uri(), policy, "restore", ctx("r"), as_of=AS_OF, partitions=DUE[:1])
    assert not (lake / policy.dataset / DUE[0]).exists() and target.exists()


# --- destruction ----------------------------------------------------------------------


def test_destruction_refuses_without_a_proper_approval(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    A.run(engine, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF)
    arch = lake / "archive" / policy.dataset
    kept = digests(arch)

    with pytest.raises(D.DestructionRefused, match=f"work order {WO} has no approval for destroying it"):
        A.run(engine, lake.as_uri(), policy, "destroy", ctx("d"), as_of=AS_OF, partitions=DUE[:1])
    with pytest.raises(D.DestructionRefused, match="张三 cannot approve a destruction they requested"):
        D.approve_destruction(engine, WO, policy.dataset, DUE[:1], requested_by="张三", approved_by="张三")
    with engine.begin() as conn, pytest.raises(IntegrityError, match="security_destruction_approval_check"):
        conn.execute(text("INSERT INTO govops.security_destruction_approval (work_order_id, dataset, partitions, "
                          "requested_by, approved_by) VALUES (:wo, :d, '[\"*\"]', 'x', 'x')"),
                     {"wo": WO, "d": policy.dataset})  # fmt: skip
    D.approve_destruction(engine, WO, policy.dataset, DUE[:1], requested_by="张三", approved_by="李四")
    with pytest.raises(D.DestructionRefused, match=r"partition\(s\) event_date=2025-01-11 are not covered"):
        A.run(engine, lake.as_uri(), policy, "destroy", ctx("d"), as_of=AS_OF, partitions=DUE[:2])
    ensure_demo_work_order(engine, "WO-ARCHIVE-TEST-04", "04", on=date(2026, 6, 1))
    with pytest.raises(D.DestructionRefused, match="is for service item 04, not 21"):
        D.check_destruction_allowed(engine, "WO-ARCHIVE-TEST-04", policy.dataset, DUE[:1])
    with pytest.raises(D.DestructionRefused, match="'WO-NOPE' is unknown"):
        D.check_destruction_allowed(engine, "WO-NOPE", policy.dataset, DUE[:1])
    assert digests(arch) == kept  # nothing was touched


def _destroy_ready(engine: Engine, lake: Path, policy: RetentionPolicy, partitions: list[str]) -> None:
    A.run(engine, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF)
    D.approve_destruction(engine, WO, policy.dataset, partitions, requested_by="张三", approved_by="李四")


def _values(lake: Path, dataset: str, partition: str, column: str) -> list[str]:
    folder = lake / "archive" / dataset / partition
    if not folder.exists():
        folder = lake / dataset / partition
    return pq.read_table(folder, columns=[column]).column(column).to_pylist()


def test_destruction_leaves_nothing_and_shreds_the_key(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    every = sorted(p.name for p in (lake / policy.dataset).iterdir() if p.is_dir())
    _destroy_ready(engine, lake, policy, ["*"])
    with engine.begin() as conn:
        keys.data_key(conn, policy.key)
        keys.rotate_data_key(conn, policy.key, by="tester")
    # Other data that shares no values with the destroyed records is no residue.
    other = lake / "raw/test/persons"
    other.mkdir(parents=True)
    pq.write_table(pa.table({"id_number": ["110101199001011237"], "name": ["王五"]}), other / "part-0.parquet")
    (lake / "reports").mkdir()
    (lake / "reports" / "summary.csv").write_text("event_id,rows\nEV-OTHER,3\n", encoding="utf-8")
    sample = _values(lake, policy.dataset, DUE[0], "id_number")[0]
    run = ctx("destroy")
    result = A.run(engine, lake.as_uri(), policy, "destroy", run, as_of=AS_OF, partitions=every,
                   config=RetentionConfig(path=Path("-"), policies={policy.dataset: policy}))  # fmt: skip
    cert = result["certificate"]
    assert cert["complete"] is True and cert["verification"]["residue"] == []
    assert (cert["rows_before"], cert["rows_after"]) == (9 * ROWS, 0)
    assert [p["partition"] for p in cert["partitions"]] == every
    assert {c for p in cert["partitions"] for c in p["copies"]} == {"live", "archive"}
    assert cert["key"] == {"name": policy.key, "destroyed": True, "method": "crypto-shredding",
                           "versions_destroyed": [1, 2], "destroyed_by_this_run": [1, 2]}  # fmt: skip
    assert cert["method"][1] == f"crypto-shredding of data key {policy.key} (versions [1, 2])"
    assert (cert["requested_by"], cert["approved_by"], cert["work_order_id"]) == (["张三"], ["李四"], WO)
    assert cert["verification"]["scanned"]["parquet_footers"] == 1 and cert["verification"]["scanned"]["text"] >= 1
    with engine.connect() as conn:
        assert keys.key_state(conn, policy.key) == [(1, "destroyed"), (2, "destroyed")]
        entry = conn.execute(text("SELECT action, hash FROM govops.security_audit_log WHERE seq = :s"),
                             {"s": cert["audit"]["seq"]}).one()  # fmt: skip
        assert audit.verify(conn).ok
    assert tuple(entry) == ("destroy.certificate", cert["audit"]["hash"])
    assert not (lake / policy.dataset).exists() or not any((lake / policy.dataset).glob("event_date=*"))
    assert not any((lake / "archive" / policy.dataset).glob("event_date=*"))
    folder = lake / "reports/security/destruction" / policy.dataset / A.safe_name(run.run_id)
    on_disk = json.loads((folder / "certificate.json").read_text())
    assert on_disk["audit"]["seq"] == cert["audit"]["seq"] and on_disk["complete"] is True
    page = (folder / "certificate.html").read_text()
    assert "李四" in page and f"seq {cert['audit']['seq']}" in page and sample not in page
    assert sample not in json.dumps(on_disk)  # checksums and names only
    # Signed: the file verifies with the master key alone, and not once a figure is changed.
    assert on_disk["certificate_version"] == 2 and on_disk["signature"]["key_version"] == 1
    assert D.verify_certificate(folder / "certificate.json").ok
    assert not D.verify_certificate({**on_disk, "rows_after": 1}).ok
    assert f"master key version\n1 · <code>{on_disk['signature']['value']}</code>" in page
    # The fingerprints are gone once the destruction is certified.
    assert not list((lake / D.FINGERPRINT_STORE).rglob("*.npy"))
    # Metered once: the records destroyed.
    for _ in range(2):
        A.meter_run(engine, TaskRef(run.dag_id, run.run_id, "meter"), work_order_id=WO, dataset=policy.dataset,
                    kind="destroy")  # fmt: skip
    assert usage(engine, run.run_id) == [("21", "record", 9 * ROWS, 9 * ROWS, policy.dataset, WO)]
    # A re-run of the finished run returns the same certificate, with no new audit entry.
    again = A.run(engine, lake.as_uri(), policy, "destroy", run, as_of=AS_OF, partitions=every)
    assert again["certificate"]["audit"] == cert["audit"]


@pytest.mark.parametrize("step", D.DESTROY_STEPS)
def test_a_killed_destruction_resumes(engine: Engine, lake: Path, policy: RetentionPolicy, step: str) -> None:
    _destroy_ready(engine, lake, policy, DUE[:2])
    run = ctx("destroy")
    with pytest.raises(Killed):
        A.run(engine, lake.as_uri(), policy, "destroy", run, as_of=AS_OF, partitions=DUE[:2], fail_at=kill_at(step))
    result = A.run(engine, lake.as_uri(), policy, "destroy", run, as_of=AS_OF, partitions=DUE[:2])
    assert result["certificate"]["complete"] and result["certificate"]["rows_before"] == 2 * ROWS
    assert states(engine, run) == [(DUE[0], "destroyed"), (DUE[1], "destroyed")]
    assert not (lake / "archive" / policy.dataset / DUE[0]).exists()
    # The partitions that remain keep the key.
    assert result["certificate"]["key"]["destroyed"] is False
    assert result["certificate"]["key"]["reason"] == "7 partition(s) of the dataset remain and are encrypted with it"
    assert audit_entries(engine, policy.dataset, "destroy.partition") == [("destroy.partition", p, str(ROWS))
                                                                          for p in DUE[:2]]  # fmt: skip


def test_planted_copies_are_found_and_fail_the_destruction(engine: Engine, lake: Path, policy: RetentionPolicy,
                                                          tmp_path: Path) -> None:  # fmt: skip
    _destroy_ready(engine, lake, policy, DUE[:1])
    event_ids = sorted(_values(lake, policy.dataset, DUE[0], "event_id"))
    id_number = _values(lake, policy.dataset, DUE[0], "id_number")[3]
    kept_value = _values(lake, policy.dataset, DUE[1], "event_id")[0]
    # A copy in another dataset, alone in its file: the footer statistics hold it.
    planted_stats = lake / "clean/test/copy/part-0.parquet"
    planted_stats.parent.mkdir(parents=True)
    pq.write_table(pa.table({"ref": [event_ids[5]]}), planted_stats)
    # In the anomalies zone, in the middle of other values: only a full read finds it.
    planted_values = lake / "anomalies/quality/x/part-0.parquet"
    planted_values.parent.mkdir(parents=True)
    pq.write_table(pa.table({"v": ["0000000000", id_number, "ZZZZZZZZZZ"]}), planted_values)
    # In a rejects CSV, in a task log outside the lake, and in a value of a remaining partition (not residue).
    planted_csv = lake / "rejects/test/run1/rejects.csv"
    planted_csv.parent.mkdir(parents=True)
    planted_csv.write_text(f"reason,record\nbad date,\"{{'event_id': '{event_ids[0]}'}}\"\n", encoding="utf-8")
    logs = tmp_path / "airflow-logs" / "dag_id=x" / "run_id=y"
    logs.mkdir(parents=True)
    (logs / "attempt=1.log").write_text(f"line one\n[2025] processing id {id_number}, ok\n", encoding="utf-8")
    (lake / "reports").mkdir()
    (lake / "reports" / "kept.txt").write_text(f"still live: {kept_value}\n", encoding="utf-8")

    run = ctx("destroy")
    with pytest.raises(D.ResidueFound) as err:
        A.run(engine, lake.as_uri(), policy, "destroy", run, as_of=AS_OF, partitions=DUE[:1],
              log_folders=[str(tmp_path / "airflow-logs")])  # fmt: skip
    message = str(err.value)
    assert message.startswith(f"DESTRUCTION_RESIDUE: {policy.dataset}: destruction incomplete, residue in 4 place(s)")
    for planted in (planted_stats, planted_values, planted_csv, logs / "attempt=1.log"):
        assert f"file://{planted}" in message
    assert event_ids[5] not in message and id_number not in message
    folder = lake / "reports/security/destruction" / policy.dataset / A.safe_name(run.run_id)
    cert = json.loads((folder / "certificate.json").read_text())
    assert cert["complete"] is False and D.verify_certificate(cert).ok  # an incomplete one is signed too
    assert sorted((r["kind"], r["where"]) for r in cert["verification"]["residue"]) == [
        ("parquet-statistics",
         "column ref max statistics in 1 row group(s); column ref min statistics in 1 row group(s)"),
        ("parquet-values", "column v: 1 value(s)"),
        ("text", "line(s) 2"),
        ("text", "line(s) 2"),
    ]  # fmt: skip
    assert "不完整" in (folder / "certificate.html").read_text()
    assert states(engine, run) == [(DUE[0], "destroyed")]

    # Removing the copies and running the check again certifies the destruction.
    for planted in (planted_stats, planted_values, planted_csv, logs / "attempt=1.log"):
        planted.unlink()
    cert = D.finalize_destruction(engine, lake.as_uri(), policy, run, log_folders=[str(tmp_path / "airflow-logs")])
    assert cert["complete"] is True and cert["rows_before"] == ROWS
    with engine.connect() as conn:
        actions = [r[0] for r in conn.execute(text(
            "SELECT details->>'complete' FROM govops.security_audit_log WHERE action = 'destroy.certificate' "
            "AND dataset = :d ORDER BY seq"), {"d": policy.dataset})]  # fmt: skip
    assert actions == ["false", "true"]


def test_the_audit_chain_detects_a_modified_entry(fresh_ledger: Engine, lake: Path, policy: RetentionPolicy) -> None:
    ensure_demo_work_order(fresh_ledger, WO, "21", on=date(2026, 6, 1))
    A.run(fresh_ledger, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF, partitions=DUE[:2])
    with fresh_ledger.begin() as conn:
        check = audit.verify(conn)
        assert check.ok and check.entries == 2
        seq = conn.execute(text("SELECT min(seq) FROM govops.security_audit_log WHERE action = 'archive.partition'"))
        seq = seq.scalar_one()
        tamper(conn, """UPDATE govops.security_audit_log SET details = jsonb_set(details, '{rows}', '1')
                        WHERE seq = :s""", s=seq)  # the owner forcing it past the append-only trigger
        broken = audit.verify(conn)
    assert (broken.ok, broken.first_bad_seq, broken.reason) == (False, seq, f"entry {seq} was modified after it "
                                                                            "was written")  # fmt: skip


def test_metering_is_exactly_once_across_re_runs(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    run = ctx("meter")
    task = TaskRef(run.dag_id, run.run_id, "meter", -1, 1)
    A.run(engine, lake.as_uri(), policy, "archive", run, as_of=AS_OF)
    first = A.meter_run(engine, task, work_order_id=WO, dataset=policy.dataset, kind="archive")
    assert (first["metered"], first["inserted"], first["partitions"]) == (5 * ROWS, 1, 5)
    # The whole run again (another try): the same partitions, nothing new, the same event.
    again = A.run(engine, lake.as_uri(), policy, "archive", run, as_of=date(2025, 12, 31))
    assert [p["state"] for p in again["partitions"]] == ["removed"] * 5 and again["plan"] is None
    second = A.meter_run(engine, TaskRef(run.dag_id, run.run_id, "meter", -1, 2), work_order_id=WO,
                         dataset=policy.dataset, kind="archive")  # fmt: skip
    assert (second["metered"], second["inserted"]) == (5 * ROWS, 0)
    assert usage(engine, run.run_id) == [("21", "record", 5 * ROWS, 5 * ROWS, policy.dataset, WO)]
    # A restore is logged and audited but meters nothing.
    back = ctx("restore")
    A.run(engine, lake.as_uri(), policy, "restore", back, as_of=AS_OF, partitions=DUE[:1])
    assert A.meter_run(engine, TaskRef(back.dag_id, back.run_id, "meter"), work_order_id=WO, dataset=policy.dataset,
                       kind="restore")["metered"] == 0  # fmt: skip
    assert usage(engine, back.run_id) == []
    # Metering refuses a run whose partitions did not all finish.
    half = ctx("half")
    with pytest.raises(Killed):
        A.run(engine, lake.as_uri(), policy, "archive", half, as_of=AS_OF, partitions=DUE[:1],
              fail_at=kill_at("verified"))  # fmt: skip
    with pytest.raises(A.ArchiveError, match="are not finished; nothing metered"):
        A.meter_run(engine, TaskRef(half.dag_id, half.run_id, "meter"), work_order_id=WO, dataset=policy.dataset,
                    kind="archive")  # fmt: skip


def test_the_report_shows_volumes_by_dataset_and_month(engine: Engine, lake: Path, policy: RetentionPolicy) -> None:
    A.run(engine, lake.as_uri(), policy, "archive", ctx("a"), as_of=AS_OF)
    A.run(engine, lake.as_uri(), policy, "restore", ctx("r"), as_of=AS_OF, partitions=DUE[:1])
    uri = write_report(engine, lake.as_uri())
    page = (lake / "reports/security/archive/report.html").read_text()
    assert uri.endswith("/reports/security/archive/report.html")
    assert page.count("data:image/png;base64,") == 3
    month = datetime.now(UTC).astimezone(contract_timezone())
    row = f"<tr><td>{policy.dataset}</td><td>{month:%Y-%m}</td><td class=n>{5 * ROWS:,}</td><td class=n>{ROWS}</td>"
    assert row in page
    assert "audit log" in page
