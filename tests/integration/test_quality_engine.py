"""The single-pass engine on a real Spark session: exact anomaly counts for every rule kind on
crafted records, the same unexpected counts as plain Great Expectations on the same
DataFrame, the anomaly list reconciled with the counts, cross-table application rules, and
GX's own engine for a type the engine does not compile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from govops.quality import engine, suites

pytestmark = pytest.mark.integration

ROWS = [  # id, id_number, birth, phone, landline, uscc, gender, lon, lat, name, joined
    (1, "11010519491231002X", "1949-12-31", "13812345678", "021-69212345", "91350100M000100Y43", "1", "121.1", "31.1",
     "张三", "2020-01-01"),
    (2, "110105194912310021", "1949-12-31", "1381234567", "69212345", "91350100M000100Y44", "2", "121.1", "31.1",
     "李四", "2999-01-01"),
    (3, "110105194913310029", "1950-01-01", "23812345678", "021-6921", "91350100m000100Y43", "3", "200.0", "31.1",
     "王", "not a date"),
    (4, "990105194912310028", None, None, None, None, None, "121.1", None, None, None),
    (4, "1101051949123", "1949-12-31", "13912345678", "0512-62345678-123", "91350100M000100Y43", "9", "abc", "31.1",
     "赵六六六六六六六六六六", "2021-06-30"),
    (6, None, "1990-01-01", "13912345678", "12345678", "91350100M000100Y43", "0", None, None, "钱七", "2021-06-30"),
]  # fmt: skip
COLUMNS = "id long, id_number string, birth string, phone string, landline string, uscc string, gender string, " \
          "lon string, lat string, name string, joined string"  # fmt: skip


def _rule(kind: str, kwargs: dict, dimension: str = "accuracy", **meta: str) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"dimension": dimension, **meta}, "severity": "warning"}


EVERY_KIND = [  # (expectation, unexpected count on ROWS)
    (_rule("expect_column_values_to_be_valid_resident_id", {"column": "id_number"}), 4),
    (_rule("expect_column_values_to_be_valid_uscc", {"column": "uscc"}), 2),
    (_rule("expect_column_values_to_be_valid_mobile", {"column": "phone"}), 2),
    (_rule("expect_column_values_to_be_valid_landline", {"column": "landline"}), 2),
    (_rule("expect_column_values_to_not_be_in_future", {"column": "joined"}, "timeliness"), 2),
    (_rule("expect_column_values_to_be_in_code_table", {"column": "gender", "code_table": "gender"}), 1),
    (_rule("expect_column_pair_values_to_be_coordinates_in_range", {"column_A": "lon", "column_B": "lat"}), 3),
    (_rule("expect_column_pair_values_birth_date_to_match_resident_id", {"column_A": "birth", "column_B": "id_number"},
           "consistency"), 2),
    (_rule("expect_column_values_to_not_be_null", {"column": "id_number"}, "completeness"), 1),
    (_rule("expect_column_values_to_be_unique", {"column": "id"}, "consistency"), 2),
    (_rule("expect_column_value_lengths_to_be_between", {"column": "name", "min_value": 2, "max_value": 10},
           "conformity"), 2),
    (_rule("expect_column_values_to_be_in_set", {"column": "gender", "value_set": ["1", "2"]}, "conformity"), 3),
    (_rule("expect_column_values_to_match_regex", {"column": "phone", "regex": "^1"}, "conformity"), 1),
    (_rule("expect_column_values_to_be_between", {"column": "id", "min_value": 2, "max_value": 5, "mostly": 0.5}), 2),
    (_rule("expect_column_values_to_not_match_regex", {"column": "uscc", "regex": "[a-z]"}, "conformity"), 1),
    (_rule("unexpected_rows_expectation", {"unexpected_rows_query": "SELECT * FROM {batch} WHERE id > 4"},
           "reliability", rule="late_ids"), 1),
]  # fmt: skip



def _suite(tmp_path: Path, expectations: list[dict], dataset: str = "raw/crafted", side: str = "ingestion",
           lake: str = "") -> suites.Suite:  # fmt: skip
    document = {"name": f"crafted.{side}", "expectations": expectations,
                "meta": {"govops": {"dataset": dataset, "side": side, "thresholds": {"pass": 99, "warn": 90}}}}
    path = tmp_path / f"crafted.{side}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return suites.load(path, lake)


def _plain_gx(df: object, suite: suites.Suite) -> list[dict]:
    """Plain GX's results, in the suite's order (GX returns them in an order of its own)."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_spark("s").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b"))
    gx_suite = context.suites.add(suite.gx_suite())
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=gx_suite))
    ran = definition.run(batch_parameters={"dataframe": df}).results
    found = {r.expectation_config.id: r.to_json_dict() for r in ran}
    return [found[e.id] for e in gx_suite.expectations]


def test_every_rule_kind_exact_and_identical_to_great_expectations(spark: object, tmp_path: Path) -> None:
    df = spark.createDataFrame(ROWS, COLUMNS)
    suite = _suite(tmp_path, [e for e, _ in EVERY_KIND])
    expected = [n for _, n in EVERY_KIND]

    counts = engine.evaluate(df, suite)
    assert [r.unexpected_count for r in counts.results] == expected
    assert counts.by_gx == [] and counts.passes == 3  # the aggregation, one group-by, one query
    by_name = {r.rule.name: r for r in counts.results}
    assert by_name["expect_column_values_to_be_between(id)"].success  # 4 of 6 in range: mostly 0.5 holds
    assert not by_name["expect_column_values_to_be_valid_uscc(uscc)"].success
    assert by_name["expect_column_values_to_be_valid_mobile(phone)"].missing_count == 1

    anomalies = tmp_path / "anomalies"
    listed = engine.evaluate(df, suite, anomalies.as_uri())
    assert [r.unexpected_count for r in listed.results] == expected
    written = spark.read.parquet(anomalies.as_uri())
    assert listed.anomalies_written == sum(expected) == written.count()
    assert listed.anomaly_rows == 6  # every crafted row fails some row rule
    row = written.where("rule = 'expect_column_values_to_be_valid_uscc(uscc)'").orderBy("value").first()
    assert (row.dimension, row.severity, row.column, row.value) == ("accuracy", "warn", "uscc", "91350100M000100Y44")
    assert json.loads(row.record)["id"] == 2

    gx_results = _plain_gx(df, suite)
    gx_counts = [r["result"].get("unexpected_count", r["result"].get("observed_value")) for r in gx_results]
    assert gx_counts == expected
    assert [r["success"] for r in gx_results] == [r.success for r in counts.results]
    assert [r["result"].get("missing_count") for r in gx_results if "missing_count" in r["result"]] == [
        r.missing_count for r, (e, _) in zip(counts.results, EVERY_KIND, strict=True)
        if e["type"] not in ("expect_column_values_to_not_be_null", "unexpected_rows_expectation")
    ]  # fmt: skip


def test_application_rules_across_tables(spark: object, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    addresses = spark.createDataFrame([(1,), (2,), (3,)], "id long")
    addresses.write.parquet(str(lake / "raw/frontdb/planning_resources/addresses"))
    source = spark.createDataFrame([("A", 100.0), ("B", 50.0), ("C", 10.0)], "uscc string, registered_capital double")
    source.write.parquet(str(lake / "raw/frontdb/market_regulation/legal_persons"))
    fused = spark.createDataFrame([
        (1, "91350100M000100Y43", "甲公司", "market_regulation", 100.0, 1),
        (2, "91350100M000100Y43", "甲公司", "tax", 100.0, 1),  # the same number from a second source
        (3, "91350100M000100Y44", None, "market_regulation", 50.0, 9),  # no such address; bad check char
        (4, "91310118MA1JL8XX0A", "丙公司", "market_regulation", 10.5, None),  # capital off by 0.5 of 160
    ], "id long, uscc string, name string, source string, registered_capital double, address_id long")  # fmt: skip
    suite = suites.load(suites.suite_path("fused_enterprises.application"), lake.as_uri())
    outcome = engine.evaluate(fused, suite, (tmp_path / "anomalies").as_uri())
    counts = {r.rule.name: r.unexpected_count for r in outcome.results}
    assert counts["address_in_library"] == 1
    assert counts["one_number_one_source"] == 2
    assert counts["balance_with_registrations"] == 1  # 160.5 against 160: over 0.1%
    assert counts["expect_column_values_to_not_be_null(name)"] == 1
    balance = next(r for r in outcome.results if r.rule.name == "balance_with_registrations")
    assert not balance.success and balance.evaluated_by == "query"
    listed = spark.read.parquet((tmp_path / "anomalies").as_uri())
    assert listed.count() == outcome.anomalies_written == sum(counts.values())
    found = json.loads(listed.where("rule = 'balance_with_registrations'").first().record)
    assert found == {"fused_rows": 3, "source_rows": 3, "fused_capital": 160.5, "source_capital": 160.0}


def test_types_the_engine_does_not_compile_run_on_gx(spark: object, tmp_path: Path) -> None:
    df = spark.createDataFrame(ROWS, COLUMNS)
    suite = _suite(tmp_path, [
        _rule("expect_column_values_to_match_strftime_format", {"column": "joined", "strftime_format": "%Y-%m-%d"},
              "conformity"),
        _rule("expect_column_distinct_values_to_be_in_set",
              {"column": "gender", "value_set": ["0", "1", "2", "3", "9"]}, "conformity"),
        _rule("expect_column_values_to_be_valid_mobile", {"column": "phone"}),
    ])  # fmt: skip
    outcome = engine.evaluate(df, suite)
    assert outcome.by_gx == [r.name for r in suite.rules[:2]]
    assert [r.evaluated_by for r in outcome.results] == ["great_expectations", "great_expectations", "single-pass"]
    assert outcome.results[0].unexpected_count == 1 and outcome.results[1].success


def test_date_columns_and_aggregates_match_great_expectations(spark: object, tmp_path: Path) -> None:
    from datetime import date

    df = spark.createDataFrame([(1, date(1990, 1, 1)), (2, date(2999, 1, 1)), (3, None), (4, date(1899, 12, 31))],
                               "id long, born date")  # fmt: skip
    suite = _suite(tmp_path, [
        _rule("expect_column_values_to_not_be_in_future", {"column": "born"}, "reasonableness"),
        _rule("expect_column_max_to_be_between", {"column": "born", "max_value": "2030-01-01"}, "reasonableness"),
        _rule("expect_column_min_to_be_between", {"column": "born", "min_value": "1900-01-01"}, "reasonableness"),
        _rule("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 4}, "reliability"),
    ])  # fmt: skip
    outcome = engine.evaluate(df, suite)
    assert [(r.success, r.unexpected_count, r.observed_value) for r in outcome.results] == [
        (False, 1, None), (False, 0, date(2999, 1, 1)), (False, 0, date(1899, 12, 31)), (True, 0, 4)]
    gx_results = _plain_gx(df, suite)
    assert [r["success"] for r in gx_results] == [r.success for r in outcome.results]
    assert gx_results[0]["result"]["unexpected_count"] == 1


def test_every_failing_row_of_rules_gx_runs_is_listed_masked_and_errors_too(spark: object, tmp_path: Path) -> None:
    df = spark.createDataFrame(ROWS, COLUMNS)
    document = {"name": "crafted.ingestion", "expectations": [
        _rule("expect_column_value_lengths_to_equal", {"column": "phone", "value": 11}, "conformity"),
        _rule("expect_column_values_to_match_strftime_format", {"column": "joined", "strftime_format": "%Y-%m-%d"},
              "conformity"),
        _rule("expect_column_values_to_be_valid_mobile", {"column": "phone", "row_condition": "id > 1",
                                                          "condition_parser": "spark"}, rule="mobile_after_1"),
        _rule("expect_column_values_to_not_be_null", {"column": "no_such_column"}, "completeness"),
    ], "meta": {"govops": {"dataset": "raw/crafted", "side": "ingestion", "thresholds": {"pass": 99, "warn": 90},
                           "key": ["id", "phone"],
                           "sensitive": {"phone": {"rule": "partial", "keep_first": 3, "keep_last": 4}}}}}
    path = tmp_path / "crafted.ingestion.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    suite = suites.load(path)
    anomalies = (tmp_path / "anomalies").as_uri()

    outcome = engine.evaluate(df, suite, anomalies)
    assert outcome.by_gx == ["expect_column_values_to_match_strftime_format(joined)", "mobile_after_1"]
    assert [r.unexpected_count for r in outcome.results] == [1, 1, 2, 0]
    missing = outcome.results[3]
    assert not missing.success and missing.exception == "no column(s) no_such_column in the data"
    listed = sorted(
        (r.rule, r.value, r.masked_value, r.reason if r.record is None else json.loads(r.record)["id"],
         r.masked_record and json.loads(r.masked_record)["phone"])
        for r in spark.read.parquet(anomalies).collect())  # fmt: skip
    assert listed == [
        ("expect_column_value_lengths_to_equal(phone)", "1381234567", "138***4567", 2, "138***4567"),
        ("expect_column_values_to_match_strftime_format(joined)", "not a date", "not a date", 3, "238****5678"),
        ("expect_column_values_to_not_be_null(no_such_column)", None, None,
         "rule error: no column(s) no_such_column in the data", None),
        ("mobile_after_1", "1381234567", "138***4567", 2, "138***4567"),
        ("mobile_after_1", "23812345678", "238****5678", 3, "238****5678"),
    ]
    assert outcome.anomalies_written == len(listed)
    # Records 2 (the engine's rule and GX's) and 3 (GX's rules only), merged by the record.
    assert outcome.anomaly_rows == 2


def test_code_tables_come_from_one_place(spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "suites"
    (own / "code_tables").mkdir(parents=True)
    (own / "code_tables" / "gender.yaml").write_text("codes: {'1': 男}\n", encoding="utf-8")
    monkeypatch.setenv(suites.SUITES_DIR_ENV, str(own))
    df = spark.createDataFrame(ROWS, COLUMNS)
    suite = _suite(tmp_path, [
        _rule("expect_column_values_to_be_in_code_table", {"column": "gender", "code_table": "gender"}),
        _rule("expect_column_values_to_be_in_code_table", {"column": "gender", "code_table": "gender",
              "row_condition": "id > 0", "condition_parser": "spark"}, rule="by_gx"),
    ])  # fmt: skip
    outcome = engine.evaluate(df, suite)
    assert outcome.by_gx == ["by_gx"]
    # Genders 2, 3, 9 and 0 are not in this deployment's table, for the engine and for GX alike.
    assert [r.unexpected_count for r in outcome.results] == [4, 4]


def test_today_is_the_contract_time_zones(spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    # Today at UTC+14 is, at any hour, tomorrow or later at UTC-12: the two zones never agree,
    # and a check that judged "today" at UTC (Spark's session zone) would fail one of them.
    east = datetime.now(ZoneInfo("Etc/GMT-14")).date()
    df = spark.createDataFrame([(1, east.isoformat(), east)], "id long, text_day string, day date")
    suite = _suite(tmp_path, [
        _rule("expect_column_values_to_not_be_in_future", {"column": "text_day"}, "timeliness"),
        _rule("expect_column_values_to_not_be_in_future", {"column": "day"}, "timeliness"),
        _rule("expect_column_values_to_not_be_in_future", {"column": "day", "row_condition": "id > 0",
              "condition_parser": "spark"}, "timeliness", rule="by_gx"),
    ])  # fmt: skip
    for zone, future in (("Etc/GMT-14", 0), ("Etc/GMT+12", 1)):
        monkeypatch.setenv("GOVOPS_TIMEZONE", zone)
        outcome = engine.evaluate(df, suite)
        assert outcome.by_gx == ["by_gx"]
        assert [r.unexpected_count for r in outcome.results] == [future] * 3, zone
