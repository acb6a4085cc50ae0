"""Data keys wrapped by the master key (real PostgreSQL, the master key from Airflow's local-
filesystem secrets backend): created once, rotated with old versions still decrypting,
crypto-shredded for good, master rotation with re-wrapping, and no key material in the
database's clear columns or the audit log."""

from __future__ import annotations

import base64
import json
import os

import pytest
from sqlalchemy import Engine, text

from govops.security import audit, keys
from tests.conftest import MASTER_KEYS_FILE, write_master_keys

pytestmark = pytest.mark.integration



def test_data_key_lifecycle(fresh_ledger: Engine, master: bytes) -> None:
    with fresh_ledger.begin() as conn:
        v1, k1 = keys.data_key(conn, "persons", by="alice")
        assert (v1, len(k1)) == (1, 32)
        assert keys.data_key(conn, "persons") == (1, k1)  # created once
        wrapped = conn.execute(text("SELECT wrapped_key FROM govops.security_data_key")).scalar_one()
        assert k1 not in bytes(wrapped)  # only the wrapped form is stored

        assert keys.rotate_data_key(conn, "persons", by="alice") == 2
        v2, k2 = keys.data_key(conn, "persons")
        assert v2 == 2 and k2 != k1
        assert keys.key_versions(conn, "persons") == {1: k1, 2: k2}  # the retired version still decrypts
        assert keys.key_state(conn, "persons") == [(1, "retired"), (2, "active")]

        assert keys.destroy_key(conn, "persons", by="bob") == [1, 2]
        assert keys.key_versions(conn, "persons") == {}
        assert keys.key_state(conn, "persons") == [(1, "destroyed"), (2, "destroyed")]
        assert conn.execute(text("SELECT count(*) FROM govops.security_data_key WHERE wrapped_key IS NOT NULL"
                                 )).scalar_one() == 0  # fmt: skip
        assert keys.destroy_key(conn, "persons", by="bob") == []
        assert keys.data_key(conn, "persons")[0] == 3  # new data gets a new key; 1 and 2 stay gone

        entries = conn.execute(text("SELECT actor, action, details FROM govops.security_audit_log ORDER BY seq")).all()
        assert [(e.actor, e.action) for e in entries] == [
            ("alice", "key.create"), ("alice", "key.rotate"), ("bob", "key.destroy"), ("govops", "key.create")]
        assert entries[2].details == {"key": "persons", "versions": [1, 2]}
        logged = json.dumps([e.details for e in entries])
        for secret in (k1, k2):
            assert base64.b64encode(secret).decode() not in logged and secret.hex() not in logged
        assert audit.verify(conn).ok


def test_master_rotation_rewraps(fresh_ledger: Engine, master: bytes) -> None:
    with fresh_ledger.begin() as conn:
        _, k = keys.data_key(conn, "events")
    new_master = os.urandom(32)
    write_master_keys((2, new_master), (1, master))  # rotated: the old one kept as govops_master_key_v1
    with fresh_ledger.begin() as conn:
        assert keys.data_key(conn, "events") == (1, k)  # still opens, through the old master
        assert keys.rewrap_all(conn, by="ops") == 1
        assert conn.execute(text("SELECT master_key_version FROM govops.security_data_key")).scalar_one() == 2
    write_master_keys((2, new_master))  # the old master retired
    with fresh_ledger.begin() as conn:
        assert keys.data_key(conn, "events") == (1, k)


def test_master_problems_are_named(fresh_ledger: Engine, master: bytes) -> None:
    with fresh_ledger.begin() as conn:
        keys.data_key(conn, "events")
    write_master_keys((2, os.urandom(32)))  # rotated without keeping version 1
    with fresh_ledger.begin() as conn, pytest.raises(keys.KeyManagementError, match="govops_master_key_v1"):
        keys.data_key(conn, "events")
    write_master_keys((1, os.urandom(32)))  # a different key under the same version
    with fresh_ledger.begin() as conn, pytest.raises(keys.KeyManagementError, match="does not open"):
        keys.data_key(conn, "events")
    MASTER_KEYS_FILE.write_text(json.dumps({"govops_master_key": {"conn_type": "generic", "password": "c2hvcnQ="}}))
    with pytest.raises(keys.KeyManagementError, match="32-byte key in base64"):
        keys.master_key()


def test_subkeys_differ_by_purpose() -> None:
    key = os.urandom(32)
    assert keys.subkey(key, "a") != keys.subkey(key, "b")
    assert keys.subkey(key, "a") == keys.subkey(key, "a")
    assert len(keys.subkey(key, "sm4", 16)) == 16
