"""Quality check engine at scale: N persons-like rows (default 5,000,000) from Parquet and a
12-rule ingestion suite (nulls, ranges, regexes, set membership, uniqueness, lengths, the
resident-ID rule, dates not in the future), in one run:

- in one warmed Spark session per core count (this file run by spark-submit with
  ``local[1]`` and ``local[2]``, the DataFrame read once, a warm-up scan of every column,
  then each method run three times and the fastest run kept), four ways to the same counts:
  the engine counts-only (``govops.quality.engine.evaluate(df, suite)``), the engine with
  the full anomaly list written to Parquet, plain GX 1.x (ephemeral context, Spark
  dataframe asset, a validation definition run with its default result format), and a
  hand-written pass (one ``df.agg`` of ``count_if`` for the row rules, one ``groupBy`` for
  uniqueness): seconds, rows/s, Spark jobs, the ratio to the hand-written pass, the
  1 -> 2 core scaling, and whether every method's unexpected counts are identical;
- the real job (spark_jobs/check_quality.py, anomaly list on) as the operator submits it,
  at 2 cores in a fresh JVM: the whole spark-submit and its own ``check_s``.

Goals: counts-only within 1.1x of the hand-written pass; with the anomaly list within 1.5x
of it and faster than plain GX's default.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATASET = "raw/bench/quality_persons"
SUITE = "bench_persons.ingestion"
GENERATOR_VERSION = 1  # bump when make_persons changes, so a kept dataset is rebuilt
FILES = 8
METHODS = ("engine counts-only", "engine + anomaly list", "plain GX (default result format)", "hand-written pass")
HAND = METHODS[3]
GENDER_CODES = ["0", "1", "2", "9"]  # GB/T 2261.1
NAME_LENGTHS = (2, 20)
INCOME_RANGE = (0, 100_000)
POSTCODE_REGEX = r"^2017[0-9]{2}$"


# --- the dataset and its suite (the parent process) ---


def _ascii(chars: np.ndarray, nulls: np.ndarray | None = None):  # -> pyarrow.StringArray
    """A string column from an (n, width) matrix of ASCII codes, without per-row Python."""
    import pyarrow as pa

    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    validity = None if nulls is None else pa.py_buffer(np.packbits(~nulls, bitorder="little"))
    data = pa.py_buffer(np.ascontiguousarray(chars, dtype=np.uint8))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), data, validity)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII digits of non-negative integers, zero-padded."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values.astype(np.int64)[:, None] // powers % 10 + ord("0")).astype(np.uint8)


def _pooled(pool: list[str], index: np.ndarray, nulls: np.ndarray | None = None):  # -> pyarrow.StringArray
    import pyarrow as pa

    return pa.array(pool, pa.string()).take(pa.array(index, pa.int32(), mask=nulls))


def make_persons(n: int, seed: int = 0):  # -> pyarrow.Table
    """Persons with a few % of defects per rule: null ids, duplicate ids, null, too short and
    too long names, wrong ID check characters, bad mobile numbers, wrong gender codes, birth
    dates in the future or before 1900, addresses outside Shanghai, malformed postcodes,
    negative and implausible incomes."""
    import pyarrow as pa

    from govops import identifiers
    from govops.sample_data import vocab

    rng = np.random.default_rng(seed)

    def share(p: float) -> np.ndarray:
        return rng.random(n) < p

    ids = np.arange(1, n + 1, dtype=np.int64)
    duplicated = share(0.01)
    ids[duplicated] = rng.integers(1, n + 1, int(duplicated.sum()))

    surnames, given = list(vocab.SURNAMES), list(vocab.GIVEN_CHARS)
    names = [rng.choice(surnames) + "".join(rng.choice(given, rng.integers(1, 3))) for _ in range(20_000)]
    long_names = ["阿卜杜热合曼·买买提明·艾则孜·" + "".join(rng.choice(given, 8)) for _ in range(200)]  # 23 chars
    name_index = rng.integers(0, len(names), n)
    too_long, too_short = share(0.01), share(0.01)
    name_index[too_long] = len(names) + rng.integers(0, len(long_names), int(too_long.sum()))
    name_index[too_short] = len(names) + len(long_names) + rng.integers(0, len(surnames), int(too_short.sum()))
    name = _pooled(names + long_names + surnames, name_index, share(0.02))

    day0 = np.datetime64("1940-01-01")
    born = day0 + rng.integers(0, 29_000, n).astype("timedelta64[D]")
    year = born.astype("datetime64[Y]").astype(np.int64) + 1970
    month = born.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (born - born.astype("datetime64[M]")).astype(np.int64) + 1
    regions = np.array([[ord(c) for c in code] for code, _ in vocab.REGION_CODES], dtype=np.uint8)
    weights = np.array([w for _, w in vocab.REGION_CODES])
    first17 = np.hstack([
        regions[rng.choice(len(regions), n, p=weights / weights.sum())],
        _digits(year, 4), _digits(month, 2), _digits(day, 2), _digits(rng.integers(0, 1000, n), 3),
    ])  # fmt: skip
    sums = (first17 - ord("0")).astype(np.int64) @ np.array(identifiers.RESIDENT_ID_WEIGHTS)
    wrong = share(0.02)
    sums[wrong] += rng.integers(1, 11, int(wrong.sum()))  # another check character
    check = np.frombuffer(identifiers.RESIDENT_ID_CHECK_CHARS.encode(), dtype=np.uint8)[sums % 11]
    id_number = _ascii(np.hstack([first17, check[:, None]]), share(0.01))

    future, ancient = share(0.01), share(0.01)
    today = np.datetime64("today", "D")
    born[future] = today + rng.integers(1, 3650, int(future.sum())).astype("timedelta64[D]")
    born[ancient] = np.datetime64("1850-01-01") + rng.integers(0, 18_000, int(ancient.sum())).astype("timedelta64[D]")
    birth_date = pa.array(born, pa.date32(), mask=share(0.01))

    prefixes = np.array([[ord(c) for c in p] for p in vocab.MOBILE_PREFIXES], dtype=np.uint8)
    phone_chars = np.hstack([prefixes[rng.integers(0, len(prefixes), n)], _digits(rng.integers(0, 10**8, n), 8)])
    bad_phone = share(0.02)
    phone_chars[bad_phone, 1] = rng.choice(np.array([ord("0"), ord("1"), ord("2")], dtype=np.uint8),
                                           int(bad_phone.sum()))  # fmt: skip
    phone = _ascii(phone_chars, share(0.01))

    gender_index = rng.integers(1, 3, n)
    bad_gender = share(0.02)
    gender_index[bad_gender] = len(GENDER_CODES) + rng.integers(0, 3, int(bad_gender.sum()))
    gender = _pooled([*GENDER_CODES, "男", "M", "3"], gender_index, share(0.005))

    towns, roads = [t for t, _, _ in vocab.TOWN_SEATS], list(vocab.ROADS)
    good = [f"上海市青浦区{t}{r}{k}号" for t in towns for r in roads for k in range(1, 41)]
    bad = [f"江苏省昆山市{r}{k}号" for r in roads for k in range(1, 5)]
    bad += [f"青浦区{t}{k}号" for t in towns for k in range(9)]
    address_index = rng.integers(0, len(good), n)
    outside = share(0.02)
    address_index[outside] = len(good) + rng.integers(0, len(bad), int(outside.sum()))
    address = _pooled(good + bad, address_index, share(0.005))

    postcodes = [f"2017{k:02d}" for k in range(100)]
    bad_postcodes = ["20170", "2017OO", "201 700", "", "2007000"]
    postcode_index = rng.integers(0, len(postcodes), n)
    bad_postcode = share(0.015)
    postcode_index[bad_postcode] = len(postcodes) + rng.integers(0, len(bad_postcodes), int(bad_postcode.sum()))
    postcode = _pooled(postcodes + bad_postcodes, postcode_index, share(0.005))

    income = np.round(rng.lognormal(np.log(8000), 0.5, n), 2)
    negative, implausible = share(0.01), share(0.005)
    income[negative] = -income[negative]
    income[implausible] *= 1000
    monthly_income = pa.array(income, pa.float64(), mask=share(0.005))

    updated = np.datetime64("2026-01-01T00:00:00", "us") + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")
    return pa.table({
        "id": pa.array(ids, pa.int64(), mask=share(0.005)), "name": name, "id_number": id_number,
        "gender": gender, "birth_date": birth_date, "phone": phone, "address": address, "postcode": postcode,
        "monthly_income": monthly_income, "updated_at": pa.array(updated, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def ensure_dataset(lake: Path, n: int) -> Path:
    """<lake>/raw/bench/quality_persons: N rows in 8 Parquet files, kept for later runs of
    the same size."""
    import pyarrow.parquet as pq

    folder = lake / DATASET
    stamp = folder / "_BENCH.json"
    wanted = {"rows": n, "generator": GENERATOR_VERSION}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        print(f"quality data: {n:,} rows kept from an earlier run in {folder}")
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    table = make_persons(n)
    made = time.perf_counter() - started
    step = -(-n // FILES)
    for i in range(FILES):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i:05d}.parquet", row_group_size=step)
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    stamp.write_text(json.dumps(wanted))
    print(f"quality data: {n:,} persons-like rows generated in {made:.1f}s and written in "
          f"{time.perf_counter() - started - made:.1f}s, {FILES} Parquet files, {size / 1e6:,.0f} MB")  # fmt: skip
    return folder


def suite_document() -> dict:
    """The 12-rule ingestion suite of the bench dataset (GX JSON with meta.govops)."""

    def rule(kind: str, name: str, dimension: str, severity: str = "warning", **kwargs: object) -> dict:
        return {"type": f"expect_{kind}", "kwargs": kwargs, "meta": {"dimension": dimension, "rule": name},
                "severity": severity}  # fmt: skip

    low, high = NAME_LENGTHS
    return {
        "name": SUITE,
        "meta": {"govops": {"dataset": DATASET, "side": "ingestion", "thresholds": {"pass": 99.0, "warn": 95.0},
                            "key": ["id", "name", "id_number"]},
                 "notes": "bench/quality.py: 12 rules over the generated persons"},
        "expectations": [
            rule("column_values_to_not_be_null", "id_not_null", "completeness", "critical", column="id"),
            rule("column_values_to_be_unique", "id_unique", "consistency", "critical", column="id"),
            rule("column_values_to_not_be_null", "name_not_null", "completeness", column="name"),
            rule("column_value_lengths_to_be_between", "name_length", "conformity", column="name",
                 min_value=low, max_value=high),
            rule("column_values_to_be_valid_resident_id", "id_number_valid", "accuracy", "critical",
                 column="id_number"),
            rule("column_values_to_be_valid_mobile", "phone_mobile", "conformity", column="phone"),
            rule("column_values_to_be_in_set", "gender_code", "conformity", column="gender", value_set=GENDER_CODES),
            rule("column_values_to_not_be_in_future", "birth_date_not_future", "reasonableness", column="birth_date"),
            rule("column_values_to_be_between", "birth_date_from_1900", "reasonableness", column="birth_date",
                 min_value="1900-01-01"),
            rule("column_values_to_match_regex", "address_in_shanghai", "accuracy", column="address", regex="^上海市"),
            rule("column_values_to_match_regex", "postcode_format", "conformity", column="postcode",
                 regex=POSTCODE_REGEX),
            rule("column_values_to_be_between", "income_range", "reasonableness", column="monthly_income",
                 min_value=INCOME_RANGE[0], max_value=INCOME_RANGE[1]),
        ],
    }  # fmt: skip


# --- the measurements (this file run by spark-submit) ---


def _hand_written(df) -> dict[str, int]:
    """What a Spark engineer would write for these 12 rules: one aggregation of count_if,
    GX's semantics (a null is missing, not unexpected), plus one group-by for uniqueness.
    The resident-ID check is the rule library's expression (writing GB 11643 again by hand
    would be the same expression)."""
    from pyspark.sql import functions as F

    from govops.quality import rules

    c = F.col
    low, high = NAME_LENGTHS

    def bad(column: str, expected) -> object:
        return F.count_if(c(column).isNotNull() & ~expected)

    row = df.agg(
        F.count_if(c("id").isNull()).alias("id_not_null"),
        F.count_if(c("name").isNull()).alias("name_not_null"),
        bad("name", F.length("name").between(low, high)).alias("name_length"),
        bad("id_number", rules.resident_id(c("id_number"))).alias("id_number_valid"),
        bad("phone", c("phone").rlike(rules.MOBILE_REGEX)).alias("phone_mobile"),
        bad("gender", c("gender").isin(*GENDER_CODES)).alias("gender_code"),
        bad("birth_date", c("birth_date") <= F.current_date()).alias("birth_date_not_future"),
        bad("birth_date", c("birth_date") >= F.lit("1900-01-01").cast("date")).alias("birth_date_from_1900"),
        bad("address", c("address").rlike("^上海市")).alias("address_in_shanghai"),
        bad("postcode", c("postcode").rlike(POSTCODE_REGEX)).alias("postcode_format"),
        bad("monthly_income", c("monthly_income").between(*INCOME_RANGE)).alias("income_range"),
    ).first().asDict()
    dup = (df.where(c("id").isNotNull()).groupBy("id").count().where(c("count") > 1)
           .agg(F.sum("count").alias("n")).first()["n"])  # fmt: skip
    return {**row, "id_unique": int(dup or 0)}


def _plain_gx(df, suite, run: int) -> tuple[dict[str, int], list[str]]:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_spark("bench").add_dataframe_asset("persons").add_batch_definition_whole_dataframe(
        "all")  # fmt: skip
    gx_suite = context.suites.add(suite.gx_suite())
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"bench-{run}", data=batch,
                                                                            suite=gx_suite))  # fmt: skip
    result = definition.run(batch_parameters={"dataframe": df})  # the default result format (SUMMARY)
    counts, errors = {}, []
    for r in result.results:
        name = r.expectation_config.meta["rule"]
        if r.exception_info and r.exception_info.get("raised_exception"):
            errors.append(f"{name}: {r.exception_info.get('exception_message')}")
        counts[name] = int((r.result or {}).get("unexpected_count") or 0)
    return counts, errors


def _session(argv: list[str]) -> None:
    """Inside spark-submit: time the four methods in this one session, write the figures."""
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--suite", required=True)
    p.add_argument("--anomalies", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", default=",".join(str(i) for i in range(len(METHODS))))
    a = p.parse_args(argv)

    import great_expectations  # noqa: F401  (imported untimed, as the project's modules are)
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    import govops.quality.expectations  # noqa: F401
    from govops.quality import engine, suites

    spark = SparkSession.builder.appName("govops:bench:quality").config("spark.log.level", "WARN").getOrCreate()
    sc = spark.sparkContext
    suite = suites.load(a.suite)
    df = spark.read.parquet(a.data)
    started = time.perf_counter()
    rows = df.agg(F.count(F.lit(1)), *[F.count(c) for c in df.columns]).first()[0]  # warm-up: every column read
    figures: dict = {"rows": rows, "master": sc.master, "warmup_s": time.perf_counter() - started, "methods": {}}

    def engine_counts(outcome) -> dict[str, int]:
        return {r.rule.name: r.unexpected_count for r in outcome.results}

    def run(method: str, i: int) -> dict:
        if method == METHODS[0]:
            outcome = engine.evaluate(df, suite)
            return {"counts": engine_counts(outcome), "passes": outcome.passes}
        if method == METHODS[1]:
            outcome = engine.evaluate(df, suite, anomalies=a.anomalies)
            return {"counts": engine_counts(outcome), "passes": outcome.passes, "anomaly_rows": outcome.anomaly_rows,
                    "anomalies_written": outcome.anomalies_written}  # fmt: skip
        if method == METHODS[2]:
            counts, errors = _plain_gx(df, suite, i)
            return {"counts": counts, "errors": errors, "cached": df.storageLevel.useMemory}
        return {"counts": _hand_written(df)}

    chosen = [METHODS[int(i)] for i in a.methods.split(",")]
    for i in range(a.repeats):
        for method in chosen:
            group = f"bench-{method}-{i}"
            sc.setJobGroup(group, method)
            started = time.perf_counter()
            found = run(method, i)
            seconds = time.perf_counter() - started
            sc.setLocalProperty("spark.jobGroup.id", None)
            found.update(seconds=seconds, jobs=len(sc.statusTracker().getJobIdsForGroup(group)))
            # GX's Spark datasource persists the DataFrame (persist=True by default) and leaves it
            # cached: dropped here, untimed, so that no method reads another's cache.
            spark.catalog.clearCache()
            figures["methods"].setdefault(method, []).append(found)
    Path(a.out).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    spark.stop()


# --- the parent process ---


def _run_session(lake: Path, data: Path, suite: Path, cores: int) -> dict:
    from govops import settings
    from govops.spark.package import build_zip

    out = lake / f"quality-bench-{cores}core.json"
    out.unlink(missing_ok=True)
    cmd = ["spark-submit", "--master", f"local[{cores}]", "--conf", "spark.ui.enabled=false", "--driver-memory", "4g",
           "--py-files", str(build_zip()), str(Path(__file__).resolve()), "--data", data.as_uri(),
           "--suite", str(suite), "--anomalies", (lake / "anomalies" / "bench_quality" / f"c{cores}").as_uri(),
           "--out", str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=settings.repo_root())
    if result.returncode != 0 or not out.is_file():
        raise SystemExit(f"quality bench session, local[{cores}], failed:\n{result.stderr[-4000:]}")
    return json.loads(out.read_text())


def _run_job(lake: Path, suite: Path, cores: int) -> dict:
    from bench import spark_submit
    from govops import settings
    from govops.spark import manifest as manifests
    from govops.spark.package import build_zip

    uri = manifests.manifest_uri(lake.as_uri(), "bench_quality", f"c{cores}", "check", -1)
    cmd = ["spark-submit", "--master", f"local[{cores}]", "--conf", "spark.ui.enabled=false", "--driver-memory", "4g",
           "--py-files", str(build_zip()), str(settings.spark_jobs_dir() / "check_quality.py"),
           "--dag-id", "bench_quality", "--run-id", f"c{cores}", "--task-id", "check", "--lake-root", lake.as_uri(),
           "--manifest", uri, "--suite", str(suite), "--mode", "batch", "--anomaly-list", "on"]  # fmt: skip
    return spark_submit(cmd, uri)


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def _check_counts(label: str, figures: dict) -> bool:
    """Every method's (and run's) unexpected counts are those of the hand-written pass."""
    reference = figures["methods"][HAND][0]["counts"]
    same = True
    for method, runs in figures["methods"].items():
        for i, run in enumerate(runs):
            for error in run.get("errors") or []:
                print(f"  MISMATCH {label}: {method} run {i + 1} raised: {error}")
                same = False
            if run["counts"] != reference:
                diff = {k: (run["counts"].get(k), reference.get(k)) for k in sorted({*reference, *run["counts"]})
                        if run["counts"].get(k) != reference.get(k)}  # fmt: skip
                print(f"  MISMATCH {label}: {method} run {i + 1} (theirs, hand-written): {diff}")
                same = False
    return same


def bench_quality(rows: int) -> dict:
    from govops import settings

    lake = settings.home() / "bench-lake"
    lake.mkdir(parents=True, exist_ok=True)
    data = ensure_dataset(lake, rows)
    suite = lake / "quality_suites" / f"{SUITE}.json"
    suite.parent.mkdir(parents=True, exist_ok=True)
    suite.write_text(json.dumps(suite_document(), indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"quality suite: {suite} ({len(suite_document()['expectations'])} rules)")
    print("measured in one warmed Spark session per core count (spark-submit, local[N], driver 4g, Spark's "
          "default settings): the Parquet DataFrame read once and every column scanned once untimed, then the "
          "four methods in turn, three times; each method's fastest run is shown. Plain GX persists the "
          "DataFrame (its Spark datasource's default), which its time includes; the cache is dropped after "
          "each GX run")  # fmt: skip

    sessions: dict[int, dict] = {}
    identical = True
    for cores in (1, 2):
        figures = sessions[cores] = _run_session(lake, data, suite, cores)
        hand = _best(figures["methods"][HAND])["seconds"]
        print(f"\nlocal[{cores}]: {figures['rows']:,} rows (warm-up scan {figures['warmup_s']:.1f}s)")
        print(f"  {'method':<34} {'seconds':>8} {'rows/s':>12} {'Spark jobs':>10} {'vs hand-written':>16}  runs")
        for method in METHODS:
            runs = figures["methods"][method]
            best = _best(runs)
            print(f"  {method:<34} {best['seconds']:>8.2f} {figures['rows'] / best['seconds']:>12,.0f} "
                  f"{best['jobs']:>10} {best['seconds'] / hand:>15.2f}x  "
                  f"{' / '.join(format(r['seconds'], '.2f') for r in runs)}")  # fmt: skip
        cached = any(r.get("cached") for r in figures["methods"][METHODS[2]])
        print(f"  plain GX left the DataFrame persisted (then dropped, untimed): {'yes' if cached else 'no'}")
        identical &= _check_counts(f"local[{cores}]", figures)
    print("\nscaling 1 -> 2 cores (seconds at 1 core / at 2 cores):")
    for method in METHODS:
        one, two = (_best(sessions[c]["methods"][method])["seconds"] for c in (1, 2))
        print(f"  {method:<34} {one / two:.2f}x")

    m = _run_job(lake, suite, 2)
    out = m["outputs"][0]
    job_counts = {r["rule"]: r["unexpected_count"] for r in out["results"]}
    hand_counts = sessions[2]["methods"][HAND][0]["counts"]
    if job_counts != hand_counts:
        identical = False
        print(f"  MISMATCH check_quality job: {job_counts} != {hand_counts}")
    print(f"\ncheck_quality job, local[2], anomaly list on, fresh JVM: {m['wall_s']:.1f}s wall (spark-submit), "
          f"check_s {m['timings']['check_s']:.1f}s, total_s {m['timings']['total_s']:.1f}s; {out['passes']} passes, "
          f"{out['anomalies_written']:,} anomaly rows for {out['anomaly_rows']:,} records")  # fmt: skip
    print(f"\ncounts per rule: {hand_counts}")
    print(f"identical unexpected counts (engine x2, plain GX, hand-written, the job): {'yes' if identical else 'NO'}")

    two = sessions[2]["methods"]
    hand = _best(two[HAND])["seconds"]
    counts_only, listed, plain = (_best(two[m])["seconds"] for m in METHODS[:3])
    print(f"goals at 2 cores: counts-only {counts_only / hand:.2f}x hand-written (goal <= 1.1x: "
          f"{'met' if counts_only <= 1.1 * hand else 'MISSED'}); with the anomaly list {listed / hand:.2f}x "
          f"(goal <= 1.5x: {'met' if listed <= 1.5 * hand else 'MISSED'}) and {plain / listed:.2f}x faster than "
          f"plain GX (goal > 1x: {'met' if listed < plain else 'MISSED'})")  # fmt: skip
    if not identical:
        raise SystemExit("quality bench: the methods' unexpected counts differ (see MISMATCH above)")
    return {"sessions": sessions, "job": m, "identical": identical}


if __name__ == "__main__":
    _session(sys.argv[1:])
