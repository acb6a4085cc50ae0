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
"""

# This module is GX: it is imported only where GX runs, never by DAG files.
# ruff: noqa: TID253

from __future__ import annotations

from typing import Any, ClassVar, Literal

from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, ColumnPairMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)

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


# --- the expectations suites name ---


class ExpectColumnValuesToBeValidResidentId(ColumnMapExpectation):
    """Resident ID numbers (居民身份证号码, GB 11643): region, birth date and check digit."""

    map_metric = "column_values.valid_resident_id"


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Unified social credit codes (统一社会信用代码, GB 32100) with their check character."""

    map_metric = "column_values.valid_uscc"


class ExpectColumnValuesToBeValidMobile(ColumnMapExpectation):
    """Mainland mobile numbers: 11 digits starting 13-19."""

    map_metric = "column_values.valid_mobile"


class ExpectColumnValuesToBeValidLandline(ColumnMapExpectation):
    """Landline numbers: optional area code, 7-8 digit number, optional extension."""

    map_metric = "column_values.valid_landline"


class ExpectColumnValuesToNotBeInFuture(ColumnMapExpectation):
    """Dates that are today or earlier (text dates in ``date_format``, a Spark pattern)."""

    date_format: str | None = None
    map_metric = "column_values.not_in_future"
    success_keys: ClassVar[tuple[str, ...]] = ("date_format", "mostly")


class ExpectColumnValuesToBeInCodeTable(ColumnMapExpectation):
    """Values from a code table under include/quality_suites/code_tables/ (代码表): its codes,
    or with ``values: meanings`` the words they stand for."""

    code_table: str
    values: Literal["codes", "meanings"] = "codes"
    map_metric = "column_values.in_code_table"
    success_keys: ClassVar[tuple[str, ...]] = ("code_table", "values", "mostly")


class ExpectColumnPairValuesToBeCoordinatesInRange(ColumnPairMapExpectation):
    """Longitude (column_A) and latitude (column_B) numeric and inside ``bounds``
    ([lon min, lat min, lon max, lat max], default China's extent)."""

    bounds: list[float] | None = None
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "both_values_are_missing"
    )
    map_metric = "column_pair_values.coordinates_in_range"
    success_keys: ClassVar[tuple[str, ...]] = ("bounds", "ignore_row_if", "mostly")


class ExpectColumnPairValuesBirthDateToMatchResidentId(ColumnPairMapExpectation):
    """The birth date (column_A) equals the one encoded in the ID number (column_B)."""

    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )
    map_metric = "column_pair_values.birth_date_matches_resident_id"
    success_keys: ClassVar[tuple[str, ...]] = ("ignore_row_if", "mostly")


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
