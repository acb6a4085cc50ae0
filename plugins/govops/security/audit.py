"""The tamper-evident audit log of security operations (``govops.security_audit_log``).

**Append-only.** The database refuses UPDATE, DELETE and TRUNCATE of the table (triggers,
and the privileges are revoked from the application's roles; migration 0009).

**Keyed chain.** Each entry's ``hash`` is the HMAC-SHA256 of the previous entry's hash and
the entry's own canonical JSON (seq, time, actor, action, dataset, details), under the
audit-chain sub-key of the master key (``govops.security.signing``; ``key_version`` names
the master key version). The key is not in the database: someone who can write the table
(or disable its triggers) cannot recompute the chain, and rewriting it with plain SHA-256
hashes is detected. Changing, removing or reordering an entry breaks every hash after it,
and :func:`verify` names the first entry that no longer matches. Removing the newest
entries leaves a shorter chain that holds: the database's refusal of DELETE and TRUNCATE
is what prevents that (and each destruction certificate carries its entry's seq and hash).

**Entries from before keying** (``chain_version`` 1, written before migration 0009) keep
their plain SHA-256 hashes and are verified that way, but only as the chain's first entries,
sealed by the keyed entry that follows them (its HMAC covers their last hash): an unkeyed
entry after a keyed one, or a chain with no keyed entry at all, does not verify. After
upgrading a database that has entries, :func:`seal` (``python -m govops.security
audit-seal``) appends that keyed entry at once; any other operation's entry seals them too.

Appends are serialized by a transaction-level advisory lock, so concurrent writers cannot
fork the chain. Details must never hold key material or clear sensitive values: callers
log names, counts and checksums.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from govops.security import signing

GENESIS = "0" * 64
CHAIN_PLAIN, CHAIN_KEYED = 1, 2  # chain_version: plain SHA-256 (before migration 0009), HMAC-SHA256
_LOCK = 0x60_5EC_A0D17  # pg_advisory_xact_lock key of the audit chain


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""
    unkeyed: int = 0  # entries from before keying, sealed by the first keyed entry

    def summary(self) -> str:
        older = f" ({self.unkeyed} unkeyed from before keying, sealed)" if self.unkeyed else ""
        if self.ok:
            return f"{self.entries} entries{older}: the chain holds"
        return f"{self.entries} entries: BROKEN at {self.first_bad_seq}: {self.reason}"


def _canonical(seq: int, at: datetime, actor: str, action: str, dataset: str | None, details: Any) -> bytes:
    body = {"seq": seq, "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": actor,
            "action": action, "dataset": dataset, "details": details}  # fmt: skip
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, dataset: str | None,
               details: Any, key: bytes | None = None) -> str:  # fmt: skip
    """HMAC-SHA256 under ``key``; without a key, the plain SHA-256 of entries from before keying."""
    message = prev_hash.encode() + _canonical(seq, at, actor, action, dataset, details)
    return signing.sign(key, message) if key is not None else hashlib.sha256(message).hexdigest()


def append(conn: Connection, *, actor: str, action: str, dataset: str | None, details: Mapping[str, Any]) -> int:
    """Append one entry in the caller's transaction (it commits with the operation it
    records); returns its sequence number."""
    version, key = signing.signing_key(signing.AUDIT_CHAIN)  # no master key: refused before anything is written
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    last = conn.execute(text("SELECT seq, hash FROM govops.security_audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    # Round-trip the details through JSON so the hashed form is exactly what jsonb returns.
    clean = json.loads(json.dumps(dict(details), ensure_ascii=False, default=str))
    at = datetime.now(UTC)
    conn.execute(
        text("""INSERT INTO govops.security_audit_log (seq, at, actor, action, dataset, details, prev_hash, hash,
                       chain_version, key_version)
                VALUES (:seq, :at, :actor, :action, :dataset, CAST(:details AS jsonb), :prev, :hash, :cv, :kv)"""),
        {"seq": seq, "at": at, "actor": actor, "action": action, "dataset": dataset,
         "details": json.dumps(clean, ensure_ascii=False), "prev": prev,
         "hash": entry_hash(prev, seq, at, actor, action, dataset, clean, key), "cv": CHAIN_KEYED, "kv": version},
    )  # fmt: skip
    return seq


def seal(conn: Connection, *, by: str) -> int | None:
    """After upgrading: a keyed entry that seals the unkeyed entries from before keying (its
    HMAC covers their last hash); None when the chain does not end with unkeyed entries."""
    last = conn.execute(text("SELECT seq, hash, chain_version FROM govops.security_audit_log "
                             "ORDER BY seq DESC LIMIT 1")).first()  # fmt: skip
    if last is None or last.chain_version != CHAIN_PLAIN:
        return None
    return append(conn, actor=by, action="audit.seal", dataset=None,
                  details={"unkeyed_entries": last.seq, "last_unkeyed_hash": last.hash})  # fmt: skip


def verify(conn: Connection) -> AuditCheck:
    """Recompute the chain from the first entry with the master key's audit-chain sub-keys;
    the first entry that breaks it is named."""
    prev, expected_seq, n, unkeyed, version = GENESIS, 1, 0, 0, 0
    keys: dict[int, bytes] = {}
    rows = conn.execute(
        text("SELECT seq, at, actor, action, dataset, details, prev_hash, hash, chain_version, key_version "
             "FROM govops.security_audit_log ORDER BY seq")
    )  # fmt: skip
    for r in rows:
        n += 1
        if r.seq != expected_seq:
            return AuditCheck(False, n, r.seq, f"entry {expected_seq} is missing (next is {r.seq})")
        if r.prev_hash != prev:
            return AuditCheck(False, n, r.seq, f"entry {r.seq} does not follow entry {r.seq - 1}")
        key = None
        if r.chain_version == CHAIN_PLAIN:
            if version:
                return AuditCheck(False, n, r.seq, f"entry {r.seq} is unkeyed after keyed entries: the chain was "
                                                   "rewritten")  # fmt: skip
            unkeyed += 1
        elif r.chain_version == CHAIN_KEYED and r.key_version is not None:
            if r.key_version < version:
                return AuditCheck(False, n, r.seq, f"entry {r.seq} is signed under master key version "
                                                   f"{r.key_version} after entries of version {version}")  # fmt: skip
            try:
                key = keys[r.key_version] if r.key_version in keys else signing.signing_key(
                    signing.AUDIT_CHAIN, r.key_version)[1]  # fmt: skip
            except signing.KeyManagementError as exc:
                return AuditCheck(False, n, r.seq, f"entry {r.seq} cannot be checked: {exc}")
            keys[r.key_version], version = key, r.key_version
        else:
            return AuditCheck(False, n, r.seq, f"entry {r.seq} has an unknown chain version {r.chain_version}")
        if not signing.same(entry_hash(prev, r.seq, r.at, r.actor, r.action, r.dataset, r.details, key), r.hash):
            return AuditCheck(False, n, r.seq, f"entry {r.seq} was modified after it was written")
        prev, expected_seq = r.hash, expected_seq + 1
    if unkeyed and not version:
        return AuditCheck(False, n, 1, f"no keyed entry seals the {unkeyed} unkeyed entries: written before keying "
                                       "(seal them: python -m govops.security audit-seal --by NAME) or rewritten "
                                       "without the key")  # fmt: skip
    return AuditCheck(True, n, unkeyed=unkeyed)
