"""The audit log on real PostgreSQL: append-only in the database (UPDATE, DELETE and TRUNCATE
refused, the privileges revoked), the chain keyed with the master key (a chain rewritten
with recomputed plain SHA-256 hashes is caught, however it is relabeled), entries from before
keying verified as a sealed prefix, master-key versions; and destruction certificates signed
and checked from the file with the master key alone."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from govops.security import audit, destruction
from govops.security.__main__ import main
from tests.conftest import write_master_keys

pytestmark = pytest.mark.integration
LOG = "govops.security_audit_log"


def tamper(conn: Connection, sql: str, **params: object) -> None:
    """What only the table's owner or a superuser can still do: triggers off, privileges back."""
    conn.execute(text(f"ALTER TABLE {LOG} DISABLE TRIGGER USER"))
    conn.execute(text(f"GRANT UPDATE, DELETE ON {LOG} TO CURRENT_USER"))
    conn.execute(text(sql), params)
    conn.execute(text(f"ALTER TABLE {LOG} ENABLE TRIGGER USER"))



def _entries(conn: Connection, n: int) -> None:
    for i in range(n):
        audit.append(conn, actor="ops", action="test.entry", dataset="raw/x", details={"i": i, "rows": 10 * i})


def _refused(engine: Engine, sql: str) -> str:
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(f"GRANT UPDATE, DELETE, TRUNCATE ON {LOG} TO CURRENT_USER"))  # privileges alone: no help
        conn.execute(text(sql))
    return str(caught.value.orig)


def test_the_audit_log_is_append_only(fresh_ledger: Engine, master: bytes) -> None:
    with fresh_ledger.begin() as conn:
        _entries(conn, 3)
    assert "AUDIT_LOG_APPEND_ONLY" in _refused(fresh_ledger, f"UPDATE {LOG} SET actor = 'x' WHERE seq = 2")
    assert "AUDIT_LOG_APPEND_ONLY" in _refused(fresh_ledger, f"DELETE FROM {LOG} WHERE seq = 3")
    assert "TRUNCATE_REFUSED" in _refused(fresh_ledger, f"TRUNCATE {LOG}")
    with fresh_ledger.connect() as conn:
        granted = conn.execute(text(f"""SELECT DISTINCT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
                                        WHERE c.oid = '{LOG}'::regclass ORDER BY 1""")).scalars().all()  # fmt: skip
        assert not {"UPDATE", "DELETE", "TRUNCATE"} & set(granted) and "INSERT" in granted
        assert conn.execute(text(f"SELECT count(*) FROM {LOG}")).scalar_one() == 3
        assert audit.verify(conn).ok


def test_a_chain_rewritten_with_plain_sha256_is_caught(fresh_ledger: Engine, master: bytes) -> None:
    with fresh_ledger.begin() as conn:
        _entries(conn, 5)
        check = audit.verify(conn)
        assert (check.ok, check.entries, check.unkeyed) == (True, 5, 0)
        rows = conn.execute(text(f"SELECT * FROM {LOG} ORDER BY seq")).all()
    assert {(r.chain_version, r.key_version) for r in rows} == {(2, 1)}

    def rewrite(conn: Connection, chain_version: int, from_seq: int) -> None:
        """Change entry 3's rows and recompute every hash from ``from_seq`` on with plain SHA-256,
        as anyone who can write the table could."""
        prev = audit.GENESIS
        for r in rows:
            details = {**r.details, "rows": 1} if r.seq == 3 else r.details
            if r.seq >= from_seq:
                digest = audit.entry_hash(prev, r.seq, r.at, r.actor, r.action, r.dataset, details)
                tamper(conn, f"""UPDATE {LOG} SET details = CAST(:d AS jsonb), prev_hash = :p, hash = :h,
                                 chain_version = :cv, key_version = :kv WHERE seq = :s""",
                       d=json.dumps(details), p=prev, h=digest, cv=chain_version,
                       kv=None if chain_version == 1 else r.key_version, s=r.seq)  # fmt: skip
                prev = digest
            else:
                prev = r.hash

    for chain_version, from_seq, bad_seq, reason in [
        (2, 3, 3, "entry 3 was modified after it was written"),  # keyed label, plain hashes
        (1, 3, 3, "entry 3 is unkeyed after keyed entries: the chain was rewritten"),
        (1, 1, 1, "no keyed entry seals the 5 unkeyed entries"),  # the whole chain passed off as old
    ]:
        with fresh_ledger.begin() as conn:
            rewrite(conn, chain_version, from_seq)
            broken = audit.verify(conn)
            assert (broken.ok, broken.first_bad_seq) == (False, bad_seq)
            assert broken.reason.startswith(reason)
            conn.rollback()
    with fresh_ledger.connect() as conn:
        assert audit.verify(conn).ok  # each rewrite was rolled back


def test_entries_from_before_keying_are_a_sealed_prefix(fresh_ledger: Engine, master: bytes,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("GOVOPS_DATABASE_URL", fresh_ledger.url.render_as_string(hide_password=False))
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with fresh_ledger.begin() as conn:  # as revision 0007's code wrote them (chain_version 1 after 0009)
        prev = audit.GENESIS
        for seq in (1, 2, 3):
            digest = audit.entry_hash(prev, seq, at, "ops", "key.create", None, {"key": f"k{seq}"})
            conn.execute(text(f"""INSERT INTO {LOG} (seq, at, actor, action, dataset, details, prev_hash, hash,
                                  chain_version) VALUES (:s, :at, 'ops', 'key.create', NULL, CAST(:d AS jsonb),
                                  :p, :h, 1)"""),
                         {"s": seq, "at": at, "d": json.dumps({"key": f"k{seq}"}), "p": prev, "h": digest})
            prev = digest
    assert main(["audit-verify"]) == 1
    assert "BROKEN at 1: no keyed entry seals the 3 unkeyed entries" in capsys.readouterr().out
    assert main(["audit-seal", "--by", "ops"]) == 0
    assert main(["audit-seal", "--by", "ops"]) == 0  # nothing more to seal
    assert capsys.readouterr().out.splitlines() == ["entry 4 seals the entries from before keying",
                                                    "nothing to seal: the chain ends keyed"]  # fmt: skip
    assert main(["audit-verify"]) == 0
    assert capsys.readouterr().out.strip() == "4 entries (3 unkeyed from before keying, sealed): the chain holds"
    with fresh_ledger.begin() as conn:
        seal = conn.execute(text(f"SELECT details FROM {LOG} WHERE seq = 4")).scalar_one()
        assert seal == {"unkeyed_entries": 3, "last_unkeyed_hash": prev}
        # Rewriting an old entry, even with its plain hash recomputed, no longer joins the seal.
        forged = audit.entry_hash(audit.GENESIS, 1, at, "someone", "key.create", None, {"key": "k1"})
        tamper(conn, f"UPDATE {LOG} SET actor = 'someone', hash = :h WHERE seq = 1", h=forged)
        tamper(conn, f"UPDATE {LOG} SET prev_hash = :h WHERE seq = 2", h=forged)
        broken = audit.verify(conn)
        assert (broken.first_bad_seq, broken.reason) == (2, "entry 2 was modified after it was written")


def test_master_key_versions(fresh_ledger: Engine, master: bytes) -> None:
    with fresh_ledger.begin() as conn:
        _entries(conn, 2)
    write_master_keys((2, os.urandom(32)), (1, master))  # rotated, version 1 kept
    with fresh_ledger.begin() as conn:
        _entries(conn, 1)
        assert conn.execute(text(f"SELECT key_version FROM {LOG} ORDER BY seq")).scalars().all() == [1, 1, 2]
        assert audit.verify(conn).ok
    write_master_keys((2, os.urandom(32)))  # version 1 dropped (and version 2 replaced): nothing verifies
    with fresh_ledger.connect() as conn:
        broken = audit.verify(conn)
    assert (broken.ok, broken.first_bad_seq) == (False, 1)
    assert "govops_master_key_v1" in broken.reason


def _certificate() -> dict:
    return {"title": "数据销毁证明 / Data destruction certificate", "certificate_version": 2, "dataset": "raw/x/events",
            "partitions": [{"partition": "event_date=2025-01-01", "rows_before": 120, "rows_after": 0}],
            "rows_before": 120, "rows_after": 0, "approved_by": ["李四"], "complete": True,
            "audit": {"seq": 7, "hash": "ab" * 32}}  # fmt: skip


def test_destruction_certificates_verify_without_the_database(tmp_path: Path, master: bytes,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("GOVOPS_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/nothing")  # no database to reach
    cert = destruction.sign_certificate(_certificate())
    assert (cert["signature"]["algorithm"], cert["signature"]["key_version"]) == ("HMAC-SHA256", 1)
    good = tmp_path / "certificate.json"
    good.write_text(json.dumps(cert, ensure_ascii=False, indent=2), encoding="utf-8")
    check = destruction.verify_certificate(good)
    assert (check.ok, check.dataset, check.complete, check.key_version) == (True, "raw/x/events", True, 1)
    assert main(["certificate-verify", str(good)]) == 0
    assert "valid, signed with master key version 1 (raw/x/events, complete)" in capsys.readouterr().out

    changed = {**cert, "rows_before": 12}
    unsigned = {k: v for k, v in cert.items() if k != "signature"}
    body = json.dumps(unsigned | {"rows_before": 12}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    plain_sha = {**changed, "signature": {**cert["signature"], "value": hashlib.sha256(body.encode()).hexdigest()}}
    for name, body, reason in [
        ("changed", changed, "the signature does not match"),
        ("plain", plain_sha, "the signature does not match"),
        ("unsigned", unsigned, "unsigned (certificate_version 2)"),
        ("v1", {**unsigned, "certificate_version": 1}, "unsigned (certificate_version 1)"),
    ]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        assert destruction.verify_certificate(path).reason.startswith(reason)
        assert main(["certificate-verify", str(path)]) == 1
        assert f"{path}: NOT VALID: {reason}" in capsys.readouterr().out
    write_master_keys((1, os.urandom(32)))  # another key under the same version
    assert not destruction.verify_certificate(good).ok
