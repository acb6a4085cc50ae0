"""The master key and what it signs: HMAC-SHA256 under sub-keys of the master key.

**Master key.** The Airflow connection ``govops_master_key`` (from any secrets backend
Airflow is configured with, or its metastore): ``password`` is the key, 32 bytes in base64,
and ``extra`` ``{"version": N}`` its version. After a master rotation the previous key stays
reachable as the connection ``govops_master_key_v<N>``. Nothing here reads keys from code,
specs or the environment.

**Signatures.** The audit log's hash chain (``govops.security.audit``) and the destruction
certificates (``govops.security.destruction``) are HMAC-SHA256 under a sub-key of the master
key, one per purpose (HKDF, :func:`subkey`). The key is outside the database, so whoever can
write the tables cannot recompute a valid chain or certificate, and a certificate file is
checked with the master key alone (no database). Each signature names the master key
version that made it: only the current version signs, and a previous version verifies what
it signed for as long as its connection ``govops_master_key_v<N>`` is kept.

This module imports nothing of the key store or the audit log (both import it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from govops.errors import CodedError

MASTER_CONN_ID = "govops_master_key"
KEY_BYTES = 32
AUDIT_CHAIN = "govops-audit-chain/hmac-sha256"
DESTRUCTION_CERTIFICATE = "govops-destruction-certificate/hmac-sha256"


class KeyManagementError(CodedError):
    code = "KEY_ERROR"


@dataclass(frozen=True)
class MasterKey:
    version: int
    key: bytes


def _decode_key(raw: str | None, conn_id: str) -> bytes:
    text_ = (raw or "").strip().replace("-", "+").replace("_", "/")  # standard or URL-safe base64
    try:
        key = base64.b64decode(text_ + "=" * (-len(text_) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyManagementError(
            f"the Airflow connection {conn_id!r}: its password must be a {KEY_BYTES}-byte key in base64"
        )
    return key


def _connection(conn_id: str):  # -> airflow Connection | None
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # an undefined connection raises several types, by backend
        return None


def master_key(version: int | None = None) -> MasterKey:
    """The current master key, or the given version of it (current or a kept previous one)."""
    conn = _connection(MASTER_CONN_ID)
    if conn is None:
        raise KeyManagementError(
            f"no master key: define the Airflow connection {MASTER_CONN_ID!r} (password: {KEY_BYTES} random bytes "
            "in base64, extra {\"version\": 1}) in a secrets backend or the metastore; ./dev creates one for "
            "development in .local/secrets"
        )
    current = int((conn.extra_dejson or {}).get("version", 1))
    if version is None or version == current:
        return MasterKey(current, _decode_key(conn.password, MASTER_CONN_ID))
    conn_id = f"{MASTER_CONN_ID}_v{version}"
    previous = _connection(conn_id)
    if previous is None:
        raise KeyManagementError(
            f"master key version {version} is needed but the Airflow connection {conn_id!r} is not defined"
        )
    return MasterKey(version, _decode_key(previous.password, conn_id))


def subkey(key: bytes, purpose: str, length: int = KEY_BYTES) -> bytes:
    """A key for one algorithm and use, derived from a data or master key with HKDF-SHA256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(key)


def signing_key(purpose: str, version: int | None = None) -> tuple[int, bytes]:
    """(master key version, the HMAC key of ``purpose`` under it); the current version by default."""
    master = master_key(version)
    return master.version, subkey(master.key, purpose)


def sign(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two hex signatures."""
    return hmac.compare_digest(a.encode(), b.encode())
