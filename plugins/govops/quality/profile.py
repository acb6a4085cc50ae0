"""A dataset's profile, and a quality suite suggested from it as a starting point that a
person then reviews and edits (GX 1.x dropped its profilers and onboarding assistant).

``profile(df)`` reads the data in one Spark aggregation: per column its type, rows, nulls,
approximate distinct values, min / max (numbers, dates, timestamps), min / max string
length, and the share of non-null values each detector of the rule library accepts
(resident ID, USCC, mobile, landline, not in the future), all counted with ``count_if``.
One more small query collects the values of low-cardinality string columns (≤ 20).

``suggest_suite(profile, name=..., dataset=...)`` turns it into a suite document that
``suites.parse`` accepts: every generated expectation carries ``meta.generated: true`` and
a ``meta.description`` (Chinese / English) saying what was observed, so the reviewer knows
what each rule rests on; ``meta.notes`` says when and from how many rows.

    ./dev python -m govops.quality.profile raw/frontdb/public_security/persons \\
        --name public_security_persons.ingestion [--side ingestion] [--out FILE] [--force]

The source is a lake dataset path relative to the lake root (``govops.settings.lake_root()``)
or a Parquet path / URI; the suite goes to ``include/quality_suites/<name>.json`` unless
``--out`` says otherwise, and an existing file is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govops.quality import rules, suites

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

DISTINCT_RSD = 0.02  # approx_count_distinct's relative standard deviation
TOP_VALUES_MAX = 20  # string columns with at most this many distinct values get their values listed
DETECTOR_SHARE = 0.95  # a library rule is suggested when this share of non-null values passes it
FEW_NULLS = 0.05  # not_be_null up to this null share (with ``mostly`` above 1%)
UNIQUE_SHARE = 0.95  # approx distinct / non-null rows from which a key-named column looks unique
PREFIX_MIN_ROWS = 20  # a common prefix is suggested only from this many values on
PREFIX_MAX = 12
THRESHOLDS = {"pass": 99.0, "warn": 95.0}
BOOKKEEPING = "_govops_"  # columns the pipelines add (run id, source location): profiled, given no rules

NUMERIC = ("integer", "number")
TEMPORAL = ("date", "timestamp")
# detector -> (the column kinds it is counted on, the library condition on the value as text)
DETECTORS: dict[str, tuple[tuple[str, ...], Any]] = {
    "resident_id": (("string",), rules.resident_id),
    "uscc": (("string",), rules.uscc),
    "mobile": (("string", "integer"), rules.mobile),
    "landline": (("string", "integer"), rules.landline),
    "not_in_future": (("string", *TEMPORAL), lambda c: rules.not_in_future(c)),
}
# detector -> (expectation type, dimension, severity, 中文, English)
DETECTOR_RULES = {
    "resident_id": ("expect_column_values_to_be_valid_resident_id", "accuracy", "critical",
                    "身份证号码校验（GB 11643）", "valid resident ID number (GB 11643)"),
    "uscc": ("expect_column_values_to_be_valid_uscc", "accuracy", "critical",
             "统一社会信用代码校验（GB 32100）", "valid unified social credit code (GB 32100)"),
    "mobile": ("expect_column_values_to_be_valid_mobile", "conformity", "warning",
               "手机号码格式", "mobile number format"),
    "landline": ("expect_column_values_to_be_valid_landline", "conformity", "warning",
                 "固定电话格式", "landline number format"),
}  # fmt: skip
PHONE_REGEX = f"^({rules.MOBILE_REGEX.strip('^$')}|{rules.LANDLINE_REGEX.strip('^$')})$"

# Column names (lower-cased) the heuristics look at.
KEY_NAME = re.compile(r"^(id|uuid|guid|pk|key)$|(^|_)(id|uuid|guid|no|code)$|id_?(number|no|card)"
                      r"|编号|编码|代码|主键|证号|序号")
PRIMARY_NAME = re.compile(r"^(id|uuid|guid|pk|主键|编号|序号)$")
LABEL_NAME = re.compile(r"^(name|姓名|名称)$|_name$")
DATE_NAME = re.compile(r"date|_at$|time|_dt$|^dt$|日期|时间")
TIMELY_NAME = re.compile(r"updat|modif|creat|insert|load|sync|_at$|time|更新|修改|创建|入库|同步|采集|时间")
BIRTH_NAME = re.compile(r"birth|dob|出生|生日")
LON_NAME = re.compile(r"^(lon|lng|long|longitude|经度|x_?coord)$|_(lon|lng)$|longitude|经度")
LAT_NAME = re.compile(r"^(lat|latitude|纬度|y_?coord)$|_lat$|latitude|纬度")


# --- the profile ---


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _kind(dtype: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(dtype, T.ByteType | T.ShortType | T.IntegerType | T.LongType):
        return "integer"
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        return "number"
    if isinstance(dtype, T.DateType):
        return "date"
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return "timestamp"
    if isinstance(dtype, T.StringType | T.CharType | T.VarcharType):
        return "string"
    if isinstance(dtype, T.BooleanType):
        return "boolean"
    return "other"


def _plain(value: Any) -> Any:
    """A JSON-friendly figure: dates as ISO text, decimals as numbers, no NaN."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _common_prefix(low: str | None, high: str | None) -> str:
    """The prefix all values share: that of the smallest and the largest (sorted order)."""
    if low is None or high is None:
        return ""
    n = 0
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        n += 1
    return low[:n]


def profile(df: DataFrame) -> dict[str, Any]:
    """The profile of ``df``: one aggregation over the data (approximate distinct counts
    included), and one small query for the values of low-cardinality string columns.

    The columns are stacked (one entry per row and column, grouped by column), so each
    detector is one expression in the plan however wide the table: a plan of per-column
    copies grows with the columns and takes minutes to compile on a wide table."""
    from pyspark.sql import functions as F

    fields = [(f.name, f.dataType.simpleString(), _kind(f.dataType)) for f in df.schema.fields]

    def entry(i: int, name: str, kind: str) -> Column:
        c = _col(name)

        def as_(wanted: bool, to: str) -> Column:
            return c.cast(to) if wanted else F.lit(None).cast(to)

        return F.struct(F.lit(i).alias("i"), c.isNotNull().alias("present"), as_(kind != "other", "string").alias("s"),
                        as_(kind == "integer", "long").alias("l"), as_(kind == "number", "double").alias("d"),
                        as_(kind in TEMPORAL, "timestamp").alias("t"))  # fmt: skip

    def only(kinds: tuple[str, ...]) -> Column:
        return F.col("i").isin([i for i, (_, _, kind) in enumerate(fields) if kind in kinds] or [-1])

    s = F.col("s")
    text = F.when(only(("string",)), s)
    measures = [
        F.count(F.lit(1)).alias("rows"), F.count_if("present").alias("present"),
        F.approx_count_distinct(s, DISTINCT_RSD).alias("distinct"),
        F.min("l").alias("l_min"), F.max("l").alias("l_max"), F.avg("l").alias("l_avg"),
        F.min("d").alias("d_min"), F.max("d").alias("d_max"), F.avg("d").alias("d_avg"),
        F.min("t").alias("t_min"), F.max("t").alias("t_max"),
        F.min(F.length(text)).alias("len_min"), F.max(F.length(text)).alias("len_max"),
        F.min(text).alias("s_min"), F.max(text).alias("s_max"), F.count_if(F.trim(text) == "").alias("blanks"),
        *[F.count_if(F.when(only(kinds), s.isNotNull() & condition(s))).alias(f"x_{detector}")
          for detector, (kinds, condition) in DETECTORS.items()],
    ]  # fmt: skip
    figures: dict[int, Any] = {}
    if fields:
        stacked = df.select(F.explode(F.array(*[entry(i, n, k) for i, (n, _, k) in enumerate(fields)])).alias("e"))
        figures = {r["i"]: r for r in stacked.select("e.*").groupBy("i").agg(*measures).collect()}
    rows = int(figures[0]["rows"]) if figures else (0 if fields else df.count())

    columns: dict[str, dict[str, Any]] = {}
    for i, (name, spark_type, kind) in enumerate(fields):
        f = figures.get(i)
        non_null = int(f["present"]) if f else 0
        col: dict[str, Any] = {
            "type": spark_type, "kind": kind, "rows": rows, "nulls": rows - non_null,
            "null_share": (rows - non_null) / rows if rows else None,
            "distinct": (int(f["distinct"]) if f else 0) if kind != "other" else None,
        }  # fmt: skip
        if kind in NUMERIC or kind in TEMPORAL:
            field = {"integer": "l", "number": "d"}.get(kind, "t")
            col["min"], col["max"] = (_plain(f[f"{field}_min"]), _plain(f[f"{field}_max"])) if f else (None, None)
            if kind == "date":  # stacked as timestamps
                col["min"], col["max"] = (v[:10] if v else v for v in (col["min"], col["max"]))
        if kind in NUMERIC:
            col["mean"] = _plain(f[f"{field}_avg"]) if f else None
        if kind == "string":
            col["min_length"], col["max_length"] = (f["len_min"], f["len_max"]) if f else (None, None)
            col["blanks"] = int(f["blanks"]) if f else 0
            col["common_prefix"] = _common_prefix(f["s_min"], f["s_max"]) if f else ""
        col["detectors"] = {}
        for detector, (kinds, _) in DETECTORS.items():
            if kind in kinds:
                matched = int(f[f"x_{detector}"]) if f else 0
                col["detectors"][detector] = {"matched": matched, "share": matched / non_null if non_null else None}
        col["top_values"] = None
        columns[name] = col

    # Approximate counts may be off by a few percent: ask for a little more, keep those ≤ 20.
    low = [n for n, c in columns.items()
           if c["kind"] == "string" and c["distinct"] and c["distinct"] <= TOP_VALUES_MAX * 1.1 + 1]  # fmt: skip
    if low:
        pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("i"), _col(n).alias("v")) for i, n in enumerate(low)]))
        counted = (df.select(pairs.alias("p")).where(F.col("p.v").isNotNull())
                   .groupBy(F.col("p.i").alias("i"), F.col("p.v").alias("v"))
                   .agg(F.count(F.lit(1)).alias("n")))  # fmt: skip
        found: dict[int, list[dict[str, Any]]] = {}
        for row in counted.collect():
            found.setdefault(row["i"], []).append({"value": row["v"], "count": int(row["n"])})
        for i, name in enumerate(low):
            values = sorted(found.get(i, []), key=lambda v: (-v["count"], v["value"]))
            if len(values) <= TOP_VALUES_MAX:
                columns[name]["top_values"] = values
                columns[name]["distinct"] = len(values)  # exact, now that they are counted
    return {"rows": rows, "profiled_at": datetime.now(UTC).isoformat(timespec="seconds"), "columns": columns}


# --- the suggested suite ---


def _pct(share: float | None) -> str:
    if share is None:
        return "-"
    if 0 < share < 0.001:
        return "<0.1%"
    if 0.999 < share < 1:
        return ">99.9%"
    return f"{share * 100:.1f}%"


def _detected(col: dict[str, Any]) -> str | None:
    """The library rule that fits the column: a detector most non-null values pass, or
    'phone' for a mix of mobile and landline numbers."""
    shares = {d: f["share"] for d, f in col["detectors"].items() if d in DETECTOR_RULES and f["share"] is not None}
    if not shares:
        return None
    best = max(shares, key=lambda d: shares[d])
    if shares[best] >= DETECTOR_SHARE:
        return best
    if shares.get("mobile", 0) + shares.get("landline", 0) >= DETECTOR_SHARE:
        return "phone"
    return None


def _non_null(col: dict[str, Any]) -> int:
    return col["rows"] - col["nulls"]


def _looks_unique(name: str, col: dict[str, Any], detected: str | None) -> bool:
    non_null = _non_null(col)
    if non_null < 2 or col["distinct"] is None or col["distinct"] < UNIQUE_SHARE * non_null:
        return False
    if detected in ("mobile", "landline", "phone"):
        return False
    return bool(KEY_NAME.search(name.lower())) or detected in ("resident_id", "uscc")


def _widen(low: float, high: float, integer: bool) -> tuple[float, float]:
    """Observed bounds with a margin of a tenth of the range, rounded outwards; never
    below zero when nothing observed was."""
    span = high - low
    pad = span * 0.1 if span > 0 else (abs(high) * 0.1 or 1.0)
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(0.0, lo)
    if integer:
        return math.floor(lo), math.ceil(hi)
    digits = -math.floor(math.log10(pad))
    step = 10.0**-digits
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    return (round(lo, digits), round(hi, digits)) if digits > 0 else (lo, hi)


def _code_table(name: str, values: list[str]) -> tuple[str, str] | None:
    """A code table of the suites folder holding every observed value: by meanings (words
    such as 男 / 女, at least two), or by codes when the column is named after the table."""
    for path in sorted(rules.code_tables_dir().glob("*.yaml")):
        try:
            meanings, codes = rules.code_table(path.stem, "meanings"), rules.code_table(path.stem, "codes")
        except ValueError:
            continue
        if len(values) >= 2 and set(values) <= set(meanings):
            return path.stem, "meanings"
        if path.stem in name.lower() and set(values) <= set(codes):
            return path.stem, "codes"
    return None


def suggest_suite(profile: dict[str, Any], *, name: str, dataset: str, side: str = "ingestion") -> dict[str, Any]:
    """A suite document (GX JSON with the project's meta) suggested from ``profile``."""
    if side not in suites.SIDES:
        raise ValueError(f"side {side!r} is not one of {', '.join(suites.SIDES)}")
    rows = profile["rows"]
    columns = {n: c for n, c in profile["columns"].items() if not n.startswith(BOOKKEEPING)}
    profiled_on = str(profile.get("profiled_at", ""))[:10] or date.today().isoformat()
    expectations: list[dict[str, Any]] = []

    def add(kind: str, kwargs: dict[str, Any], dimension: str, severity: str, what: tuple[str, str],
            seen: tuple[str, str], rule: str | None = None) -> None:  # fmt: skip
        """``what`` the rule expects and what was ``seen``, each in Chinese and English."""
        meta: dict[str, Any] = {"dimension": dimension}
        if rule:
            meta["rule"] = rule
        meta["description"] = f"{what[0]}（观测: {seen[0]}）/ {what[1]} (observed: {seen[1]})"
        meta["generated"] = True
        expectations.append({"type": kind, "kwargs": kwargs, "meta": meta, "severity": severity})

    detected = {n: _detected(c) for n, c in columns.items()}
    unique = {n for n, c in columns.items() if _looks_unique(n, c, detected[n])}
    for column, col in columns.items():
        lowered, kind, non_null, share = column.lower(), col["kind"], _non_null(col), col["null_share"]
        found = detected[column]

        # completeness: no or few nulls
        if share is not None and share <= FEW_NULLS:
            kwargs: dict[str, Any] = {"column": column}
            if share > 0.01:
                kwargs["mostly"] = math.floor((1 - share) * 100) / 100
            nulls = (f"{_pct(share)} 空值，{col['nulls']:,} / {rows:,} 行",
                     f"{_pct(share)} nulls, {col['nulls']:,} of {rows:,} rows")  # fmt: skip
            severity = "critical" if share == 0 else "warning"
            add("expect_column_values_to_not_be_null", kwargs, "completeness", severity, ("非空", "not null"), nulls)

        # consistency: keys are unique
        if column in unique:
            primary = bool(PRIMARY_NAME.match(lowered))
            what = ("主键唯一", "primary key unique") if primary else ("取值不重复", "values unique")
            seen = (f"约 {col['distinct']:,} 个不同值 / {non_null:,} 个非空值",
                    f"about {col['distinct']:,} distinct of {non_null:,} non-null")  # fmt: skip
            severity = "critical" if primary else "warning"
            add("expect_column_values_to_be_unique", {"column": column}, "consistency", severity, what, seen)

        # the rule library
        if found in DETECTOR_RULES:
            kind_, dimension, severity, zh, en = DETECTOR_RULES[found]
            matched = _pct(_share(col, found))
            seen = (f"{matched} 的非空值符合", f"{matched} of non-null values match")
            add(kind_, {"column": column}, dimension, severity, (zh, en), seen)
        elif found == "phone":
            mobile, landline = _pct(_share(col, "mobile")), _pct(_share(col, "landline"))
            seen = (f"手机 {mobile}、固话 {landline}", f"mobile {mobile}, landline {landline}")
            add("expect_column_values_to_match_regex", {"column": column, "regex": PHONE_REGEX}, "conformity",
                "warning", ("手机或固定电话格式", "mobile or landline number format"), seen,
                rule=f"phone_format({column})")  # fmt: skip

        # strings: a code table or the set of values seen, else lengths and a common prefix
        values = [v["value"] for v in col.get("top_values") or []]
        in_set = bool(kind == "string" and found is None and column not in unique and values
                      and non_null >= 5 * len(values))  # fmt: skip
        if in_set:
            listed = "、".join(values[:8]) + ("…" if len(values) > 8 else "")
            seen = (f"{len(values)} 个取值: {listed}", f"{len(values)} values: {listed}")
            table = _code_table(column, values)
            if table:
                kwargs = {"column": column, "code_table": table[0], "values": table[1]}
                what = (f"取自代码表 {table[0]}", f"from the code table {table[0]}")
                add("expect_column_values_to_be_in_code_table", kwargs, "conformity", "warning", what, seen)
            else:
                kwargs = {"column": column, "value_set": sorted(values)}
                what = ("取值在观测到的集合内", "values in the observed set")
                add("expect_column_values_to_be_in_set", kwargs, "conformity", "warning", what, seen)
        if kind == "string" and found is None and not in_set and col["min_length"] is not None:
            lo, hi = col["min_length"], col["max_length"]
            if lo == hi:  # fixed length: a code
                low, high = lo, hi
                seen = (f"长度 {lo}（定长）", f"length {lo} (fixed)")
            else:
                low, high = (max(1, lo - max(1, lo // 5)) if lo > 0 else 0), hi + max(2, hi // 2)
                seen = (f"长度 {lo}-{hi}", f"lengths {lo}-{hi}")
            kwargs = {"column": column, "min_value": low, "max_value": high}
            what = (f"长度 {low}-{high}", f"length {low}-{high}")
            add("expect_column_value_lengths_to_be_between", kwargs, "conformity", "warning", what, seen)
        prefix = (col.get("common_prefix") or "")[:PREFIX_MAX]
        if (kind == "string" and found is None and not in_set and len(prefix) >= 2
                and non_null >= PREFIX_MIN_ROWS and (col["distinct"] or 0) >= 2):  # fmt: skip
            kwargs = {"column": column, "regex": "^" + re.escape(prefix)}
            what = (f"以“{prefix}”开头", f"starts with “{prefix}”")
            seen = (f"全部 {non_null:,} 个非空值以此开头", f"all {non_null:,} non-null values do")
            add("expect_column_values_to_match_regex", kwargs, "accuracy", "warning", what, seen)

        # reasonableness: numbers and dates within the observed range (keys are not quantities)
        future = (DATE_NAME.search(lowered) is not None and (kind in TEMPORAL or kind == "string")
                  and _share(col, "not_in_future") >= DETECTOR_SHARE)  # fmt: skip
        ranged = kind in NUMERIC or kind in TEMPORAL
        if ranged and col.get("min") is not None and col.get("max") is not None and not KEY_NAME.search(lowered):
            if kind in NUMERIC:
                low, high = _widen(col["min"], col["max"], kind == "integer")
                kwargs = {"column": column, "min_value": low, "max_value": high}
                what = (f"取值在 {low} 至 {high} 之间", f"between {low} and {high}")
            else:
                first, last = int(str(col["min"])[:4]), int(str(col["max"])[:4])
                kwargs = {"column": column, "min_value": f"{first}-01-01"}
                what = (f"不早于 {first}-01-01", f"not before {first}-01-01")
                if not future:  # no not-in-future rule: an upper bound here, the end of the last year seen
                    kwargs["max_value"] = end = f"{last}-12-31" if kind == "date" else f"{last + 1}-01-01"
                    what = (f"在 {first}-01-01 至 {end} 之间", f"between {first}-01-01 and {end}")
            seen = (f"最小 {col['min']}，最大 {col['max']}", f"min {col['min']}, max {col['max']}")
            add("expect_column_values_to_be_between", kwargs, "reasonableness", "warning", what, seen)

        # dates not in the future: record times are timeliness, other dates reasonableness
        if future:
            matched = _pct(_share(col, "not_in_future"))
            seen = (f"{matched} 的非空值不晚于 {profiled_on}", f"{matched} of non-null values not after {profiled_on}")
            dimension = "timeliness" if TIMELY_NAME.search(lowered) else "reasonableness"
            what = ("不晚于今天", "not in the future")
            add("expect_column_values_to_not_be_in_future", {"column": column}, dimension, "warning", what, seen)

    # pairs: birth date and resident ID number, longitude and latitude
    birth = next((n for n, c in columns.items() if BIRTH_NAME.search(n.lower())
                  and (c["kind"] in TEMPORAL or _share(c, "not_in_future") >= DETECTOR_SHARE)), None)  # fmt: skip
    resident = next((n for n in columns if detected[n] == "resident_id"), None)
    if birth and resident:
        valid = _pct(_share(columns[resident], "resident_id"))
        what = ("出生日期与身份证号一致", "birth date matches the resident ID number")
        seen = (f"{birth} 与 {resident}，身份证号 {valid} 有效", f"{birth} and {resident}, resident IDs {valid} valid")
        add("expect_column_pair_values_birth_date_to_match_resident_id", {"column_A": birth, "column_B": resident},
            "consistency", "warning", what, seen)  # fmt: skip
    lon = next((n for n in columns if LON_NAME.search(n.lower())), None)
    lat = next((n for n in columns if LAT_NAME.search(n.lower())), None)
    if lon and lat and lon != lat:
        ranges = [f"{n} {columns[n].get('min')}~{columns[n].get('max')}" for n in (lon, lat)]
        add("expect_column_pair_values_to_be_coordinates_in_range", {"column_A": lon, "column_B": lat},
            "accuracy", "warning", ("经纬度在中国范围内", "coordinates within China"),
            ("，".join(ranges), ", ".join(ranges)))  # fmt: skip
    add("expect_table_row_count_to_be_between", {"min_value": 1}, "reliability", "critical",
        ("批次非空", "batch not empty"), (f"{rows:,} 行", f"{rows:,} rows"))  # fmt: skip

    # the anomaly list's record key: the primary key, identifiers, the name
    key = [n for n in columns
           if (n in unique and PRIMARY_NAME.match(n.lower())) or detected[n] in ("resident_id", "uscc")
           or LABEL_NAME.search(n.lower())]  # fmt: skip
    notes = (f"由数据画像生成：{profiled_on}，{rows:,} 行。这只是起点，使用前须逐条审核（meta.generated）。"
             f" / Generated from a profile on {profiled_on} of {rows:,} rows: a starting point; review every "
             "expectation (meta.generated: true) before use.")  # fmt: skip
    return {
        "name": name,
        "meta": {
            "govops": {"dataset": dataset, "side": side, "thresholds": dict(THRESHOLDS), "key": key},
            "notes": notes,
        },
        "expectations": expectations,
    }


def _share(col: dict[str, Any], detector: str) -> float:
    found = col["detectors"].get(detector)
    return (found["share"] or 0.0) if found else 0.0


def dumps(document: dict[str, Any]) -> str:
    """The suite as the project writes suites: readable, one expectation to two lines."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    parts = []
    for key, value in document.items():
        if key == "expectations":
            items = []
            for e in value:
                head = ", ".join(f"{one(k)}: {one(e[k])}" for k in ("type", "kwargs") if k in e)
                tail = ", ".join(f"{one(k)}: {one(v)}" for k, v in e.items() if k not in ("type", "kwargs"))
                items.append("    {" + head + (",\n     " + tail if tail else "") + "}")
            text = "[\n" + ",\n".join(items) + "\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n  ")
        parts.append(f"  {one(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --- the command ---


def _resolve(source: str, dataset: str | None, lake_root: str) -> tuple[str, str | None]:
    """(the URI to read, the lake dataset ``<zone>/<path>``) of the command's source."""
    lake = lake_root.rstrip("/")
    path = Path(source)
    if "://" not in source and not (source.endswith(".parquet") or path.is_absolute() or path.exists()):
        relative = source.strip("/")
        return f"{lake}/{relative}", dataset or relative
    uri = source if "://" in source else path.absolute().as_uri()
    if dataset is None and uri.startswith(lake + "/"):
        relative = uri[len(lake) + 1 :].rstrip("/")
        dataset = relative.rsplit("/", 1)[0] if relative.endswith(".parquet") else relative
    return uri, dataset


def _session(master: str) -> tuple[SparkSession, bool]:
    """The active session, or a new local one (and whether this command owns it)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    spark = (SparkSession.builder.master(master).appName("govops:profile")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
             .config("spark.log.level", "WARN").getOrCreate())  # fmt: skip
    return spark, True


def _summary(uri: str, prof: dict[str, Any], document: dict[str, Any], out: Path) -> str:
    lines = [f"profiled {uri}: {prof['rows']:,} rows, {len(prof['columns'])} columns"]
    for name, col in prof["columns"].items():
        found = _detected(col)
        extra = f", {found}" if found else ""
        if col.get("top_values") is not None:
            extra += f", values {'/'.join(str(v['value']) for v in col['top_values'][:5])}"
        lines.append(f"  {name:<20} {col['type']:<10} nulls {_pct(col['null_share']):>6}, "
                     f"distinct ~{col['distinct'] if col['distinct'] is not None else '-'}{extra}")  # fmt: skip
    expectations = document["expectations"]
    critical = sum(e["severity"] == "critical" for e in expectations)
    lines.append(f"wrote {out}: {len(expectations)} expectations ({critical} critical, "
                 f"{len(expectations) - critical} warning), every one to review before use")  # fmt: skip
    for e in expectations:
        k = e["kwargs"]
        where = k.get("column") or ",".join(str(k[c]) for c in ("column_A", "column_B") if c in k) or "table"
        lines.append(f"  {e['severity']:<8} {e['meta']['dimension']:<14} {e['type'].removeprefix('expect_')}({where})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from govops import settings

    parser = argparse.ArgumentParser(
        prog="python -m govops.quality.profile",
        description="Profile a dataset and write a suggested quality suite, to be reviewed and edited.",
    )
    parser.add_argument("source", help="a lake dataset relative to the lake root (raw/...), or a Parquet path/URI")
    parser.add_argument("--name", required=True, help="the suite's name, e.g. public_security_persons.ingestion")
    parser.add_argument("--side", choices=sorted(suites.SIDES), default="ingestion")
    parser.add_argument("--dataset", help="the lake dataset <zone>/<path> (default: the source's path in the lake)")
    parser.add_argument("--out", type=Path, help="the suite file (default: include/quality_suites/<name>.json)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing suite file")
    parser.add_argument("--master", default="local[*]", help="Spark master (default: local[*])")
    args = parser.parse_args(argv)

    out: Path = args.out or suites.suite_path(args.name)
    if out.exists() and not args.force:
        print(f"{out} exists: not overwritten (use --force to replace it)", file=sys.stderr)
        return 1
    uri, dataset = _resolve(args.source, args.dataset, settings.lake_root())
    if not dataset or "/" not in dataset:
        parser.error(f"{args.source} is not in the lake ({settings.lake_root()}): give --dataset <zone>/<path>")
    spark, owned = _session(args.master)
    try:
        prof = profile(spark.read.parquet(uri))
    finally:
        if owned:
            spark.stop()
    document = suggest_suite(prof, name=args.name, dataset=dataset, side=args.side)
    suites.parse(document, out)  # what we write must load
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w" if args.force else "x", encoding="utf-8") as f:
        f.write(dumps(document))
    print(_summary(uri, prof, document, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
