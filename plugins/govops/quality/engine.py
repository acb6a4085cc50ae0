"""Evaluate a whole suite on a Spark DataFrame in a couple of passes, with GX's semantics.

Plain GX computes metrics expectation by expectation (one or more Spark jobs each) and
returns at most 20 sample values per rule. Here a suite is compiled into Spark Columns:

* row rules (every column map and column pair map expectation this module knows, the
  rule library included): an "unexpected" flag and a "considered" flag per rule (GX's
  missing values are not considered), counted by ``count_if`` in one aggregation;
* table and column aggregates (row count, min, max, mean, sum, non-null proportion) in
  that same aggregation; schema rules from the schema, with no pass at all;
* uniqueness: one ``groupBy`` per unique column, the only other pass;
* ``unexpected_rows_expectation`` (Spark SQL over ``{batch}``, for cross-table rules such as
  referential integrity and balances): its query, as GX would run it.

Counts only (``anomalies=None``) is the aggregation plus the group-bys. With an anomaly
list, the flags are computed once in the pass that writes the failing rows (one row per
record and rule), and the counts are observed on that same pass.

Anything else (an expectation type this module does not compile, or one with a
``row_condition``) is run by GX's own Spark engine on the same DataFrame, and
:attr:`Outcome.by_gx` lists them, so the price of each fallback is visible. With an anomaly
list, GX returns every failing row of such a rule (result format ``COMPLETE`` with the
record's key columns), and they join the list like the engine's own.

Every row of the list carries the record in full (``value``, ``record``) and as the
report may show it (``masked_value``, ``masked_record``: the suite's ``sensitive`` columns
through the security services' masking rules). A rule that cannot run (a column the data
does not have, an error inside GX) fails, with its error, and has one row in the list
saying so (``reason`` ``rule error: …``, no record).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from govops.quality import rules as library
from govops.quality.suites import Rule, Suite

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ANOMALY_COLUMNS = ("rule", "dimension", "severity", "column", "value", "reason", "record", "masked_value",
                   "masked_record")
MASKED = "__masked__"  # prefix of a sensitive column's masked copy
# Column map expectations whose condition is a function of the column and the kwargs.
COLUMN_RULES = {
    "expect_column_values_to_be_valid_resident_id": lambda c, k: library.resident_id(c),
    "expect_column_values_to_be_valid_uscc": lambda c, k: library.uscc(c),
    "expect_column_values_to_be_valid_mobile": lambda c, k: library.mobile(c),
    "expect_column_values_to_be_valid_landline": lambda c, k: library.landline(c),
    "expect_column_values_to_not_be_in_future": lambda c, k: library.not_in_future(c, k.get("date_format")),
    "expect_column_values_to_be_in_set": lambda c, k: c.isin(*k["value_set"]),
    "expect_column_values_to_not_be_in_set": lambda c, k: ~c.isin(*k["value_set"]),
    "expect_column_values_to_match_regex": lambda c, k: c.rlike(k["regex"]),
    "expect_column_values_to_not_match_regex": lambda c, k: ~c.rlike(k["regex"]),
    "expect_column_values_to_be_between": lambda c, k: _between(c, k),
    "expect_column_value_lengths_to_be_between": lambda c, k: _between(_length(c), k),
    "expect_column_value_lengths_to_equal": lambda c, k: _length(c) == k["value"],
}
PAIR_RULES = {
    "expect_column_pair_values_to_be_coordinates_in_range": lambda a, b, k: library.coordinates_in_range(
        a, b, k.get("bounds")),
    "expect_column_pair_values_birth_date_to_match_resident_id": lambda a, b, k: library.birth_date_matches_id(a, b),
    "expect_column_pair_values_to_be_equal": lambda a, b, k: a.eqNullSafe(b),
    "expect_column_pair_values_a_to_be_greater_than_b": lambda a, b, k: (a >= b) if k.get("or_equal") else (a > b),
}  # fmt: skip
PAIR_IGNORE_DEFAULT = {
    "expect_column_pair_values_birth_date_to_match_resident_id": "either_value_is_missing",
}
AGGREGATES = {  # type -> the aggregate whose value must lie between min_value and max_value
    "expect_column_min_to_be_between": "min",
    "expect_column_max_to_be_between": "max",
    "expect_column_mean_to_be_between": "avg",
    "expect_column_sum_to_be_between": "sum",
    "expect_column_proportion_of_non_null_values_to_be_between": "non_null_proportion",
    "expect_table_row_count_to_be_between": "count",
    "expect_table_row_count_to_equal": "count",
}
SCHEMA_RULES = ("expect_column_to_exist", "expect_table_columns_to_match_set")
UNIQUE_RULES = ("expect_column_values_to_be_unique",)
QUERY_RULES = ("unexpected_rows_expectation",)


def _length(c: Column) -> Column:
    from pyspark.sql import functions as F

    return F.length(c)


def _between(c: Column, k: dict[str, Any]) -> Column:
    from pyspark.sql import functions as F

    cond = F.lit(True)
    low, high = k.get("min_value"), k.get("max_value")
    if low is not None:
        cond = cond & ((c > low) if k.get("strict_min") else (c >= low))
    if high is not None:
        cond = cond & ((c < high) if k.get("strict_max") else (c <= high))
    return cond


@dataclass
class RuleResult:
    """One rule's figures, in GX's terms."""

    rule: Rule
    success: bool
    element_count: int = 0
    missing_count: int = 0
    unexpected_count: int = 0
    observed_value: Any = None
    partial_unexpected_list: list[Any] = field(default_factory=list)
    evaluated_by: str = "single-pass"  # single-pass / group-by / schema / query / great_expectations
    exception: str | None = None  # the rule could not run: why
    traceback: str | None = None


@dataclass
class Outcome:
    rows: int
    results: list[RuleResult]
    anomaly_rows: int | None = None  # rows failing at least one row rule (with an anomaly list)
    anomalies_written: int | None = None  # anomaly list rows: one per (record, rule)
    by_gx: list[str] = field(default_factory=list)
    passes: int = 0


def _value(columns: list[Column]) -> Column:
    """The anomaly list's ``value``: the rule's column as text, or its columns joined by commas."""
    from pyspark.sql import functions as F

    if len(columns) == 1:
        return columns[0].cast("string")
    return F.concat_ws(",", *[c.cast("string") for c in columns])


def _compiled(rule: Rule, date_columns: frozenset[str] = frozenset()) -> tuple[Column, Column] | None:
    """(considered, unexpected) of a row rule, or None when it is not a row rule.
    ``date_columns``: the data's columns of Spark's DateType."""
    from pyspark.sql import functions as F

    k = rule.kwargs
    if k.get("row_condition"):
        return None
    if rule.type in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null"):
        c = F.col(k["column"])
        unexpected = c.isNull() if rule.type.endswith("not_be_null") else c.isNotNull()
        return F.lit(True), unexpected
    if rule.type in COLUMN_RULES or rule.type == "expect_column_values_to_be_in_code_table":
        c = F.col(k["column"])
        if (rule.type == "expect_column_values_to_not_be_in_future" and k["column"] in date_columns
                and not k.get("date_format")):
            # The rule library reads the value as text (cast to string, parsed back), which for a
            # DateType value gives back the same date, over the whole range Spark holds: compare
            # the date itself, the same verdict without formatting and parsing every value.
            expected = c <= F.lit(library.today())
        elif rule.type in COLUMN_RULES:
            expected = COLUMN_RULES[rule.type](c, k)
        else:
            expected = library.in_code_table(c, k["code_table"], k.get("values", "codes"))
        return c.isNotNull(), F.coalesce(~expected, F.lit(False)) & c.isNotNull()
    if rule.type in PAIR_RULES:
        a, b = F.col(k["column_A"]), F.col(k["column_B"])
        ignore = k.get("ignore_row_if", PAIR_IGNORE_DEFAULT.get(rule.type, "both_values_are_missing"))
        considered = {
            "both_values_are_missing": ~(a.isNull() & b.isNull()),
            "either_value_is_missing": a.isNotNull() & b.isNotNull(),
            "neither": F.lit(True),
        }[ignore]
        unexpected = considered & F.coalesce(~PAIR_RULES[rule.type](a, b, k), F.lit(False))
        return considered, unexpected
    return None


def _aggregate(rule: Rule) -> Column | None:
    from pyspark.sql import functions as F

    kind = AGGREGATES.get(rule.type)
    if kind is None or rule.kwargs.get("row_condition"):
        return None
    if kind == "count":
        return F.count(F.lit(1))
    c = F.col(rule.kwargs["column"])
    if kind == "non_null_proportion":
        return F.count(c) / F.count(F.lit(1))
    return {"min": F.min, "max": F.max, "avg": F.avg, "sum": F.sum}[kind](c)


def _bound(value: Any, bound: Any) -> Any:
    """A suite's bound in the aggregate's type: ISO text for a date or a timestamp."""
    import datetime

    if isinstance(bound, str) and isinstance(value, datetime.date):
        return type(value).fromisoformat(bound)
    return bound


def _in_range(value: Any, k: dict[str, Any]) -> bool:
    if value is None:
        return False
    if "value" in k:  # *_to_equal
        return value == k["value"]
    low, high = _bound(value, k.get("min_value")), _bound(value, k.get("max_value"))
    if low is not None and (value <= low if k.get("strict_min") else value < low):
        return False
    return not (high is not None and (value >= high if k.get("strict_max") else value > high))


def _mostly(considered: int, unexpected: int, mostly: float | None) -> bool:
    if considered == 0:
        return True
    return (considered - unexpected) / considered >= (1.0 if mostly is None else mostly)


def _measures(flags: list[tuple[Column, Column]], aggregates: list[tuple[Rule, Column]]) -> list[Column]:
    """The one aggregation: rows, then per row rule its considered and unexpected rows (from
    its (considered, unexpected) flags), then the aggregates."""
    from pyspark.sql import functions as F

    measures = [F.count(F.lit(1)).alias("__rows")]
    for i, (considered, unexpected) in enumerate(flags):
        measures += [F.count_if(considered).alias(f"__c{i}"), F.count_if(unexpected).alias(f"__u{i}")]
    return measures + [agg.alias(f"__a{i}") for i, (_, agg) in enumerate(aggregates)]


def evaluate(df: DataFrame, suite: Suite, anomalies: str | None = None) -> Outcome:
    """Evaluate ``suite`` on ``df``; with ``anomalies`` (a Parquet URI), also write the
    anomaly list there: one row per failing (record, rule), with the record as JSON of the
    suite's key columns (or of every column), in full and masked."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType

    columns = df.columns
    date_columns = frozenset(f.name for f in df.schema.fields if isinstance(f.dataType, DateType))
    results: dict[str, RuleResult] = {}
    row_rules: list[tuple[Rule, Column, Column]] = []
    aggregates: list[tuple[Rule, Column]] = []
    unique: list[Rule] = []
    queries: list[Rule] = []
    fallback: list[Rule] = []
    for rule in suite.rules:
        missing = [c for c in rule.columns if c not in columns]
        if missing and rule.type != "expect_column_to_exist":
            problem = f"no column(s) {', '.join(missing)} in the data"
            results[rule.name] = RuleResult(rule, False, evaluated_by="schema", exception=problem,
                                            traceback=f"{rule.name}: {problem} (columns: {', '.join(columns)})")
        elif rule.type in SCHEMA_RULES:
            results[rule.name] = _schema(rule, columns)
        elif (compiled := _compiled(rule, date_columns)) is not None:
            row_rules.append((rule, *compiled))
        elif (agg := _aggregate(rule)) is not None:
            aggregates.append((rule, agg))
        elif rule.type in UNIQUE_RULES and not rule.kwargs.get("row_condition"):
            unique.append(rule)
        elif rule.type in QUERY_RULES:
            queries.append(rule)
        else:
            fallback.append(rule)

    passes = 0
    dup_counts: dict[str, tuple[int, int]] = {}  # counts only: (considered, unexpected) per unique rule
    dup_keys: list[DataFrame] = []  # with an anomaly list: the duplicated values, joined to flag their rows
    for i, rule in enumerate(unique):  # the group-by pass(es)
        c = rule.kwargs["column"]
        counted = df.where(F.col(c).isNotNull()).groupBy(c).agg(F.count(F.lit(1)).alias("__n"))
        if anomalies is None:
            figures = counted.agg(F.sum("__n").alias("considered"),
                                  F.sum(F.when(F.col("__n") > 1, F.col("__n"))).alias("unexpected")).first()
            dup_counts[rule.name] = (int(figures["considered"] or 0), int(figures["unexpected"] or 0))
        else:
            # Not cached: it is read once, by the broadcast join below, and a cached plan keeps
            # all spark.sql.shuffle.partitions (AQE does not coalesce it).
            dup_keys.append(counted.where(F.col("__n") > 1).select(F.col(c).alias(f"__dupkey{i}"),
                                                                    F.lit(True).alias(f"__dup{i}")))  # fmt: skip
        passes += 1

    outcome = Outcome(rows=0, results=[])
    keep = suite.key or columns
    if anomalies is None:
        figures = df.agg(*_measures([(c, u) for _, c, u in row_rules], aggregates)).first().asDict()
        passes += 1
    else:
        flagged = df
        for i, (rule, dup) in enumerate(zip(unique, dup_keys, strict=True)):
            flagged = flagged.join(F.broadcast(dup), F.col(rule.kwargs["column"]) == F.col(f"__dupkey{i}"), "left")
            considered = F.col(rule.kwargs["column"]).isNotNull()
            unexpected = F.col(f"__dup{i}").isNotNull()
            row_rules.append((rule, considered, unexpected))
        # Each rule's flags once per row, in a projection; the counts observed on those flags;
        # only the rows failing a rule go on to the anomaly list. (No higher-order function
        # such as F.filter: it has no code generation, so every rule beneath it would be
        # evaluated interpreted, row by row.)
        marked = flagged.select("*", *[flag for i, (_, considered, unexpected) in enumerate(row_rules) for flag in
                                       (considered.alias(f"__considered{i}"), unexpected.alias(f"__failed{i}"))])
        failed = [F.col(f"__failed{i}") for i in range(len(row_rules))]
        any_failed = functools.reduce(lambda a, b: a | b, failed, F.lit(False))
        measures = _measures([(F.col(f"__considered{i}"), failed[i]) for i in range(len(row_rules))], aggregates)
        measures.append(F.count_if(any_failed).alias("__anomaly_rows"))
        observed = Observation("quality")
        # Only the failing rows are masked (the report's view), in the same pass.
        failing = _with_masked(marked.observe(observed, *measures).where(any_failed), suite)
        failures = F.array(*[F.when(flag, _failure(rule, suite)) for flag, (rule, _, _) in
                             zip(failed, row_rules, strict=True)])  # fmt: skip
        rows = (failing
                .select(F.explode(failures).alias("f"), *_records(keep, suite))
                .where(F.col("f").isNotNull())
                .select(*[f"f.{c}" for c in ANOMALY_COLUMNS if "record" not in c], "record", "masked_record")
                .select(*ANOMALY_COLUMNS))  # fmt: skip
        rows.write.mode("overwrite").parquet(anomalies)
        passes += 1
        figures = observed.get
        outcome.anomaly_rows = int(figures["__anomaly_rows"])
        outcome.anomalies_written = int(sum(figures[f"__u{i}"] for i in range(len(row_rules))))

    total = int(figures["__rows"])
    outcome.rows = total
    for i, (rule, _, _) in enumerate(row_rules):
        considered, unexpected = int(figures[f"__c{i}"]), int(figures[f"__u{i}"])
        results[rule.name] = RuleResult(
            rule, _mostly(considered, unexpected, rule.kwargs.get("mostly")), element_count=total,
            missing_count=total - considered, unexpected_count=unexpected,
            evaluated_by="group-by" if rule in unique else "single-pass")  # fmt: skip
    for rule in unique:
        if anomalies is None:
            considered, unexpected = dup_counts[rule.name]
            results[rule.name] = RuleResult(
                rule, _mostly(considered, unexpected, rule.kwargs.get("mostly")), element_count=total,
                missing_count=total - considered, unexpected_count=unexpected, evaluated_by="group-by")  # fmt: skip
    for i, (rule, _) in enumerate(aggregates):
        value = figures[f"__a{i}"]
        value = float(value) if isinstance(value, Decimal) else value
        results[rule.name] = RuleResult(rule, _in_range(value, rule.kwargs), element_count=total,
                                        observed_value=value)  # fmt: skip
    for rule in queries:
        results[rule.name] = _query(df, rule, suite, total, anomalies)
        if anomalies is not None:
            outcome.anomalies_written = (outcome.anomalies_written or 0) + results[rule.name].unexpected_count
        passes += 1
    if fallback:
        found, listed = _with_gx(df, suite, fallback, total, keep if anomalies is not None else None)
        results.update(found)
        outcome.by_gx = [r.name for r in fallback]
        if anomalies is not None and listed is not None:
            outcome.anomalies_written = (outcome.anomalies_written or 0) + _append_gx_rows(
                df, listed, suite, keep, anomalies, [r.name for r, _, _ in row_rules], outcome)
    outcome.results = [results[r.name] for r in suite.rules]
    if anomalies is not None:
        errors = [r for r in outcome.results if r.exception]
        if errors:  # a rule that could not run says so in the list too
            error_rows = [(r.rule.name, r.rule.dimension, r.rule.severity, ",".join(r.rule.columns), None,
                           f"rule error: {r.exception}", None, None, None) for r in errors]  # fmt: skip
            schema = ", ".join(f"{c} string" for c in ANOMALY_COLUMNS)
            df.sparkSession.createDataFrame(error_rows, schema).write.mode("append").parquet(anomalies)
            outcome.anomalies_written = (outcome.anomalies_written or 0) + len(errors)
    outcome.passes = passes
    return outcome


def _with_masked(df: DataFrame, suite: Suite) -> DataFrame:
    """``df`` with a masked copy ``__masked__<c>`` of each of the suite's sensitive columns it
    has, by the security services' masking (the rules need no key)."""
    from pyspark.sql import functions as F

    from govops.security.masking import ColumnRule, Policy, mask_dataframe

    present = [c for c in suite.sensitive if c in df.columns]
    if not present:
        return df
    copied = df.select("*", *[F.col(f"`{c}`").alias(MASKED + c) for c in present])
    rules = [ColumnRule(c, "keep") for c in df.columns]
    for c in present:
        raw = suite.sensitive[c]
        rules.append(ColumnRule(MASKED + c, raw["rule"], {k: v for k, v in raw.items() if k != "rule"}))
    policy = Policy(f"quality:{suite.name}", suite.dataset, "report", "", tuple(rules))
    return mask_dataframe(copied, policy, None)


def _failure(rule: Rule, suite: Suite) -> Column:
    """One rule's entry in a failing row's list: the rule, its value in full and masked."""
    from pyspark.sql import functions as F

    masked = [F.col(f"`{MASKED + c}`") if c in suite.sensitive else F.col(f"`{c}`") for c in rule.columns]
    return F.struct(F.lit(rule.name).alias("rule"), F.lit(rule.dimension).alias("dimension"),
                    F.lit(rule.severity).alias("severity"), F.lit(",".join(rule.columns)).alias("column"),
                    _value([F.col(f"`{c}`") for c in rule.columns]).alias("value"),
                    F.lit(_reason(rule)).alias("reason"), _value(masked).alias("masked_value"))  # fmt: skip


def _records(keep: list[str], suite: Suite) -> list[Column]:
    """The record as JSON of the ``keep`` columns, in full and masked (its masked copies exist
    for every sensitive column of ``keep``: :func:`_with_masked` ran on these rows)."""
    from pyspark.sql import functions as F

    masked = [F.col(f"`{MASKED + c}`").alias(c) if c in suite.sensitive else F.col(f"`{c}`") for c in keep]
    return [F.to_json(F.struct(*[F.col(f"`{c}`") for c in keep])).alias("record"),
            F.to_json(F.struct(*masked)).alias("masked_record")]  # fmt: skip


def _reason(rule: Rule) -> str:
    """The anomaly list's reason: the rule's description, or what it expects in words."""
    if rule.description:
        return rule.description
    if rule.type in QUERY_RULES:
        return "returned by the rule's query of unexpected rows"
    k = {key: v for key, v in rule.kwargs.items() if key not in ("column", "column_A", "column_B", "mostly")}
    words = rule.type.removeprefix("expect_").replace("_", " ")
    return f"{words} {k}" if k else words


def _schema(rule: Rule, columns: list[str]) -> RuleResult:
    k = rule.kwargs
    if rule.type == "expect_column_to_exist":
        return RuleResult(rule, k["column"] in columns, observed_value=k["column"] in columns, evaluated_by="schema")
    wanted = set(k["column_set"])
    ok = wanted == set(columns) if k.get("exact_match", True) else wanted <= set(columns)
    return RuleResult(rule, ok, observed_value=sorted(columns), evaluated_by="schema")


def _query(df: DataFrame, rule: Rule, suite: Suite, total: int, anomalies: str | None) -> RuleResult:
    """An unexpected_rows_expectation: its Spark SQL with {batch} as a view of the data. With
    an anomaly list, the query's rows join it (appended, counted on the pass that writes)."""
    import uuid

    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    view = f"govops_batch_{uuid.uuid4().hex[:8]}"
    df.createOrReplaceTempView(view)
    try:
        found = df.sparkSession.sql(rule.kwargs["unexpected_rows_query"].replace("{batch}", view))
        if anomalies is None:
            unexpected = found.count()
        else:
            counted = Observation(f"query_{view}")
            fields = {"rule": rule.name, "dimension": rule.dimension, "severity": rule.severity,
                      "column": ",".join(rule.columns), "value": None, "reason": _reason(rule)}  # fmt: skip
            keep = found.columns
            (_with_masked(found.observe(counted, F.count(F.lit(1)).alias("rows")), suite)
             .select(*[F.lit(v).cast("string").alias(k) for k, v in fields.items()], *_records(keep, suite),
                     F.lit(None).cast("string").alias("masked_value"))
             .select(*ANOMALY_COLUMNS)
             .write.mode("append").parquet(anomalies))  # fmt: skip
            unexpected = int(counted.get["rows"])
    finally:
        df.sparkSession.catalog.dropTempView(view)
    return RuleResult(rule, unexpected == 0, element_count=total, unexpected_count=unexpected,
                      observed_value=unexpected, evaluated_by="query")  # fmt: skip


def _with_gx(df: DataFrame, suite: Suite, fallback: list[Rule], total: int, keep: list[str] | None
             ) -> tuple[dict[str, RuleResult], list[tuple[Rule, list[dict[str, Any]]]] | None]:  # fmt: skip
    """The rules this module does not compile, by GX's Spark engine on the same DataFrame.
    With ``keep`` (an anomaly list is wanted), GX also returns every failing row of each map
    rule (result format COMPLETE, indexed by the ``keep`` columns): (rule, rows) per rule."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    import govops.quality.expectations  # noqa: F401

    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_spark("govops").add_dataframe_asset("data")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df}))  # fmt: skip
    found: dict[str, RuleResult] = {}
    listed: list[tuple[Rule, list[dict[str, Any]]]] = []
    documents = {r.name: d for r, d in zip(suite.rules, suite.document["expectations"], strict=True)}
    for rule in fallback:
        doc = documents[rule.name]
        expectation = get_expectation_impl(rule.type)(**doc["kwargs"])
        if keep is None:
            result = batch.validate(expectation)
        else:
            index = list(dict.fromkeys([*keep, *rule.columns]))
            result = batch.validate(expectation, result_format={"result_format": "COMPLETE",
                                                                "unexpected_index_column_names": index})
        r = result.result or {}
        info = result.exception_info or {}
        error = tb = None
        if info.get("raised_exception"):
            error = str(info.get("exception_message") or "GX raised an exception")
            tb = str(info.get("exception_traceback") or error)
        found[rule.name] = RuleResult(
            rule, bool(result.success) and not error, element_count=int(r.get("element_count", total) or 0),
            missing_count=int(r.get("missing_count", 0) or 0), unexpected_count=int(r.get("unexpected_count", 0) or 0),
            observed_value=r.get("observed_value"), partial_unexpected_list=list(r.get("partial_unexpected_list", [])),
            evaluated_by="great_expectations", exception=error, traceback=tb)  # fmt: skip
        if keep is not None and "unexpected_index_list" in r:  # a map rule: its rows
            rows = list(r["unexpected_index_list"])
            if len(rows) != found[rule.name].unexpected_count:
                raise RuntimeError(f"{rule.name}: GX counted {found[rule.name].unexpected_count} unexpected rows "
                                   f"and returned {len(rows)}")  # fmt: skip
            listed.append((rule, rows))
    return found, (listed if keep is not None else None)


def _append_gx_rows(df: DataFrame, listed: list[tuple[Rule, list[dict[str, Any]]]], suite: Suite, keep: list[str],
                    anomalies: str, engine_rules: list[str], outcome: Outcome) -> int:  # fmt: skip
    """Append the failing rows GX returned to the anomaly list, built and masked like the
    engine's own (from rows of the data's own types); records failing only GX's rules are
    added to ``outcome.anomaly_rows`` (merged with the engine's by the record). Returns the
    rows appended."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    spark = df.sparkSession
    written = 0
    gx_records: DataFrame | None = None
    for rule, rows in listed:
        if not rows:
            continue
        index = list(dict.fromkeys([*keep, *rule.columns]))
        schema = StructType([df.schema[c] for c in index])
        found = _with_masked(spark.createDataFrame([tuple(row.get(c) for c in index) for row in rows], schema), suite)
        entries = (found.select(_failure(rule, suite).alias("f"), *_records(keep, suite))
                   .select(*[f"f.{c}" for c in ANOMALY_COLUMNS if "record" not in c], "record", "masked_record")
                   .select(*ANOMALY_COLUMNS))  # fmt: skip
        entries.write.mode("append").parquet(anomalies)
        written += len(rows)
        gx_records = entries.select("record") if gx_records is None else gx_records.union(entries.select("record"))
    if gx_records is not None:
        engine_records = spark.read.parquet(anomalies).where(F.col("rule").isin(*engine_rules)).select("record")
        outcome.anomaly_rows = (outcome.anomaly_rows or 0) + gx_records.distinct().join(
            engine_records.distinct(), "record", "left_anti").count()
    return written
