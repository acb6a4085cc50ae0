"""The rule library as Great Expectations 1.x expectations, usable in any suite file.

Importing this module registers the expectation types with GX, so plain GX (checkpoints,
validators, data docs) understands suites that use them; the conditions themselves live in
govops.quality.rules and are shared with this project's single-pass engine.

=============================================================  ==========================
expectation type                                               kwargs
=============================================================  ==========================
expect_column_values_to_be_valid_resident_id                   column
expect_column_values_to_be_valid_uscc                         column
expect_column_values_to_be_valid_mobile                        column
expect_column_values_to_be_valid_landline                      column
expect_column_values_to_not_be_in_future                       column, date_format
expect_column_values_to_be_in_code_table                       column, code_table, values
expect_column_pair_values_to_be_coordinates_in_range           column_A (lon), column_B (lat), bounds
expect_column_pair_values_birth_date_to_match_resident_id      column_A (birth date), column_B (ID number)
=============================================================  ==========================

Each type renders in data docs (and GX's atomic renderers) as a sentence in English then
Chinese, e.g. "values must be valid resident ID numbers (GB 11643). 值须为有效的公民身份号码（GB 11643）。",
with ``mostly`` and a ``row_condition`` worded as GX words its own expectations.
"""

# This module is GX: it is imported only where GX runs, never by DAG files.
# ruff: noqa: TID253

from __future__ import annotations

from typing import Any, ClassVar, Literal

from great_expectations.core import ExpectationValidationResult
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, ColumnPairMapExpectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.renderer_configuration import RendererConfiguration
from great_expectations.render.util import num_to_str, parse_row_condition_string

from govops.quality import rules

# --- metric providers: one condition per rule, Spark and pandas ---


class ColumnValuesValidResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_resident_id"

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, **kwargs: Any) -> Any:
        return rules.resident_id(column)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: Any, **kwargs: Any) -> Any:
        return rules.resident_id_pandas(column)


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_uscc"

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, **kwargs: Any) -> Any:
        return rules.uscc(column)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: Any, **kwargs: Any) -> Any:
        return rules.uscc_pandas(column)


class ColumnValuesValidMobile(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_mobile"

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, **kwargs: Any) -> Any:
        return rules.mobile(column)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: Any, **kwargs: Any) -> Any:
        return rules.mobile_pandas(column)


class ColumnValuesValidLandline(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_landline"

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, **kwargs: Any) -> Any:
        return rules.landline(column)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: Any, **kwargs: Any) -> Any:
        return rules.landline_pandas(column)


class ColumnValuesNotInFuture(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_in_future"
    condition_value_keys = ("date_format",)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, date_format: str | None = None, **kwargs: Any) -> Any:
        return rules.not_in_future(column, date_format)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: Any, date_format: str | None = None, **kwargs: Any) -> Any:
        return rules.not_in_future_pandas(column, date_format)


class ColumnValuesInCodeTable(ColumnMapMetricProvider):
    condition_metric_name = "column_values.in_code_table"
    condition_value_keys = ("code_table", "values")

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, code_table: str, values: str = "codes", **kwargs: Any) -> Any:
        return rules.in_code_table(column, code_table, values)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: Any, code_table: str, values: str = "codes", **kwargs: Any) -> Any:
        return rules.in_code_table_pandas(column, code_table, values)


_PAIR_DOMAIN = ("batch_id", "table", "column_A", "column_B", "row_condition", "condition_parser", "ignore_row_if")


class ColumnPairCoordinatesInRange(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.coordinates_in_range"
    condition_domain_keys = _PAIR_DOMAIN
    condition_value_keys = ("bounds",)

    @column_pair_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_A: Any, column_B: Any, bounds: Any = None, **kwargs: Any) -> Any:
        return rules.coordinates_in_range(column_A, column_B, bounds)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: Any, column_B: Any, bounds: Any = None, **kwargs: Any) -> Any:
        return rules.coordinates_in_range_pandas(column_A, column_B, bounds)


class ColumnPairBirthDateMatchesId(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.birth_date_matches_resident_id"
    condition_domain_keys = _PAIR_DOMAIN

    @column_pair_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_A: Any, column_B: Any, **kwargs: Any) -> Any:
        return rules.birth_date_matches_id(column_A, column_B)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: Any, column_B: Any, **kwargs: Any) -> Any:
        return rules.birth_date_matches_id_pandas(column_A, column_B)


# --- how data docs word them ---


class _Sentence:
    """The rule as a sentence, English then Chinese, in GX's legacy renderer (data docs)
    and its atomic one, instead of GX's fallback ``expect_...(**{kwargs})``."""

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        """(English, Chinese, extra params) after the column's name; ``$name`` is a kwarg or an extra param."""
        raise NotImplementedError

    @classmethod
    def _template(cls, kwargs: dict[str, Any], include_column_name: bool) -> tuple[str, dict[str, Any]]:
        en, zh, extra = cls._sentence(kwargs)
        params = {k: v for k, v in kwargs.items() if isinstance(v, str | int | float)} | extra
        mostly = kwargs.get("mostly")
        if isinstance(mostly, int | float) and mostly < 1:
            params["mostly_pct"] = num_to_str(mostly * 100, no_scientific=True)
            en, zh = f"{en}, at least $mostly_pct % of the time", f"{zh}，比例不低于 $mostly_pct %"
        if include_column_name and "column" in kwargs:
            en, zh = f"$column {en}", f"$column 的{zh}"
        return f"{en}. {zh}。", params

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        template, params = cls._template(renderer_configuration.kwargs, renderer_configuration.include_column_name)
        for name, value in params.items():
            renderer_configuration.add_param(name=name, value=value)  # its type inferred from the value
        renderer_configuration.template_str = template  # GX prefixes the row condition
        return renderer_configuration

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls, configuration: ExpectationConfiguration | None = None, result: ExpectationValidationResult | None = None,
        runtime_configuration: dict[str, Any] | None = None, **_: Any,
    ) -> list[RenderedStringTemplateContent]:  # fmt: skip
        # GX calls this with the configuration, the result or neither, depending on the page.
        runtime_configuration = runtime_configuration or {}
        config = configuration or (result.expectation_config if result is not None else None)
        kwargs = dict(config.kwargs) if config is not None else {}
        template, params = cls._template(kwargs, runtime_configuration.get("include_column_name") is not False)
        styling = dict(runtime_configuration.get("styling") or {})
        if condition := kwargs.get("row_condition"):
            params["condition_content"] = parse_row_condition_string(condition)
            template = f"If $condition_content, then {template}"
            badge = {"classes": ["badge", "badge-secondary"]}
            styling["params"] = {**styling.get("params", {}), "condition_content": badge}
        return [RenderedStringTemplateContent(
            content_block_type="string_template",
            string_template={"template": template, "params": params, "styling": styling},
        )]  # fmt: skip


# --- the expectations suites name ---


class ExpectColumnValuesToBeValidResidentId(_Sentence, ColumnMapExpectation):
    """Resident ID numbers (居民身份证号码, GB 11643): region, birth date and check digit."""

    map_metric = "column_values.valid_resident_id"

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        return "values must be valid resident ID numbers (GB 11643)", "值须为有效的公民身份号码（GB 11643）", {}


class ExpectColumnValuesToBeValidUscc(_Sentence, ColumnMapExpectation):
    """Unified social credit codes (统一社会信用代码, GB 32100) with their check character."""

    map_metric = "column_values.valid_uscc"

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        return ("values must be valid unified social credit codes (GB 32100)",
                "值须为有效的统一社会信用代码（GB 32100）", {})  # fmt: skip


class ExpectColumnValuesToBeValidMobile(_Sentence, ColumnMapExpectation):
    """Mainland mobile numbers: 11 digits starting 13-19."""

    map_metric = "column_values.valid_mobile"

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        return ("values must be valid mobile phone numbers (11 digits starting 13-19)",
                "值须为有效的手机号码（11 位，以 13-19 开头）", {})  # fmt: skip


class ExpectColumnValuesToBeValidLandline(_Sentence, ColumnMapExpectation):
    """Landline numbers: optional area code, 7-8 digit number, optional extension."""

    map_metric = "column_values.valid_landline"

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        return ("values must be valid landline numbers (7-8 digits, optional area code and extension)",
                "值须为有效的固定电话号码（7-8 位，可带区号和分机号）", {})  # fmt: skip


class ExpectColumnValuesToNotBeInFuture(_Sentence, ColumnMapExpectation):
    """Dates that are today or earlier (text dates in ``date_format``, a Spark pattern)."""

    date_format: str | None = None
    map_metric = "column_values.not_in_future"
    success_keys: ClassVar[tuple[str, ...]] = ("date_format", "mostly")

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        if kwargs.get("date_format"):
            return ("values must be dates no later than today (text dates as $date_format)",
                    "值须为不晚于今天的日期（文本日期格式 $date_format）", {})  # fmt: skip
        return "values must be dates no later than today", "值须为不晚于今天的日期", {}


class ExpectColumnValuesToBeInCodeTable(_Sentence, ColumnMapExpectation):
    """Values from a code table under include/quality_suites/code_tables/ (代码表): its codes,
    or with ``values: meanings`` the words they stand for."""

    code_table: str
    values: Literal["codes", "meanings"] = "codes"
    map_metric = "column_values.in_code_table"
    success_keys: ClassVar[tuple[str, ...]] = ("code_table", "values", "mostly")

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        if kwargs.get("values") == "meanings":
            return ("values must be names from the code table $code_table",
                    "值须为代码表 $code_table 中的名称", {})  # fmt: skip
        return "values must be codes of the code table $code_table", "值须为代码表 $code_table 中的代码", {}


class ExpectColumnPairValuesToBeCoordinatesInRange(_Sentence, ColumnPairMapExpectation):
    """Longitude (column_A) and latitude (column_B) numeric and inside ``bounds``
    ([lon min, lat min, lon max, lat max], default China's extent)."""

    bounds: list[float] | None = None
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "both_values_are_missing"
    )
    map_metric = "column_pair_values.coordinates_in_range"
    success_keys: ClassVar[tuple[str, ...]] = ("bounds", "ignore_row_if", "mostly")

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        bounds = kwargs.get("bounds")
        x0, y0, x1, y1 = (num_to_str(b, no_scientific=True) for b in bounds or rules.CHINA_BOUNDS)
        params = {"lon_range": f"{x0}-{x1}", "lat_range": f"{y0}-{y1}"}
        en = ("longitude $column_A and latitude $column_B must be numbers within longitude $lon_range "
              "and latitude $lat_range")  # fmt: skip
        zh = "经度 $column_A 和纬度 $column_B 须为数值，且在经度 $lon_range、纬度 $lat_range 范围内"
        if not bounds:
            en, zh = f"{en} (China's extent)", f"{zh}（中国范围）"
        return en, zh, params


class ExpectColumnPairValuesBirthDateToMatchResidentId(_Sentence, ColumnPairMapExpectation):
    """The birth date (column_A) equals the one encoded in the ID number (column_B)."""

    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )
    map_metric = "column_pair_values.birth_date_matches_resident_id"
    success_keys: ClassVar[tuple[str, ...]] = ("ignore_row_if", "mostly")

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        return ("birth date $column_A must equal the birth date in the resident ID number $column_B",
                "出生日期 $column_A 须与公民身份号码 $column_B 中的出生日期一致", {})  # fmt: skip


CUSTOM_TYPES = (
    "expect_column_values_to_be_valid_resident_id",
    "expect_column_values_to_be_valid_uscc",
    "expect_column_values_to_be_valid_mobile",
    "expect_column_values_to_be_valid_landline",
    "expect_column_values_to_not_be_in_future",
    "expect_column_values_to_be_in_code_table",
    "expect_column_pair_values_to_be_coordinates_in_range",
    "expect_column_pair_values_birth_date_to_match_resident_id",
)
