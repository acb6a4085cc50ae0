"""Suite files: the bundled ones load; malformed ones are refused with the file and the field
at fault; the score and status a run's figures give."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from govops.quality import results, rules, suites

GOOD = {
    "name": "t.ingestion",
    "meta": {"govops": {"dataset": "raw/t", "side": "ingestion", "thresholds": {"pass": 99, "warn": 90}}},
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"},
         "meta": {"dimension": "completeness"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_valid_mobile", "kwargs": {"column": "phone"},
         "meta": {"dimension": "conformity"}, "severity": "warning"},
    ],
}  # fmt: skip


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "t.ingestion.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def _broken(**changes: object) -> dict:
    document = json.loads(json.dumps(GOOD))
    for where, value in changes.items():
        target = document
        *parents, last = where.split("__")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if value is None:
            del target[int(last) if isinstance(target, list) else last]
        else:
            target[int(last) if isinstance(target, list) else last] = value
    return document


@pytest.mark.parametrize("name", suites.available())
def test_bundled_suites_load(name: str) -> None:
    suite = suites.load(name, "file:///lake")
    assert suite.rules and suite.side in suites.SIDES and "${lake}" not in json.dumps(suite.document)


def test_a_good_suite_and_its_rules(tmp_path: Path) -> None:
    suite = suites.load(_write(tmp_path, GOOD))
    assert suite.service_item == "07" and suite.thresholds == {"pass": 99.0, "warn": 90.0}
    assert [(r.name, r.dimension, r.severity) for r in suite.rules] == [
        ("expect_column_values_to_not_be_null(id)", "completeness", "fail"),
        ("expect_column_values_to_be_valid_mobile(phone)", "conformity", "warn"),
    ]
    assert suite.gx_suite().name == "t.ingestion" and len(suite.gx_suite().expectations) == 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"name": "t",\n  "expectations": [}', "line 2 column 20: not valid JSON"),
        (_broken(meta=None), "meta.govops: missing"),
        (_broken(meta__govops__side="both"), "meta.govops.side: 'both' is not one of ingestion, application"),
        (_broken(meta__govops__dataset="persons"), "meta.govops.dataset: 'persons' is not a lake dataset"),
        (_broken(meta__govops__thresholds={"pass": 80, "warn": 90}), "need 0 <= warn (90.0) <= pass (80.0)"),
        (_broken(expectations=[]), "expectations: must be a non-empty list"),
        (_broken(expectations__1__meta__dimension="beauty"), "expectations[1].meta.dimension: 'beauty' is not one"),
        (_broken(expectations__0__severity="fatal"), "expectations[0].severity: 'fatal' is not one of critical"),
        (_broken(expectations__1__type="expect_column_values_to_be_pretty"),
         "expectations[1].type: 'expect_column_values_to_be_pretty' is not a Great Expectations expectation type"),
        (_broken(expectations__0__kwargs={"colum": "id"}),
         "expectations[0].kwargs: expect_column_values_to_not_be_null"),
        (_broken(expectations__1__kwargs={"column": "id"}),
         "expectations[1].meta.rule: 'expect_column_values_to_not_be_null(id)' names two rules"),
        (_broken(meta__govops__sensitive={"phone": {"rule": "partial", "keep_frist": 3}}),
         "meta.govops.sensitive.phone: partial takes no keep_frist"),
        (_broken(meta__govops__sensitive={"phone": {"rule": "hmac"}}),
         "meta.govops.sensitive.phone: 'hmac': the report's view takes partial, generalize or nullify"),
    ],
)  # fmt: skip
def test_malformed_suites_are_refused_with_the_field_at_fault(tmp_path: Path, document: object, message: str) -> None:
    if "names two rules" in message:  # the same rule twice: make the second a duplicate of the first
        document = _broken(expectations__1=GOOD["expectations"][0])
    path = _write(tmp_path, document)
    with pytest.raises(suites.SuiteError) as caught:
        suites.load(path)
    assert str(caught.value).startswith(f"SUITE_INVALID: {path}: ") and message in str(caught.value)


def test_a_missing_suite_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(suites.SuiteError, match="cannot read the suite"):
        suites.load(tmp_path / "nope.json")


def test_a_suite_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.ingestion.json"
    path.write_bytes(json.dumps(GOOD, ensure_ascii=False).replace("t.ingestion", "人口").encode("gbk"))
    with pytest.raises(suites.SuiteError) as caught:
        suites.load(path)
    assert str(caught.value).startswith(f"SUITE_INVALID: {path}: byte 10: not UTF-8 text")


def test_suites_and_code_tables_from_one_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "code_tables").mkdir()
    (tmp_path / "code_tables" / "gender.yaml").write_text("codes: {'1': 男, '2': 女}\n", encoding="utf-8")
    _write(tmp_path, GOOD)
    monkeypatch.setenv(suites.SUITES_DIR_ENV, str(tmp_path))
    assert suites.available() == ["t.ingestion"] and suites.load("t.ingestion").path == tmp_path / "t.ingestion.json"
    assert rules.code_tables_dir() == tmp_path / "code_tables"
    assert rules.code_table("gender") == ("1", "2")


def test_code_tables() -> None:
    assert rules.code_table("gender") == ("0", "1", "2", "9")
    assert "男" in rules.code_table("gender", "meanings")
    with pytest.raises(ValueError, match=r"code table 'nation': no file .* known tables: gender"):
        rules.code_table("nation")


def test_rule_library_in_pandas() -> None:
    ids = pd.Series(["11010519491231002X", "110105194912310021", "110105194913310029", "990105194912310028"])
    assert rules.resident_id_pandas(ids).tolist() == [True, False, False, False]
    assert rules.uscc_pandas(pd.Series(["91350100M000100Y43", "91350100M000100Y44"])).tolist() == [True, False]
    assert rules.mobile_pandas(pd.Series(["13812345678", "1381234567", "23812345678"])).tolist() == [True, False, False]
    assert rules.landline_pandas(pd.Series(["021-69212345", "69212345", "021-6921"])).tolist() == [True, True, False]
    assert rules.not_in_future_pandas(pd.Series(["2020-01-01", "2999-01-01", "soon"])).tolist() == [True, False, False]
    lon, lat = pd.Series([121.1, 200.0, None]), pd.Series([31.1, 31.1, 31.0])
    assert rules.coordinates_in_range_pandas(lon, lat).tolist() == [True, False, False]
    births = pd.Series(["1949-12-31", "1950-01-01", None])
    assert rules.birth_date_matches_id_pandas(births, ids.iloc[:3]).tolist() == [True, False, True]


def _figure(rule: str, dimension: str, severity: str, unexpected: int, considered: int = 100) -> dict:
    return {"rule": rule, "dimension": dimension, "severity": severity, "success": unexpected == 0,
            "element_count": considered, "missing_count": 0, "unexpected_count": unexpected,
            "observed_value": None, "evaluated_by": "single-pass"}  # fmt: skip


def test_score_and_status(tmp_path: Path) -> None:
    suite = suites.load(_write(tmp_path, GOOD))
    clean = [_figure("a", "completeness", "fail", 0), _figure("b", "conformity", "warn", 0)]
    assert results.score(suite, clean) == results.Score(100.0, {"conformity": 100.0, "completeness": 100.0},
                                                        "pass", [], [])  # fmt: skip
    warned = results.score(suite, [_figure("a", "completeness", "fail", 0), _figure("b", "conformity", "warn", 2)])
    assert (warned.score, warned.status, warned.warned_rules) == (99.0, "warn", ["b"])
    # A severity-fail rule not met fails the run, whatever the score.
    failed = results.score(suite, [_figure("a", "completeness", "fail", 1), _figure("b", "conformity", "warn", 0)])
    assert (failed.score, failed.status, failed.failed_rules) == (99.5, "fail", ["a"])
    # Under the warn threshold fails too.
    low = results.score(suite, [_figure("a", "completeness", "warn", 30), _figure("b", "conformity", "warn", 0)])
    assert (low.score, low.status) == (85.0, "fail")


def test_a_rule_that_could_not_run_is_an_error_in_the_data_docs(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    suite = suites.load(_write(tmp_path, GOOD))
    error = "no column(s) phone in the data"
    figures = [{**_figure(suite.rules[0].name, "completeness", "fail", 0)},
               {**_figure(suite.rules[1].name, "conformity", "warn", 0, considered=0), "success": False,
                "evaluated_by": "schema", "exception": error, "traceback": f"{suite.rules[1].name}: {error}"}]
    result = results.validation_result(suite, figures, run_name="r1", run_time=datetime(2026, 8, 1, tzinfo=UTC),
                                       batch=suite.dataset)  # fmt: skip
    failed = result.results[1]
    assert not failed.success and failed.exception_info == {
        "raised_exception": True, "exception_message": error, "exception_traceback": f"{suite.rules[1].name}: {error}"}
    page = results.build_data_docs(tmp_path / "gx", tmp_path / "site", suite, result)
    assert error in page.read_text(encoding="utf-8")


def test_the_rule_library_renders_as_sentences() -> None:
    """GX's renderers for the project's types, outside data docs (whose pages
    tests/reports/test_data_docs_offline.py checks): with the column's name, ``mostly`` and a
    row condition, in the legacy renderer data docs use and the atomic one GX's API returns."""
    from string import Template

    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import get_renderer_impl
    from great_expectations.render.renderer.inline_renderer import InlineRenderer

    import govops.quality.expectations  # noqa: F401

    def fill(template: str, params: dict) -> str:  # as data docs put the parameters in
        return Template(template).safe_substitute(params)

    def legacy(kind: str, kwargs: dict | None, **runtime: object) -> str:
        render = get_renderer_impl(kind, "renderer.prescriptive")[1]
        config = ExpectationConfiguration(type=kind, kwargs=kwargs) if kwargs is not None else None
        content = render(configuration=config, runtime_configuration=runtime)[0].to_json_dict()["string_template"]
        return fill(content["template"], content["params"])

    ids = {"column": "id_number", "mostly": 0.95}
    assert legacy("expect_column_values_to_be_valid_resident_id", ids) == (
        "id_number values must be valid resident ID numbers (GB 11643), at least 95 % of the time. "
        "id_number 的值须为有效的公民身份号码（GB 11643），比例不低于 95 %。")  # fmt: skip
    assert legacy("expect_column_values_to_be_valid_resident_id", ids, include_column_name=False) == (
        "values must be valid resident ID numbers (GB 11643), at least 95 % of the time. "
        "值须为有效的公民身份号码（GB 11643），比例不低于 95 %。")  # fmt: skip
    conditional = {"column": "gender", "code_table": "gender", "values": "meanings",
                   "row_condition": 'col("age")>10', "condition_parser": "spark"}  # fmt: skip
    assert legacy("expect_column_values_to_be_in_code_table", conditional) == (
        "If 'col(\"age\")>10', then gender values must be names from the code table gender. "  # as GX words its own
        "gender 的值须为代码表 gender 中的名称。")  # fmt: skip
    # Bounds given: no mention of China's extent.
    assert legacy("expect_column_pair_values_to_be_coordinates_in_range",
                  {"column_A": "x", "column_B": "y", "bounds": [120.85, 30.67, 122.2, 31.88]}) == (
        "longitude x and latitude y must be numbers within longitude 120.85-122.2 and latitude 30.67-31.88. "
        "经度 x 和纬度 y 须为数值，且在经度 120.85-122.2、纬度 30.67-31.88 范围内。")  # fmt: skip
    # GX calls the renderer without a configuration on some pages: a sentence all the same.
    assert legacy("expect_column_values_to_be_valid_mobile", None).startswith("values must be valid mobile")
    # GX's atomic renderer (its API, GX Cloud) says the same, the row condition in GX's own form.
    config = ExpectationConfiguration(type="expect_column_values_to_not_be_in_future",
                                      kwargs={"column": "d", "date_format": "yyyyMMdd"})  # fmt: skip
    [summary] = [r for r in InlineRenderer(render_object=config).get_rendered_content()
                 if r.name == "atomic.prescriptive.summary"]  # fmt: skip
    params = {k: v["value"] for k, v in summary.value.params.items()}
    assert fill(summary.value.template, params) == (
        "d values must be dates no later than today (text dates as yyyyMMdd). "
        "d 的值须为不晚于今天的日期（文本日期格式 yyyyMMdd）。")  # fmt: skip
