"""Callers (请求方), their API keys and their applications for conditional sets.

A key is ``<key_id>.<secret>``. Only SHA-256 of the secret is stored. The secret is
HMAC-SHA256 of the key id under a sub-key of the project's master key
(``govops.security.signing``), which lets the server check the appKey + timestamp +
signature convention (HMAC-SHA256 of the request with the secret) without storing the
secret either. Keys expire and can be revoked; a revoked key never works again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from govops.errors import CodedError

S = "govops"
_PURPOSE = "govops-sharing:app-secret"
KINDS = ("department", "company", "person")
# The publishing DAG's caller (sharing_publish tests the interfaces with a one-day key of it).
# It may call a closed set: publishing a closed set again tests it before it opens.
TEST_CALLER = "govops-interface-test"


class CallerError(CodedError, ValueError):
    code = "API_CALLER_ERROR"


@dataclass(frozen=True)
class Caller:
    caller_id: str
    name: str
    kind: str
    roles: frozenset[str]
    allowed_sets: frozenset[str] | None
    key_id: str
    key_expires_at: datetime


def _secret(key_id: str, master_version: int | None = None) -> tuple[int, str]:
    from govops.security.signing import signing_key

    version, key = signing_key(_PURPOSE, master_version)
    digest = hmac.new(key, key_id.encode(), hashlib.sha256).digest()
    return version, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def add_caller(engine: Engine, caller_id: str, name: str, kind: str, contact: str, roles: list[str],
               allowed_sets: list[str] | None = None) -> None:  # fmt: skip
    if kind not in KINDS:
        raise CallerError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    with engine.begin() as conn:
        conn.execute(text(f"""INSERT INTO {S}.api_caller (caller_id, name, kind, contact, roles, allowed_sets)
                              VALUES (:c, :n, :k, :ct, :r, :a)
                              ON CONFLICT (caller_id) DO UPDATE SET name = :n, kind = :k, contact = :ct,
                                  roles = :r, allowed_sets = :a"""),
                     {"c": caller_id, "n": name, "k": kind, "ct": contact, "r": roles, "a": allowed_sets})  # fmt: skip


def issue_key(engine: Engine, caller_id: str, days: int = 365, now: datetime | None = None) -> str:
    """A new key for the caller, valid ``days``; the only time the full key is shown."""
    now = now or datetime.now(UTC)
    key_id = "gk" + secrets.token_hex(8)
    version, secret = _secret(key_id)
    with engine.begin() as conn:
        found = conn.execute(text(f"SELECT disabled_at FROM {S}.api_caller WHERE caller_id = :c"),
                             {"c": caller_id}).first()  # fmt: skip
        if found is None:
            raise CallerError(f"caller {caller_id!r} is not registered")
        conn.execute(text(f"""INSERT INTO {S}.api_key (key_id, caller_id, secret_sha256, master_version,
                                                         created_at, expires_at)
                              VALUES (:k, :c, :h, :v, :now, :exp)"""),
                     {"k": key_id, "c": caller_id, "h": secret_hash(secret), "v": version, "now": now,
                      "exp": now + timedelta(days=days)})  # fmt: skip
    return f"{key_id}.{secret}"


def revoke_key(engine: Engine, key_id: str, reason: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            text(f"""UPDATE {S}.api_key SET revoked_at = now(), revoked_reason = :r
                                     WHERE key_id = :k AND revoked_at IS NULL"""),
            {"k": key_id, "r": reason},
        )
        if done.rowcount != 1:
            raise CallerError(f"key {key_id!r} does not exist or is already revoked")


def apply(engine: Engine, caller_id: str, set_name: str, purpose: str) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text(f"""INSERT INTO {S}.api_application (caller_id, set_name, purpose, status)
                                         VALUES (:c, :s, :p, 'pending') RETURNING id"""),
                                {"c": caller_id, "s": set_name, "p": purpose}).scalar_one())  # fmt: skip


def decide(engine: Engine, application_id: int, approve: bool, by: str, days: int | None = None) -> None:
    with engine.begin() as conn:
        done = conn.execute(text(f"""UPDATE {S}.api_application SET status = :st, decided_by = :by,
                                         decided_at = now(), expires_at = now() + make_interval(days => :d)
                                     WHERE id = :i AND status = 'pending'"""),
                            {"st": "approved" if approve else "refused", "by": by, "i": application_id,
                             "d": days or 3650})  # fmt: skip
        if done.rowcount != 1:
            raise CallerError(f"application {application_id} does not exist or is not pending")


class KeyStore:
    """Checks keys against the ledger, with a short cache (``ttl`` seconds, 0: none) so
    every call does not cost a query; a revocation takes effect within ``ttl``."""

    def __init__(self, engine: Engine, ttl: float) -> None:
        self.engine, self.ttl = engine, ttl
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}  # key id -> (when fetched, row)

    def cached(self, key_id: str) -> tuple[bool, dict[str, Any] | None]:
        """(whether the key's row is in the cache and fresh, that row)."""
        hit = self._cache.get(key_id)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def fetch(self, key_id: str) -> dict[str, Any] | None:
        """The key's row from the cache if fresh, else from the ledger."""
        fresh, row = self.cached(key_id)
        if fresh:
            return row
        with self.engine.connect() as conn:
            found = conn.execute(text(f"""
                SELECT k.key_id, k.secret_sha256, k.master_version, k.expires_at, k.revoked_at, c.caller_id, c.name,
                       c.kind, c.roles, c.allowed_sets, c.disabled_at,
                       coalesce((SELECT array_agg(a.set_name) FROM {S}.api_application a
                                 WHERE a.caller_id = c.caller_id AND a.status = 'approved'
                                   AND (a.expires_at IS NULL OR a.expires_at > now())), '{{}}') AS approved
                FROM {S}.api_key k JOIN {S}.api_caller c USING (caller_id) WHERE k.key_id = :k"""),
                {"k": key_id}).mappings().first()  # fmt: skip
        row = dict(found) if found else None
        if self.ttl > 0:
            self._cache[key_id] = (time.monotonic(), row)
        return row

    def check(self, presented: str, now: datetime,
              row: dict[str, Any] | None) -> tuple[Caller, frozenset[str]] | str:  # fmt: skip
        """(the caller, the sets it has approved applications for), or why the key is refused;
        ``row``: the key's row (:meth:`fetch`, off the event loop)."""
        key_id, _, secret = presented.partition(".")
        well_formed = bool(key_id and secret and len(presented) < 200)
        if not well_formed or row is None or not hmac.compare_digest(row["secret_sha256"], secret_hash(secret)):
            return "the API key is not valid"
        return self._caller(row, now)

    def check_signature(self, key_id: str, timestamp: str, signature: str, message: bytes, now: datetime,
                        window: int, row: dict[str, Any] | None) -> tuple[Caller, frozenset[str]] | str:  # fmt: skip
        """appKey + timestamp + signature: HMAC-SHA256(secret, message) in hex, the
        timestamp (Unix seconds) within ``window`` seconds of the server's clock; ``row``: the
        key's row (:meth:`fetch`)."""
        if not 0 < len(key_id) < 64 or row is None:
            return "the appKey is not valid"
        try:
            moment = int(timestamp)
        except ValueError:
            return "X-Timestamp is not Unix seconds"
        if abs(now.timestamp() - moment) > window:
            return f"X-Timestamp is more than {window} s from the server's time (replay window)"
        _, secret = _secret(key_id, row["master_version"])
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return "the signature does not match"
        return self._caller(row, now)

    def _caller(self, row: dict[str, Any], now: datetime) -> tuple[Caller, frozenset[str]] | str:
        if row["revoked_at"] is not None:
            return "the API key was revoked"
        if row["expires_at"] <= now:
            return "the API key has expired"
        if row["disabled_at"] is not None:
            return "the caller is disabled"
        caller = Caller(row["caller_id"], row["name"], row["kind"], frozenset(row["roles"] or ()),
                        frozenset(row["allowed_sets"]) if row["allowed_sets"] is not None else None,
                        row["key_id"], row["expires_at"])  # fmt: skip
        return caller, frozenset(row["approved"] or ())


def signed_message(method: str, path: str, query: str, timestamp: str) -> bytes:
    """What a signature covers: method, path, the query string as sent, the timestamp."""
    return f"{method}\n{path}\n{query}\n{timestamp}".encode()
