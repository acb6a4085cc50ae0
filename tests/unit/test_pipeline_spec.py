"""Pipeline specs: the bundled ones load, and a bad one names its file and field."""

from pathlib import Path

import pytest
import yaml

from govops.pipelines.spec import SpecError, load_spec, spec_files

GOOD = {
    "pipeline": "some_source",
    "description": "d",
    "service_item": "04",
    "department": "区公安分局",
    "work_order": "WO-1",
    "source": {"kind": "jdbc", "table": "a.b"},
    "target": {"dataset": "frontdb/a/b"},
}


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_bundled_specs_load() -> None:
    specs = [load_spec(p) for p in spec_files()]
    assert {s.pipeline for s in specs} >= {"frontdb_legal_persons", "landing_persons_export"}


def test_a_good_spec(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "some_source", GOOD))
    assert spec.mode == "full" and spec.source.num_partitions == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {"kind": "jdbc"}}, "source.jdbc: Value error, give exactly one of table or query"),
        ({"source": {"kind": "jdbc", "table": "a.b", "query": "select 1"}}, "give exactly one of table or query"),
        ({"source": {"kind": "ftp", "path": "x"}}, "source: Input tag 'ftp' found using 'kind' does not match"),
        ({"source": {"kind": "csv", "path": "x.csv"}}, "csv sources need columns"),
        ({"mode": "incremental"}, "mode incremental needs watermark.column"),
        ({"service_item": "07"}, "service_item: Value error, 07 (归集端质量检查) is not an extraction item"),
        ({"target": {"dataset": "Bad Name"}}, "target.dataset: String should match pattern"),
        ({"cleansing": {"trimm": ["a"]}}, "cleansing.trimm: Extra inputs are not permitted"),
        ({"pipeline": "other_name"}, "pipeline: 'other_name' must match the file name 'some_source'"),
        ({"service_item": "01"}, "collection (service_item 01) registers a catalog entry"),
        ({"refresh_work_order": "WO-2"}, "refresh_work_order is only used by collection"),
        ({"service_item": "01", "source": {"kind": "csv", "path": "x.csv", "columns": {"a": "string"}},
          "catalog": {"name": "n", "source_system": "s", "update_frequency": "每日", "share_type": "有条件共享",
                      "open_type": "不予开放", "classification": "c", "columns": {"b": "说明"}}},
         "catalog.columns describes columns the source does not have: b"),
        ({"source": {"kind": "xml", "path": "x.xml", "columns": {"a": "string"}}}, "xml sources need row_tag"),
        ({"mode": "stream"}, "stream sources, mode stream and service_item 02 go together"),
        ({"service_item": "03"}, "spatial sources and service_item 03 go together"),
    ],
)
def test_bad_specs_name_the_file_and_field(tmp_path: Path, change: dict, message: str) -> None:
    path = write(tmp_path, "some_source", {**GOOD, **change})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"SPEC_INVALID: {path}: ")  # a refusal: coded, never retried
    assert message in str(err.value)


def test_broken_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("pipeline: [unclosed", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_csv_escape_is_rfc4180_by_default_and_validated() -> None:
    from govops.pipelines.readers import csv_rows
    from govops.pipelines.spec import FileSource

    columns = {"a": "string"}
    assert FileSource(kind="csv", path="x.csv", columns=columns).escape == '"'
    assert FileSource(kind="csv", path="x.csv", columns=columns, escape="\\").escape == "\\"
    with pytest.raises(ValueError, match="escape"):
        FileSource(kind="csv", path="x.csv", columns=columns, escape="'")
    with pytest.raises(ValueError, match="escape is only used with kind csv"):
        FileSource(kind="jsonl", path="x.jsonl", columns=columns, escape="\\")
    assert csv_rows('1,"王""小""二"', ",") == [["1", '王"小"二']]
    assert csv_rows('1,"王\\"小\\"二"', ",", "\\") == [["1", '王"小"二']]
