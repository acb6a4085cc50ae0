"""Cleansing of extracted rows, shared by the batch, collection and stream jobs.

Readers hand over every column as read plus two bookkeeping columns: ``_govops_source``
(where the row came from: file, sheet and row) and, optionally, ``_govops_read_error``
(why the reader could not make a record of it). :func:`cleanse` adds the spec's rules and
splits the rows into good and rejected; nothing is dropped, so read = good + rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from govops.pipelines.spec import PipelineSpec

REASON = "_govops_reason"
LOCATION = "_govops_source"
READ_ERROR = "_govops_read_error"
CORRUPT = "_corrupt_record"  # Spark's column for lines its CSV/JSON/XML readers cannot parse


def typed(df: DataFrame, columns: dict[str, str]) -> tuple[DataFrame, list[Column]]:
    """Cast string columns to the declared Spark SQL types with ``try_cast``.

    Returns the frame with the cast values and one reason expression per column for the
    values that do not cast, quoting the value (the original stays in the reject record).
    """
    from pyspark.sql import functions as F

    reasons = []
    for name, kind in columns.items():
        if kind.lower() == "string":
            continue
        raw = f"__raw_{name}"
        df = df.withColumnRenamed(name, raw).withColumn(name, F.expr(f"try_cast(`{raw}` AS {kind})"))
        reasons.append(
            F.when(
                F.col(raw).isNotNull() & (F.trim(F.col(raw)) != "") & F.col(name).isNull(),
                F.concat(F.lit(f"{name} is not a {kind}: "), F.substring(F.col(raw), 1, 80)),
            )
        )
    return df, reasons


def cleanse(
    df: DataFrame, spec: PipelineSpec, extra_reasons: list[Column] | None = None
) -> tuple[DataFrame, DataFrame]:
    """(good, rejected), both lazy. The first failing rule is a row's reason."""
    flagged = flag(df, spec, extra_reasons)
    return good_rows(flagged, spec), rejected_rows(flagged)


def flag(df: DataFrame, spec: PipelineSpec, extra_reasons: list[Column] | None = None) -> DataFrame:
    """Every row with the spec's rules applied and its reason (``REASON``, null for a good
    row); :func:`good_rows` and :func:`rejected_rows` split it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    c = spec.cleansing
    reasons: list[Column] = []
    if READ_ERROR in df.columns:
        reasons.append(F.col(READ_ERROR))
    if CORRUPT in df.columns:
        reasons.append(F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed record")))
    reasons.extend(extra_reasons or [])
    if spec.watermark is not None:
        # A row without a watermark belongs to no load's range: kept as a reject, once
        # (extract.py reads such rows only until a committed run has rejected them).
        mark = spec.watermark.column
        reasons.append(F.when(F.col(mark).isNull(), F.lit(null_watermark_reason(mark))))
    for name in c.trim:
        df = df.withColumn(name, F.trim(F.col(name)))
    for name in c.required:
        reasons.append(F.when(F.col(name).isNull() | (F.col(name).cast("string") == ""), F.lit(f"missing {name}")))
    for name, limit in c.max_lengths.items():
        length = F.length(F.col(name).cast("string"))
        reasons.append(F.when(length > limit, F.concat(F.lit(f"{name} longer than {limit} characters: "),
                                                       length.cast("string"))))  # fmt: skip
    for name, pattern in c.date_formats.items():
        parsed = F.try_to_timestamp(F.col(name).cast("string"), F.lit(pattern)).cast("date")
        reasons.append(F.when(F.col(name).isNotNull() & parsed.isNull(),
                              F.concat(F.lit(f"{name} is not a date as {pattern}: "), F.col(name).cast("string"))))
        df = df.withColumn(f"__parsed_{name}", parsed)
    for name, kind in c.casts.items():
        cast = F.expr(f"try_cast(`{name}` AS {kind})")
        reasons.append(F.when(F.col(name).isNotNull() & cast.isNull(),
                              F.concat(F.lit(f"{name} does not cast to {kind}: "), F.col(name).cast("string"))))
        df = df.withColumn(f"__cast_{name}", cast)  # fmt: skip
    reason = F.coalesce(*reasons) if reasons else F.lit(None).cast("string")
    if c.dedupe_keys:
        # Only rows that passed every other rule are ranked: a rejected row never makes a
        # valid one its duplicate. A deterministic order, so that every pass over the source
        # keeps the same row: the source location, then all columns (rows that tie are identical).
        order = ([F.col(LOCATION)] if LOCATION in df.columns else []) + [F.col(x) for x in sorted(df.columns)]
        passed = reason.isNull()
        first = F.row_number().over(Window.partitionBy(passed, *c.dedupe_keys).orderBy(*order)) == 1
        keys = ", ".join(c.dedupe_keys)
        reason = F.coalesce(reason, F.when(~first, F.lit(f"duplicate of an earlier row with the same {keys}")))
    return df.withColumn(REASON, reason)


def null_watermark_reason(column: str) -> str:
    return f"{column} (watermark) is null"


def cleansed(spec: PipelineSpec) -> dict[str, str]:
    """Column -> the column of :func:`flag` that holds its cleansed value, for the columns
    whose value a rule changes (date formats, casts)."""
    c = spec.cleansing
    return {name: f"__parsed_{name}" for name in c.date_formats} | {name: f"__cast_{name}" for name in c.casts}


def good_rows(flagged: DataFrame, spec: PipelineSpec) -> DataFrame:
    """The rows without a reason, with their cleansed values and the source's columns."""
    from pyspark.sql import functions as F

    good = flagged.where(F.col(REASON).isNull())
    for name, value in cleansed(spec).items():
        good = good.withColumn(name, F.col(value)).drop(value)
    helpers = [x for x in good.columns if x.startswith("__raw_")]
    return good.drop(REASON, CORRUPT, READ_ERROR, *helpers)


def rejected_rows(flagged: DataFrame) -> DataFrame:
    """The rows with a reason: (reason, source_location, record). The record is the row as
    it arrived: raw values, not the failed casts."""
    from pyspark.sql import functions as F

    payload = [
        F.col(x).alias(x[len("__raw_") :]) if x.startswith("__raw_") else F.col(x)
        for x in flagged.columns
        if x not in (REASON, LOCATION, READ_ERROR)
        and not (x.startswith("__") and not x.startswith("__raw_"))
        and f"__raw_{x}" not in flagged.columns
    ]
    return flagged.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"),
        (F.col(LOCATION) if LOCATION in flagged.columns else F.lit(None).cast("string")).alias("source_location"),
        F.to_json(F.struct(*payload)).alias("record"),
    )
