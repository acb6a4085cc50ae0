"""The tamper-evident audit log of security operations (``govops.security_audit_log``).

Each entry's ``hash`` is the SHA-256 of the previous entry's hash and the entry's own
canonical JSON (seq, time, actor, action, dataset, details), so changing, removing or
reordering any entry breaks every hash after it, and :func:`verify` names the first entry
that no longer matches. Appends are serialized by a transaction-level advisory lock, so
concurrent writers cannot fork the chain. Details must never hold key material or clear
sensitive values: callers log names, counts and checksums.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

GENESIS = "0" * 64
_LOCK = 0x60_5EC_A0D17  # pg_advisory_xact_lock key of the audit chain


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""


def _canonical(seq: int, at: datetime, actor: str, action: str, dataset: str | None, details: Any) -> bytes:
    body = {"seq": seq, "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": actor,
            "action": action, "dataset": dataset, "details": details}  # fmt: skip
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, dataset: str | None,
               details: Any) -> str:  # fmt: skip
    return hashlib.sha256(prev_hash.encode() + _canonical(seq, at, actor, action, dataset, details)).hexdigest()


def append(conn: Connection, *, actor: str, action: str, dataset: str | None, details: Mapping[str, Any]) -> int:
    """Append one entry in the caller's transaction (it commits with the operation it
    records); returns its sequence number."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    last = conn.execute(text("SELECT seq, hash FROM govops.security_audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    # Round-trip the details through JSON so the hashed form is exactly what jsonb returns.
    clean = json.loads(json.dumps(dict(details), ensure_ascii=False, default=str))
    at = datetime.now(UTC)
    conn.execute(
        text("""INSERT INTO govops.security_audit_log (seq, at, actor, action, dataset, details, prev_hash, hash)
                VALUES (:seq, :at, :actor, :action, :dataset, CAST(:details AS jsonb), :prev, :hash)"""),
        {"seq": seq, "at": at, "actor": actor, "action": action, "dataset": dataset,
         "details": json.dumps(clean, ensure_ascii=False), "prev": prev,
         "hash": entry_hash(prev, seq, at, actor, action, dataset, clean)},
    )  # fmt: skip
    return seq


def verify(conn: Connection) -> AuditCheck:
    """Recompute the chain from the first entry; the first entry that breaks it is named."""
    prev, expected_seq, n = GENESIS, 1, 0
    rows = conn.execute(
        text("SELECT seq, at, actor, action, dataset, details, prev_hash, hash FROM govops.security_audit_log "
             "ORDER BY seq")
    )  # fmt: skip
    for r in rows:
        n += 1
        if r.seq != expected_seq:
            return AuditCheck(False, n, r.seq, f"entry {expected_seq} is missing (next is {r.seq})")
        if r.prev_hash != prev:
            return AuditCheck(False, n, r.seq, f"entry {r.seq} does not follow entry {r.seq - 1}")
        if entry_hash(prev, r.seq, r.at, r.actor, r.action, r.dataset, r.details) != r.hash:
            return AuditCheck(False, n, r.seq, f"entry {r.seq} was modified after it was written")
        prev, expected_seq = r.hash, expected_seq + 1
    return AuditCheck(True, n)
