"""The masking job (spark_jobs/mask_dataset.py) run as the operator runs it, on crafted rows
with a policy using every rule: exact outputs of the irreversible rules, reversibility of
FF1 and AEAD through the execution log and the key store, irreversibility of the others,
the records controlled per column, values FF1 cannot take nullified and counted, the key
never in the job's output, manifest or logs, and crypto-shredding ending reversibility."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from govops.identifiers import resident_id_check_char
from govops.security import audit, keys, masking
from govops.security.keys import encode_for_job
from govops.spark.manifest import manifest_uri
from tests.conftest import own_ledger
from tests.integration import spark_submit

pytestmark = pytest.mark.integration

IDS = ["310118199001011234", "31011819850615002X", "310118199001011234", "3101181990A1011234", None, "31011"]
ROWS = pd.DataFrame({
    "id": [1, 2, 3, 4, 5, 6],
    "name": ["张三", "欧阳娜娜", "李", None, "王五", "赵六"],
    "id_number": IDS,
    "phone": ["13812345678", "13900001111", "138", None, "15011112222", "13812345678"],
    "birth_date": [date(1990, 1, 1), date(1985, 6, 15), date(1990, 1, 1), None, date(2001, 12, 31), date(1970, 3, 3)],
    "address": ["上海市青浦区华新镇华腾路1号", "上海青浦区赵巷镇1号", "江苏省苏州市吴江区黎里镇2号", "地址不详",
                None, "浙江省嘉兴市嘉善县西塘镇3号"],
    "age": [34, 39, 34, None, 23, 54],
    "card": ["6222021234567890123", None, "6222021234567890123", "6222020000000000000", "1", "2"],
    "note": ["甲", "乙", None, "丁", "戊", "己"],
    "secret": ["s1", "s2", "s3", None, "s5", "s6"],
    "csrq": ["19900101", "1985/6/15", "1985年6月15日", None, "不详", "1970-03-03 08:00:00"],  # birth dates as text
})  # fmt: skip
POLICY = """
policies:
  test:
    source: raw/test/persons
    output: sharing/test/persons
    key: test_persons
    unlabeled: keep
    columns:
      id: {rule: keep}
      name: {rule: partial, keep_first: 1}
      id_number: {rule: ff1, check_char: gb11643}
      phone: {rule: partial, keep_first: 3, keep_last: 4}
      birth_date: {rule: generalize, to: year}
      address: {rule: generalize, to: district}
      age: {rule: generalize, to: bucket, size: 10}
      card: {rule: hmac, algorithm: hmac-sm3, length: 32}
      note: {rule: encrypt, algorithm: sm4-gcm}
      secret: {rule: nullify}
      csrq: {rule: generalize, to: year}
"""


def _fix_ids() -> list[str | None]:
    """Valid resident IDs (the check character computed) where the crafted value is well formed."""
    return [v if v is None or len(v) != 18 or not v[:17].isdigit() else v[:17] + resident_id_check_char(v[:17])
            for v in IDS]  # fmt: skip


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One run of the job for the module's tests (spark-submit takes about 20 s)."""
    tmp_path = tmp_path_factory.mktemp("masking")
    lake = tmp_path / "lake"
    ledger = own_ledger()
    fresh_ledger = next(ledger)
    source = ROWS.assign(id_number=_fix_ids())
    (lake / "raw/test/persons").mkdir(parents=True)
    source.to_parquet(lake / "raw/test/persons/part-0.parquet", index=False)
    policy_path = tmp_path / "masking.yaml"
    policy_path.write_text(POLICY, encoding="utf-8")
    spec = masking.load("test", policy_path)
    policy = masking.resolve(spec, masking.dataset_columns(lake.as_uri(), spec.source), {}, grading=None)
    with fresh_ledger.begin() as conn:
        active, _ = keys.data_key(conn, "test_persons")
        versions = keys.key_versions(conn, "test_persons")
    uri = manifest_uri(lake.as_uri(), "security_masking", "r1", "mask", -1)
    cmd, env = spark_submit.command("mask_dataset", {
        "dag-id": "security_masking", "run-id": "r1", "task-id": "mask", "lake-root": lake.as_uri(),
        "manifest": uri, "work-order-id": "WO-M", "policy-json": json.dumps(policy.as_json()),
    })  # fmt: skip
    env[keys.JOB_ENV] = encode_for_job("test_persons", versions, active)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, Path(uri.removeprefix("file://")).read_text()[-3000:]
    manifest = json.loads(Path(uri.removeprefix("file://")).read_text())
    out = pd.read_parquet(lake / "sharing/test/persons").sort_values("id").reset_index(drop=True)
    yield {"lake": lake, "source": source, "out": out, "manifest": manifest, "versions": versions,
           "job_output": done.stdout + done.stderr, "engine": fresh_ledger, "policy": policy}  # fmt: skip
    next(ledger, None)  # drops the database


def test_irreversible_rules_exact(masked: dict) -> None:
    out = masked["out"]
    assert out["id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert out["name"].tolist() == ["张*", "欧***", "*", None, "王*", "赵*"]  # a 1-char name is masked whole
    assert out["phone"].tolist() == ["138****5678", "139****1111", "***", None, "150****2222", "138****5678"]
    assert out["birth_date"].tolist() == ["1990", "1985", "1990", None, "2001", "1970"]
    assert out["csrq"].tolist() == ["1990", "1985", "1985", None, None, "1970"]  # no date in it: NULL, not clear
    assert out["address"].tolist() == [
        "上海市青浦区", "上海青浦区", "江苏省苏州市吴江区", None, None, "浙江省嘉兴市嘉善县"]
    assert out["age"].tolist() == ["30-39", "30-39", "30-39", None, "20-29", "50-59"]
    assert out["secret"].isna().all()
    cards = out["card"].tolist()
    assert cards[0] == cards[2] and cards[0] != cards[3] and cards[1] is None  # deterministic per value
    assert all(re.fullmatch(r"[0-9a-f]{32}", c) for c in cards if c is not None)


def test_reversible_rules_round_trip(masked: dict) -> None:
    out, source, policy = masked["out"], masked["source"], masked["policy"]
    ids = out["id_number"].tolist()
    assert ids[0] == ids[2] and ids[0] != source["id_number"][0]  # deterministic, changed
    for v in ids[:3]:  # well-formed 18-digit numbers with a correct check character
        assert len(v) == 18 and v[:17].isdigit() and v[-1] == resident_id_check_char(v[:17])
    assert ids[3] is None and ids[4] is None and ids[5] is None  # a letter inside, null, too short
    ring = masking.KeyRing("test_persons", 1, masked["versions"])
    rule = {r.column: r for r in policy.rules}
    back = masking.reveal_values(out["id_number"].to_numpy(dtype=object), rule["id_number"], ring, 1)
    assert list(back[:3]) == list(source["id_number"][:3])
    notes = out["note"].tolist()
    assert all(n is None or n.startswith("v1:") for n in notes) and notes[2] is None
    assert len(set(notes) - {None}) == 5
    assert list(masking.reveal_values(out["note"].to_numpy(dtype=object), rule["note"], ring, 1)) == \
        source["note"].tolist()  # fmt: skip
    for irreversible in ("card", "name", "secret"):
        with pytest.raises(masking.MaskingError, match="irreversible"):
            masking.reveal_values(out[irreversible].to_numpy(dtype=object), rule[irreversible], ring, 1)


def test_counts_metering_and_no_key_in_outputs(masked: dict) -> None:
    manifest = masked["manifest"]
    assert manifest["counts"] == {"read": 6, "written": 6, "rejected": 0}
    assert manifest["metering"] == [{"service_item": "20", "unit": "record", "quantity": 6, "records": 6,
                                     "data_source": "sharing/test/persons"}]  # fmt: skip
    columns = {c["column"]: c for c in manifest["outputs"][0]["columns"]}
    assert {c: (v["rule"], v["records_controlled"]) for c, v in columns.items()} == {
        "id": ("keep", 0), "name": ("partial", 5), "id_number": ("ff1", 5), "phone": ("partial", 5),
        "birth_date": ("generalize", 5), "address": ("generalize", 5), "age": ("generalize", 5),
        "card": ("hmac", 5), "note": ("encrypt", 5), "secret": ("nullify", 5), "csrq": ("generalize", 5)}  # fmt: skip
    assert columns["id_number"]["unencryptable"] == 2 and columns["id_number"]["key_version"] == 1
    assert columns["card"]["key_name"] == "test_persons" and columns["name"]["key_name"] is None
    marker = json.loads((masked["lake"] / "sharing/test/persons/_GOVOPS_COMMIT.json").read_text())
    assert marker["run"]["run_id"] == "r1" and marker["masking"]["policy_sha256"] == masked["policy"].sha256
    text_out = json.dumps(manifest) + masked["job_output"]
    for key in masked["versions"].values():
        assert base64.b64encode(key).decode() not in text_out and key.hex() not in text_out


def test_execution_log_reveal_and_crypto_shredding(masked: dict) -> None:
    engine, out = masked["engine"], masked["out"]
    summary = masking.record_run(engine, masked["manifest"], by="tester")
    again = masking.record_run(engine, masked["manifest"], by="tester")  # a re-run replaces its log
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), sum(rows_controlled) FROM govops.security_masking_run")).one() \
            == (1, 6)  # fmt: skip
        logged = dict(conn.execute(
            text("SELECT column_name, records_controlled FROM govops.security_masking_column "
                 "WHERE masking_run_id = :id"),
            {"id": again["masking_run_id"]},
        ).all())  # fmt: skip
    assert summary["rows"] == 6 and logged["id_number"] == 5 and logged["id"] == 0
    clear = masking.reveal(engine, output="sharing/test/persons", column="id_number",
                           values=out["id_number"].tolist()[:2], by="auditor", reason="工单 WO-M 核查")  # fmt: skip
    assert clear == masked["source"]["id_number"].tolist()[:2]
    with pytest.raises(masking.MaskingError, match="irreversible"):
        masking.reveal(engine, output="sharing/test/persons", column="card", values=["x"], by="a", reason="r")
    with engine.begin() as conn:
        actions = conn.execute(text("SELECT action FROM govops.security_audit_log ORDER BY seq")).scalars().all()
        assert actions == ["key.create", "masking.run", "masking.run", "masking.reveal"]
        keys.destroy_key(conn, "test_persons", by="dpo")
        assert audit.verify(conn).ok
    with pytest.raises(masking.MaskingError, match="version 1 is not available"):
        masking.reveal(engine, output="sharing/test/persons", column="id_number", values=out["id_number"].tolist()[:1],
                       by="auditor", reason="after destruction")  # fmt: skip
