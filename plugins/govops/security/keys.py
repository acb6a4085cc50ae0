"""Data keys for masking and encryption (item 20), wrapped by a master key (envelope encryption).

**Master key** (``govops.security.signing``). The Airflow connection ``govops_master_key``
(from any secrets backend Airflow is configured with, or its metastore): ``password`` is the
key, 32 bytes in base64, and ``extra`` ``{"version": N}`` its version. After a master
rotation the previous key stays reachable as the connection ``govops_master_key_v<N>`` until
:func:`rewrap_all` has moved every data key to the new one, and for as long as the audit
entries and destruction certificates it signed are to be verified. Nothing here reads keys
from code, specs or the environment.

**Data keys.** One per name (a masking policy's key, by default the policy name), in
``govops.security_data_key`` wrapped with AES-256-GCM under the master key (the name and
version are the associated data, so a wrapped key cannot be moved to another name).
:func:`data_key` creates version 1 on first use; :func:`rotate_data_key` makes a new active
version and retires the old one (it still decrypts what it encrypted); :func:`destroy_key`
deletes every wrapped version: what was encrypted under it can never be decrypted again
(crypto-shredding). Rules derive their own sub-keys with HKDF (:func:`subkey`), so one data
key serves FF1, AEAD and HMAC without reusing key material across algorithms.

Every change is written to the audit log; key material never is.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping

from sqlalchemy import Connection, text

from govops.security import audit
from govops.security.signing import (  # noqa: F401  (the key store's API: master key, sub-keys, its error)
    KEY_BYTES,
    MASTER_CONN_ID,
    KeyManagementError,
    MasterKey,
    master_key,
    subkey,
)

# The environment variable that hands a job its data key (encode_for_job). "SECRET" in the
# name makes Spark redact it wherever it shows its environment (spark.redaction.regex), as on
# YARN, where spark-submit passes it as spark.yarn.appMasterEnv.*.
JOB_ENV = "GOVOPS_DATA_KEY_SECRET"


def _aad(name: str, version: int) -> bytes:
    return f"govops-data-key:{name}:{version}".encode()


def _wrap(master: MasterKey, name: str, version: int, key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return nonce + AESGCM(master.key).encrypt(nonce, key, _aad(name, version))


def _unwrap(master: MasterKey, name: str, version: int, wrapped: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(master.key).decrypt(wrapped[:12], wrapped[12:], _aad(name, version))
    except InvalidTag:
        raise KeyManagementError(
            f"data key {name!r} version {version} does not open with master key version {master.version}: "
            "wrong master key, or the stored key was altered"
        ) from None


def _lock(conn: Connection, name: str) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"govops.security_data_key:{name}"})


def data_key(conn: Connection, name: str, *, by: str = "govops") -> tuple[int, bytes]:
    """The active version of a data key and its bytes; version 1 is created on first use."""
    _lock(conn, name)
    row = conn.execute(
        text("SELECT version, wrapped_key, master_key_version FROM govops.security_data_key "
             "WHERE name = :n AND state = 'active'"), {"n": name},
    ).first()  # fmt: skip
    if row is not None:
        return row.version, _unwrap(master_key(row.master_key_version), name, row.version, bytes(row.wrapped_key))
    return _new_version(conn, name, by=by, action="key.create")


def _new_version(conn: Connection, name: str, *, by: str, action: str) -> tuple[int, bytes]:
    master = master_key()
    last = conn.execute(text("SELECT max(version) FROM govops.security_data_key WHERE name = :n"), {"n": name}).scalar()
    version, key = (last or 0) + 1, os.urandom(KEY_BYTES)
    conn.execute(text("UPDATE govops.security_data_key SET state = 'retired' WHERE name = :n AND state = 'active'"),
                 {"n": name})  # fmt: skip
    conn.execute(
        text("INSERT INTO govops.security_data_key (name, version, wrapped_key, master_key_version, state) "
             "VALUES (:n, :v, :w, :m, 'active')"),
        {"n": name, "v": version, "w": _wrap(master, name, version, key), "m": master.version},
    )  # fmt: skip
    audit.append(conn, actor=by, action=action, dataset=None,
                 details={"key": name, "version": version, "master_key_version": master.version})  # fmt: skip
    return version, key


def rotate_data_key(conn: Connection, name: str, *, by: str) -> int:
    """A new active version; the previous one is retired but still decrypts."""
    _lock(conn, name)
    return _new_version(conn, name, by=by, action="key.rotate")[0]


def key_versions(conn: Connection, name: str) -> dict[int, bytes]:
    """Every version that can still decrypt (active and retired)."""
    rows = conn.execute(
        text("SELECT version, wrapped_key, master_key_version FROM govops.security_data_key "
             "WHERE name = :n AND state <> 'destroyed' ORDER BY version"), {"n": name},
    ).all()  # fmt: skip
    return {r.version: _unwrap(master_key(r.master_key_version), name, r.version, bytes(r.wrapped_key)) for r in rows}


def key_state(conn: Connection, name: str) -> list[tuple[int, str]]:
    rows = conn.execute(
        text("SELECT version, state FROM govops.security_data_key WHERE name = :n ORDER BY version"), {"n": name}
    ).all()
    return [(r.version, r.state) for r in rows]


def destroy_key(conn: Connection, name: str, *, by: str) -> list[int]:
    """Crypto-shredding: drop every wrapped version of the key; returns the versions destroyed."""
    _lock(conn, name)
    versions = conn.execute(
        text("""UPDATE govops.security_data_key SET wrapped_key = NULL, state = 'destroyed', destroyed_at = now(),
                       destroyed_by = :by WHERE name = :n AND state <> 'destroyed' RETURNING version"""),
        {"n": name, "by": by},
    ).scalars().all()  # fmt: skip
    if versions:
        audit.append(conn, actor=by, action="key.destroy", dataset=None,
                     details={"key": name, "versions": sorted(versions)})  # fmt: skip
    return sorted(versions)


def rewrap_all(conn: Connection, *, by: str) -> int:
    """After a master-key rotation: wrap every live data key under the current master key."""
    master = master_key()
    rows = conn.execute(
        text("SELECT name, version, wrapped_key, master_key_version FROM govops.security_data_key "
             "WHERE state <> 'destroyed' AND master_key_version <> :m FOR UPDATE"), {"m": master.version},
    ).all()  # fmt: skip
    for r in rows:
        key = _unwrap(master_key(r.master_key_version), r.name, r.version, bytes(r.wrapped_key))
        conn.execute(
            text("UPDATE govops.security_data_key SET wrapped_key = :w, master_key_version = :m "
                 "WHERE name = :n AND version = :v"),
            {"w": _wrap(master, r.name, r.version, key), "m": master.version, "n": r.name, "v": r.version},
        )  # fmt: skip
    if rows:
        audit.append(conn, actor=by, action="key.rewrap", dataset=None,
                     details={"keys": len(rows), "master_key_version": master.version})  # fmt: skip
    return len(rows)


def encode_for_job(name: str, versions: Mapping[int, bytes], active: int) -> str:
    """The keys a Spark job needs, for its environment (never its command line): JSON text."""
    return json.dumps({"name": name, "active": active,
                       "versions": {str(v): base64.b64encode(k).decode() for v, k in versions.items()}})  # fmt: skip


def decode_for_job(payload: str) -> tuple[str, int, dict[int, bytes]]:
    data = json.loads(payload)
    return data["name"], int(data["active"]), {int(v): base64.b64decode(k) for v, k in data["versions"].items()}
