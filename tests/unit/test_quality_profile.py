"""Profiling a dataset and the suite suggested from its profile, on a real local Spark
session: exact figures, a suite that suites.parse accepts (GX validating every kwarg) with
the expected library rules, which all succeed on clean data and catch the injected defects,
and the command that writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from govops import identifiers
from govops.quality import engine, suites
from govops.quality.profile import _resolve, _widen, dumps, main, profile, suggest_suite
from govops.sample_data import SampleConfig, build_frames
from govops.sample_data.generator import DefectCounts

pytestmark = pytest.mark.integration
DATASET = "raw/frontdb/public_security/persons"
CLEAN = DefectCounts(**{k: 0 for k in DefectCounts.__dataclass_fields__})



@pytest.fixture(scope="module")
def persons() -> Any:
    return build_frames(SampleConfig(seed=3, persons=300)).persons


@pytest.fixture(scope="module")
def clean_persons() -> Any:
    return build_frames(SampleConfig(seed=3, persons=300, defects=CLEAN)).persons


@pytest.fixture(scope="module")
def profiled(spark: Any, persons: Any) -> tuple[Any, dict[str, Any]]:
    df = spark.createDataFrame(persons).cache()
    return df, profile(df)


def _rule(suite: suites.Suite, kind: str, *columns: str) -> suites.Rule:
    [rule] = [r for r in suite.rules if r.type == kind and r.columns == list(columns)]
    return rule


def test_profile_figures_are_exact(profiled: tuple[Any, dict[str, Any]], persons: Any) -> None:
    _, prof = profiled
    n = len(persons)
    assert prof["rows"] == n == 305 and list(prof["columns"]) == list(persons.columns)
    cols = prof["columns"]
    for name, col in cols.items():
        assert col["rows"] == n and col["nulls"] == int(persons[name].isna().sum()), name
    assert cols["name"]["nulls"] == 5 and cols["name"]["null_share"] == 5 / n

    valid_ids = sum(identifiers.resident_id_problem(v) is None for v in persons["id_number"])
    valid_phones = sum(bool(identifiers.MOBILE.fullmatch(v)) for v in persons["phone"])
    assert valid_ids <= n - 8 and valid_phones <= n - 4  # the injected defects
    assert cols["id_number"]["detectors"]["resident_id"] == {"matched": valid_ids, "share": valid_ids / n}
    assert cols["phone"]["detectors"]["mobile"] == {"matched": valid_phones, "share": valid_phones / n}
    # some valid ID numbers happen to carry a valid USCC check character too (1 in 31)
    also_uscc = sum(identifiers.uscc_problem(v) is None for v in persons["id_number"])
    assert cols["id_number"]["detectors"]["uscc"]["matched"] == also_uscc
    assert cols["phone"]["detectors"]["landline"]["matched"] == 0
    # nulls are not counted: the share is of the non-null names
    assert cols["name"]["detectors"]["mobile"] == {"matched": 0, "share": 0.0}
    assert cols["birth_date"]["detectors"] == {"not_in_future": {"matched": n, "share": 1.0}}

    names = persons["name"].dropna().str.len()
    assert (cols["name"]["min_length"], cols["name"]["max_length"]) == (names.min(), names.max())
    assert cols["id"]["kind"] == "integer" and (cols["id"]["min"], cols["id"]["max"]) == (1, n)
    assert cols["birth_date"]["kind"] == "timestamp"
    assert cols["birth_date"]["min"] == str(persons["birth_date"].min())
    assert cols["birth_date"]["max"] == str(persons["birth_date"].max())
    assert cols["address"]["common_prefix"] == "上海市青浦区"
    assert abs(cols["id"]["distinct"] - n) <= 0.03 * n  # approximate
    counts = persons["gender"].value_counts()
    assert cols["gender"]["top_values"] == [{"value": v, "count": int(c)} for v, c in counts.items()]
    assert cols["gender"]["distinct"] == 2 and cols["name"]["top_values"] is None
    json.dumps(prof, ensure_ascii=False)  # plain figures only


def test_suggested_suite_has_the_library_rules_and_catches_the_defects(
    profiled: tuple[Any, dict[str, Any]], persons: Any
) -> None:
    df, prof = profiled
    doc = suggest_suite(prof, name="persons.generated", dataset=DATASET)
    suite = suites.parse(doc, Path("x.json"))  # GX validates every expectation's kwargs
    assert suite.side == "ingestion" and suite.dataset == DATASET and suite.key == ["id", "name", "id_number"]
    assert f"{len(persons):,} rows" in doc["meta"]["notes"] and "review" in doc["meta"]["notes"]
    for item in doc["expectations"]:
        assert item["meta"]["generated"] is True and "观测" in item["meta"]["description"]
        assert "observed" in item["meta"]["description"]

    resident = _rule(suite, "expect_column_values_to_be_valid_resident_id", "id_number")
    assert (resident.dimension, resident.severity) == ("accuracy", "fail")
    assert _rule(suite, "expect_column_values_to_be_unique", "id").severity == "fail"
    mobile = _rule(suite, "expect_column_values_to_be_valid_mobile", "phone")
    assert (mobile.dimension, mobile.severity) == ("conformity", "warn")
    pair = _rule(suite, "expect_column_pair_values_birth_date_to_match_resident_id", "birth_date", "id_number")
    assert pair.dimension == "consistency"
    name_nulls = _rule(suite, "expect_column_values_to_not_be_null", "name")
    assert name_nulls.severity == "warn" and name_nulls.kwargs["mostly"] == 0.98
    assert "1.6% 空值" in name_nulls.description
    assert _rule(suite, "expect_table_row_count_to_be_between").kwargs == {"min_value": 1}
    assert not [r for r in suite.rules if r.columns == ["phone"] and "length" in r.type]  # the rule says it all

    # The document as written reads back the same, and plain GX takes it.
    assert json.loads(dumps(doc)) == doc
    assert len(suite.gx_suite().expectations) == len(doc["expectations"])

    # On the data it came from, the library rules find exactly the injected defects.
    outcome = engine.evaluate(df, suites.parse(doc, suites.suite_path("persons.generated")))
    assert outcome.by_gx == []
    failed = {r.rule.name: r.unexpected_count for r in outcome.results if not r.success}
    invalid = sum(identifiers.resident_id_problem(v) is not None for v in persons["id_number"])
    duplicated = int(persons["id_number"].duplicated(keep=False).sum())
    bad_phones = int((~persons["phone"].str.fullmatch(identifiers.MOBILE.pattern)).sum())
    mismatched = int((persons["id_number"].str[6:14] != persons["birth_date"].dt.strftime("%Y%m%d")).sum())
    assert invalid >= 8 and duplicated >= 10 and bad_phones >= 4 and mismatched >= 3
    assert failed == {
        "expect_column_values_to_be_valid_resident_id(id_number)": invalid,
        "expect_column_values_to_be_unique(id_number)": duplicated,
        "expect_column_values_to_be_valid_mobile(phone)": bad_phones,
        "expect_column_pair_values_birth_date_to_match_resident_id(birth_date,id_number)": mismatched,
    }


def test_suite_from_clean_data_succeeds_on_it(spark: Any, clean_persons: Any) -> None:
    df = spark.createDataFrame(clean_persons)
    doc = suggest_suite(profile(df), name="persons.clean", dataset=DATASET, side="application")
    suite = suites.parse(doc, suites.suite_path("persons.clean"))
    assert suite.side == "application"
    kinds = {(r.type, ",".join(r.columns)): r for r in suite.rules}
    assert ("expect_column_values_to_be_valid_resident_id", "id_number") in kinds
    assert ("expect_column_values_to_be_unique", "id") in kinds
    assert ("expect_column_values_to_be_valid_mobile", "phone") in kinds
    assert ("expect_column_pair_values_birth_date_to_match_resident_id", "birth_date,id_number") in kinds
    assert kinds[("expect_column_values_to_be_in_code_table", "gender")].kwargs["values"] == "meanings"
    assert kinds[("expect_column_values_to_not_be_in_future", "updated_at")].dimension == "timeliness"
    assert kinds[("expect_column_values_to_not_be_in_future", "birth_date")].dimension == "reasonableness"
    assert kinds[("expect_column_values_to_match_regex", "address")].kwargs["regex"] == "^上海市青浦区"
    assert ("expect_column_values_to_be_between", "id") not in kinds  # keys are not quantities
    assert all(r.severity == "fail" for (t, _), r in kinds.items() if t == "expect_column_values_to_not_be_null")

    outcome = engine.evaluate(df, suite)
    assert outcome.by_gx == []
    assert [r.rule.name for r in outcome.results if not r.success] == []
    assert len(outcome.results) == len(doc["expectations"]) >= 20


def test_bounds_widen_outwards() -> None:
    assert _widen(1, 300, integer=True) == (0, 330)
    assert _widen(121.0512, 121.2987, integer=False) == (121.02, 121.33)
    assert _widen(-5.0, -5.0, integer=False) == (-5.5, -4.5)
    assert _widen(0.5, 0.5, integer=False) == (0.45, 0.55)
    assert _widen(0, 0, integer=True) == (0, 1)


def test_command_writes_the_suite_once(
    spark: Any, clean_persons: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    folder = lake / DATASET
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(clean_persons.head(60), preserve_index=False), folder / "part-0.parquet")
    monkeypatch.setenv("GOVOPS_LAKE_ROOT", lake.as_uri())
    out = tmp_path / "suites" / "persons.ingestion.json"

    assert main([DATASET, "--name", "persons.ingestion", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "60 rows" in printed and "valid_resident_id(id_number)" in printed
    suite = suites.load(out)
    assert suite.name == "persons.ingestion" and suite.dataset == DATASET
    written = out.read_text(encoding="utf-8")
    assert "身份证号码校验" in written  # not escaped

    # Not overwritten without --force (a person may have edited it).
    out.write_text(written.replace("persons.ingestion", "edited"), encoding="utf-8")
    assert main([DATASET, "--name", "persons.ingestion", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err and json.loads(out.read_text())["name"] == "edited"
    # --force replaces it; a Parquet folder in the lake names its dataset too.
    assert main([str(folder), "--name", "persons.ingestion", "--out", str(out), "--force"]) == 0
    assert suites.load(out).name == "persons.ingestion" and suites.load(out).dataset == DATASET


def test_sources_name_their_lake_dataset(tmp_path: Path) -> None:
    lake = tmp_path.as_uri() + "/lake"
    assert _resolve(DATASET, None, lake) == (f"{lake}/{DATASET}", DATASET)
    folder = tmp_path / "lake" / DATASET
    assert _resolve(str(folder), None, lake) == (folder.as_uri(), DATASET)
    assert _resolve(str(folder / "part-0.parquet"), None, lake)[1] == DATASET
    assert _resolve("/elsewhere/x.parquet", None, lake) == ("file:///elsewhere/x.parquet", None)
    assert _resolve("hdfs://nn/data/x", "raw/x", lake) == ("hdfs://nn/data/x", "raw/x")
