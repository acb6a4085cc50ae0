"""spark_jobs/extract.py on real files of every text kind, with the malformed inputs that
front-end exports really contain: GBK text, broken quoting, short rows, bad dates and
numbers, oversized fields, a new or missing column. Every row is either written or
rejected with its reason, and the counts reconcile."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest

from govops.pipelines.spec import PipelineSpec
from govops.spark import manifest as manifests

from . import spark_submit

pytestmark = pytest.mark.integration

CATALOG = {"name": "人员", "source_system": "s", "update_frequency": "每日", "share_type": "有条件共享",
           "open_type": "不予开放", "classification": "基础库/人口"}  # fmt: skip
COLUMNS = {"id": "bigint", "name": "string", "birth_date": "string", "amount": "decimal(12,2)"}


def run_extract(tmp_path: Path, source: dict[str, Any], cleansing: dict[str, Any] | None = None,
                run_id: str = "r1") -> tuple[int, dict[str, Any], str]:  # fmt: skip
    spec = PipelineSpec.model_validate({
        "pipeline": "file_case", "description": "d", "service_item": "01", "department": "区公安分局",
        "work_order": "WO-T", "source": source, "target": {"dataset": "landing/case"},
        "cleansing": cleansing or {}, "catalog": CATALOG,
    })  # fmt: skip
    lake = tmp_path / "lake"
    uri = manifests.manifest_uri(lake.as_uri(), "files", run_id, "extract", -1)
    result = spark_submit.run("extract", {
        "dag-id": "files", "run-id": run_id, "task-id": "extract", "work-order-id": "WO-T",
        "lake-root": lake.as_uri(), "manifest": uri, "spec": spec.model_dump_json(),
        "landing-root": (tmp_path / "landing").as_uri(),
    })  # fmt: skip
    return result.returncode, manifests.read(uri), result.stderr


def written(tmp_path: Path) -> list[dict[str, Any]]:
    table = pq.ParquetDataset(tmp_path / "lake/raw/landing/case").read()
    return sorted(table.drop_columns(["_govops_run_id"]).to_pylist(), key=lambda r: r["id"])


def rejects(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """This run's rejects."""
    return pq.ParquetDataset(manifest["outputs"][1]["uri"].removeprefix("file://")).read().to_pylist()


def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / "drop"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_gbk_csv_with_every_kind_of_bad_row(tmp_path: Path) -> None:
    lines = [
        "id,name,birth_date,amount",
        "1,张三,1990-01-02,12.50",
        "2,李四,1991-13-40,3.00",  # no such date
        "3,王五,1992-03-04,abc",  # not a number
        f"4,{'赵' * 300},1993-04-05,1.00",  # oversized name
        '5,"钱七,1994-05-06,2.00',  # broken quoting: the quote swallows the rest of the line
        "6,孙八",  # a short row
        "7,  周九  ,1995-06-07,7.25",
        "7,周九,1995-06-07,7.25",  # the same id again
    ]
    (landing(tmp_path) / "persons.csv").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    code, manifest, err = run_extract(
        tmp_path,
        {"kind": "csv", "path": "drop/*.csv", "encoding": "gbk", "columns": COLUMNS},
        {"trim": ["name"], "required": ["name"], "max_lengths": {"name": 100},
         "date_formats": {"birth_date": "yyyy-MM-dd"}, "dedupe_keys": ["id"]},
    )  # fmt: skip
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 8, "written": 2, "rejected": 6}
    assert [(r["id"], r["name"], str(r["amount"])) for r in written(tmp_path)] == [(1, "张三", "12.50"),
                                                                                  (7, "周九", "7.25")]  # fmt: skip
    reasons = Counter(r["reason"] for r in rejects(manifest))
    assert reasons == {
        "birth_date is not a date as yyyy-MM-dd: 1991-13-40": 1,
        "amount is not a decimal(12,2): abc": 1,
        "name longer than 100 characters: 300": 1,
        "malformed record": 2,
        "duplicate of an earlier row with the same id": 1,
    }
    assert manifest["outputs"][1]["reasons"] == dict(reasons)
    assert all(r["source_location"].endswith("drop/persons.csv") for r in rejects(manifest))
    bad_amount = next(r for r in rejects(manifest) if r["reason"].startswith("amount"))
    assert json.loads(bad_amount["record"])["amount"] == "abc"  # the value as it arrived


def test_schema_drift_fails_with_file_and_column_or_quarantines(tmp_path: Path) -> None:
    folder = landing(tmp_path)
    (folder / "a.csv").write_text("id,name,birth_date,amount\n1,甲,2000-01-01,1\n2,乙,2000-01-02,2\n", "utf-8")
    (folder / "b.csv").write_text("id,name,birth_date,amount,phone\n3,丙,2000-01-03,3,139\n", "utf-8")
    (folder / "c.csv").write_text("id,name,amount\n4,丁,4\n5,戊,5\n", "utf-8")
    source = {"kind": "csv", "path": "drop/*.csv", "columns": COLUMNS}
    code, manifest, _ = run_extract(tmp_path, source)
    assert code != 0 and manifest["status"] == "failed"
    assert "drop/b.csv: schema drift: new column 'phone'" in manifest["error"]
    assert "drop/c.csv: schema drift: missing column 'birth_date'" in manifest["error"]
    assert not (tmp_path / "lake/raw/landing/case").exists()

    code, manifest, err = run_extract(tmp_path, {**source, "on_schema_drift": "quarantine"}, run_id="r2")
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 5, "written": 2, "rejected": 3}
    assert Counter(r["reason"] for r in rejects(manifest)) == {
        "schema drift: new column 'phone'": 1,
        "schema drift: missing column 'birth_date'": 2,
    }
    assert {json.loads(r["record"])["_corrupt_record"] for r in rejects(manifest)} == {"3,丙,2000-01-03,3,139",
                                                                                      "4,丁,4", "5,戊,5"}  # fmt: skip


def test_xml_records_in_gbk(tmp_path: Path) -> None:
    body = """<?xml version="1.0" encoding="GBK"?>
<export>
  <person><id>1</id><name>张三</name><birth_date>1990-01-02</birth_date><amount>1.5</amount></person>
  <person><id>2</id><name>李四</name><birth_date>1990-01-03</birth_date><amount>oops</amount></person>
  <person><id>3</id><birth_date>1990-01-04</birth_date><amount>2</amount></person>
  <person><id>4</id><name>王五</name><birth_date>1990-01-05</birth_date><amount>3</amount></person>
</export>
"""
    (landing(tmp_path) / "persons.xml").write_bytes(body.encode("gbk"))
    code, manifest, err = run_extract(
        tmp_path, {"kind": "xml", "path": "drop/persons.xml", "row_tag": "person", "encoding": "gbk",
                   "columns": COLUMNS}, {"required": ["name"]},
    )  # fmt: skip
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 4, "written": 2, "rejected": 2}
    assert [r["name"] for r in written(tmp_path)] == ["张三", "王五"]
    assert Counter(r["reason"] for r in rejects(manifest)) == {"amount is not a decimal(12,2): oops": 1,
                                                               "missing name": 1}  # fmt: skip


def test_xlsx_workbooks(tmp_path: Path) -> None:
    import datetime as dt

    folder = landing(tmp_path)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "人员"
    sheet.append(["id", "name", "birth_date", "amount"])
    sheet.append([1, "张三", dt.date(1990, 1, 2), 12.5])
    sheet.append([2, "李四", "1990-02-30", 3])  # a date typed as text that does not exist
    sheet.append([3, "王五", dt.date(1990, 3, 4), "n/a"])
    sheet.append([])
    sheet.append([4, "赵六", dt.date(1990, 4, 5), 4, "多余"])  # a value beyond the columns
    sheet.append([5, "钱七", dt.datetime(1990, 5, 6), 5])
    book.save(folder / "a.xlsx")
    drifted = openpyxl.Workbook()
    drifted.active.append(["id", "name", "amount"])
    drifted.active.append([9, "孙八", 9])
    drifted.save(folder / "b.xlsx")
    code, manifest, err = run_extract(
        tmp_path, {"kind": "xlsx", "path": "drop/*.xlsx", "columns": COLUMNS, "on_schema_drift": "quarantine"},
        {"date_formats": {"birth_date": "yyyy-MM-dd"}},
    )  # fmt: skip
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 6, "written": 2, "rejected": 4}
    assert [(r["id"], r["birth_date"].isoformat(), str(r["amount"])) for r in written(tmp_path)] == [
        (1, "1990-01-02", "12.50"), (5, "1990-05-06", "5.00")]  # fmt: skip
    found = {r["reason"]: r["source_location"].rsplit("/", 1)[1] for r in rejects(manifest)}
    assert found == {
        "birth_date is not a date as yyyy-MM-dd: 1990-02-30": "a.xlsx#人员!3",
        "amount is not a decimal(12,2): n/a": "a.xlsx#人员!4",
        "row has 5 values, 4 columns declared": "a.xlsx#人员!6",
        "schema drift: missing column 'birth_date'": "b.xlsx#Sheet!2",
    }


def test_json_lines_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa

    lines = [
        '{"id": 1, "name": "张三", "birth_date": "1990-01-02", "amount": 1.5, "extra": "ignored by name"}',
        '{"id": 2, "name": "李四", "birth_date": "1990-01-03", "amount": "many"}',
        '{"id": 3, "name": "王五", "birth_da',  # a write cut short
        '{"id": 4, "birth_date": "1990-01-05", "amount": 4}',  # a missing field
    ]
    (landing(tmp_path) / "events.jsonl").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    code, manifest, err = run_extract(
        tmp_path, {"kind": "jsonl", "path": "drop/*.jsonl", "encoding": "gbk", "columns": COLUMNS},
        {"required": ["name"]},
    )  # fmt: skip
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 4, "written": 1, "rejected": 3}
    assert [(r["id"], r["name"]) for r in written(tmp_path)] == [(1, "张三")]
    assert Counter(r["reason"] for r in rejects(manifest)) == {
        "amount is not a decimal(12,2): many": 1, "malformed record": 1, "missing name": 1}  # fmt: skip

    folder = tmp_path / "landing" / "parquet"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2, 2, 3], "name": ["a", "b", "b", None]}), folder / "part-0.parquet")
    code, manifest, err = run_extract(
        tmp_path, {"kind": "parquet", "path": "parquet"}, {"required": ["name"], "dedupe_keys": ["id"]}, run_id="r2"
    )
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 4, "written": 2, "rejected": 2}
    assert Counter(r["reason"] for r in rejects(manifest)) == {
        "missing name": 1, "duplicate of an earlier row with the same id": 1}  # fmt: skip


def test_csv_quoting_dialects(tmp_path: Path) -> None:
    """RFC 4180 (a quote doubled inside a quoted field) by default; a backslash-escaped
    export with escape: "\\". The header check parses the same way as the read."""
    folder = landing(tmp_path)
    (folder / "rfc.csv").write_text(
        'id,"name",birth_date,amount\n1,"王""小""二",1990-01-02,1.00\n2,"张, 三",1990-01-03,2.00\n', "utf-8")
    code, manifest, err = run_extract(tmp_path, {"kind": "csv", "path": "drop/rfc.csv", "columns": COLUMNS})
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 2, "written": 2, "rejected": 0}
    assert [r["name"] for r in written(tmp_path)] == ['王"小"二', "张, 三"]

    (folder / "rfc.csv").unlink()
    (folder / "backslash.csv").write_text(
        'id,"name",birth_date,amount\n1,"王\\"小\\"二",1990-01-02,1.00\n2,"张, 三",1990-01-03,2.00\n', "utf-8")
    code, manifest, err = run_extract(
        tmp_path, {"kind": "csv", "path": "drop/backslash.csv", "columns": COLUMNS, "escape": "\\"}, run_id="r2")
    assert code == 0, manifest.get("error") or err[-3000:]
    assert manifest["counts"] == {"read": 2, "written": 2, "rejected": 0}
    assert [r["name"] for r in written(tmp_path)] == ['王"小"二', "张, 三"]
