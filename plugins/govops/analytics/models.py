"""Fusion (融合建模, item 16) and mining (挖掘建模, item 17) models over one output of a spec.

Both read the spec's ``model.table`` (one row per ``key`` with its indicators or features and
the observed 0/1 ``label``), hold out the rows whose hash of the key and ``seed`` falls below
``test_fraction`` (``split`` = test; the same rows for the same keys whatever the
partitioning), and write two outputs:

- ``result``: per row the score, whether it raises a warning (``alert``) and its split; a
  fusion model adds its level and the reasons (indicators at their threshold, rules fired).
- ``evaluation``: the test environment, the method, the metrics on the held-out rows (AUC,
  precision, recall, F1, accuracy, with the spec's floors), the confusion counts, the
  weights and the scenarios with their violations: what the model test report shows.

A fusion model scores ``100 x sum(weight x min(max(value, 0) / threshold, 1))`` (a missing
value counts 0), the first rule whose condition holds sets the level, else the highest
level whose lowest score the score reaches. A mining model fits a Spark MLlib pipeline
(VectorAssembler, StandardScaler, then logistic regression or a random forest) on the
training rows; its score is the probability of label 1, a warning from ``alert_threshold``.

A model below a floor or with a failed scenario is not delivered: ``ModelRejected`` names
them, before anything is written.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from govops.analytics.runs import AnalyticsError
from govops.analytics.spec import EVALUATION_COLUMNS, METRICS, AnalyticsSpec, Model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPLIT_BUCKETS = 10_000


class ModelRejected(AnalyticsError):
    code = "MODEL_REJECTED"


def _model(spec: AnalyticsSpec) -> Model:
    if spec.model is None:
        raise AnalyticsError(f"{spec.name}: kind {spec.kind} has no model")
    return spec.model


def split_expression(model: Model) -> str:
    """Spark SQL of the held-out split: a hash of the key and the seed, not a random draw."""
    cut = int(model.test_fraction * SPLIT_BUCKETS)
    return (f"CASE WHEN pmod(xxhash64(concat(CAST(`{model.key}` AS STRING), ':', '{model.seed}')), "
            f"{SPLIT_BUCKETS}) < {cut} THEN 'test' ELSE 'train' END")  # fmt: skip


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fusion_expressions(model: Model) -> dict[str, str]:
    """The fusion model's score, level, reasons and alert as Spark SQL over the table."""
    parts = [f"{i.weight} * least(greatest(coalesce(CAST(`{c}` AS DOUBLE), 0D), 0D) / {i.threshold}, 1D)"
             for c, i in model.indicators.items()]  # fmt: skip
    score = f"round(100 * ({' + '.join(parts)}), 2)"
    cases = [f"WHEN {r.when} THEN {_quoted(r.level)}" for r in model.rules]
    cases += [f"WHEN score >= {bound} THEN {_quoted(level)}" for level, bound in model.levels.items()]
    reasons = [f"CASE WHEN CAST(`{c}` AS DOUBLE) >= {i.threshold} THEN {_quoted(i.title)} END"
               for c, i in model.indicators.items()]  # fmt: skip
    reasons += [f"CASE WHEN {r.when} THEN {_quoted(r.title)} END" for r in model.rules]
    alert = " OR ".join(f"level = {_quoted(level)}" for level in model.alert_levels)
    return {
        "score": score,
        "level": f"CASE {' '.join(cases)} END",
        "reasons": f"concat_ws('；', {', '.join(reasons)})",
        "alert": f"CAST({alert} AS INT)",
    }


def _fusion(table: DataFrame, model: Model) -> tuple[DataFrame, list[tuple]]:
    e = fusion_expressions(model)
    scored = table.selectExpr("*", f"{e['score']} AS score", f"{split_expression(model)} AS split")
    scored = scored.selectExpr("*", f"{e['level']} AS level").selectExpr("*", f"{e['reasons']} AS reasons",
                                                                          f"{e['alert']} AS alert")  # fmt: skip
    weights = [("weight", c, float(i.weight), f"{i.title}，阈值 {i.threshold}{i.unit}", None, None)
               for c, i in model.indicators.items()]  # fmt: skip
    return scored, weights


def _mining(table: DataFrame, model: Model) -> tuple[DataFrame, list[tuple], Any]:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    features = list(model.features)
    data = (table.selectExpr("*", f"{split_expression(model)} AS split")
            .na.fill(0, subset=features)  # a missing figure counts 0, as in the design document
            .withColumn("_label", F.col(model.label).cast("double")))  # fmt: skip
    stages: list[Any] = [VectorAssembler(inputCols=features, outputCol="_raw"),
                         StandardScaler(inputCol="_raw", outputCol="_features", withMean=True)]  # fmt: skip
    params = {"featuresCol": "_features", "labelCol": "_label", **model.hyperparameters}
    if model.algorithm == "logistic_regression":
        stages.append(LogisticRegression(**params))
    else:
        stages.append(RandomForestClassifier(seed=model.seed, **params))
    fitted = Pipeline(stages=stages).fit(data.where("split = 'train'"))
    scored = fitted.transform(data).withColumn("score", vector_to_array("probability")[1])
    scored = scored.withColumn("alert", (F.col("score") >= float(model.alert_threshold)).cast("int"))
    last = fitted.stages[-1]
    weights = (last.coefficients.toArray() if model.algorithm == "logistic_regression"
               else last.featureImportances.toArray())  # fmt: skip
    kind = "coefficient (standardized)" if model.algorithm == "logistic_regression" else "importance"
    rows = [
        ("weight", c, float(w), f"{model.features[c].title}：{kind}", None, None)
        for c, w in zip(features, weights, strict=True)
    ]
    return scored, rows, fitted


def _counts(scored: DataFrame, model: Model) -> dict[str, int]:
    """The split sizes, the confusion counts on the held-out rows and each scenario's matched
    rows and violations, in one pass."""
    from pyspark.sql import functions as F

    y, test = f"CAST(`{model.label}` AS INT)", "split = 'test'"
    wanted = {"train_rows": "split = 'train'", "test_rows": test,
              "tp": f"{test} AND alert = 1 AND {y} = 1", "fp": f"{test} AND alert = 1 AND {y} = 0",
              "fn": f"{test} AND alert = 0 AND {y} = 1", "tn": f"{test} AND alert = 0 AND {y} = 0"}  # fmt: skip
    for n, scenario in enumerate(model.scenarios):
        wanted[f"matched_{n}"] = scenario.where
        wanted[f"violations_{n}"] = f"({scenario.where}) AND NOT coalesce({scenario.expect}, false)"
    row = scored.agg(*[F.sum(F.expr(f"CAST(coalesce({cond}, false) AS INT)")).alias(k)
                       for k, cond in wanted.items()]).first()  # fmt: skip
    return {k: int(row[k] or 0) for k in wanted}


def _metrics(scored: DataFrame, model: Model, counts: dict[str, int]) -> dict[str, float]:
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    tp, fp, fn, tn = (counts[k] for k in ("tp", "fp", "fn", "tn"))
    if tp + fn == 0 or fp + tn == 0:
        raise ModelRejected("the held-out rows need both outcomes to test the model: "
                            f"{tp + fn} with label 1, {fp + tn} with label 0")  # fmt: skip
    test = scored.where("split = 'test'").select(F.col(model.label).cast("double").alias("y"),
                                                 F.col("score").cast("double").alias("score"))  # fmt: skip
    # numBins=0: the exact curve, every distinct score a point (ties count half, as in Mann-Whitney)
    auc = BinaryClassificationEvaluator(rawPredictionCol="score", labelCol="y", metricName="areaUnderROC",
                                        numBins=0).evaluate(test)  # fmt: skip
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"auc": auc, "precision": precision, "recall": recall, "f1": f1,
            "accuracy": (tp + tn) / (tp + fp + fn + tn)}  # fmt: skip


def _environment(spark: SparkSession) -> list[tuple]:
    import pyspark

    sc = spark.sparkContext
    java = sc._jvm.System.getProperty("java.version")  # type: ignore[union-attr]
    found = {"spark": spark.version, "pyspark": pyspark.__version__, "master": sc.master,
             "default_parallelism": str(sc.defaultParallelism), "python": platform.python_version(),
             "java": str(java), "os": platform.platform()}  # fmt: skip
    return [("environment", k, None, v, None, None) for k, v in found.items()]


def run(spark: SparkSession, spec: AnalyticsSpec, table: DataFrame) -> tuple[dict[str, DataFrame], Any]:
    """The model's result and evaluation outputs, and the fitted MLlib pipeline (mining) or None.
    Raises ModelRejected when a floor or a scenario fails."""
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType

    model = _model(spec)
    table = table.cache()
    fitted = None
    if spec.kind == "fusion_model":
        scored, weights = _fusion(table, model)
        method = "加权指标与规则 (weighted indicators and rules)"
    else:
        scored, weights, fitted = _mining(table, model)
        method = f"Spark MLlib {model.algorithm} {dict(model.hyperparameters) or ''}".strip()
    scored = scored.cache()
    counts = _counts(scored, model)
    metrics = _metrics(scored, model, counts)
    rows: list[tuple] = _environment(spark)
    rows += [("method", "method", None, method, None, None),
             ("method", "split", float(model.test_fraction), split_expression(model), None, None),
             ("method", "seed", float(model.seed), None, None, None),
             ("method", "train_rows", float(counts["train_rows"]), None, None, None),
             ("method", "test_rows", float(counts["test_rows"]), None, None, None),
             ("method", "test_positives", float(counts["tp"] + counts["fn"]), model.label, None, None)]  # fmt: skip
    failed = []
    for name in METRICS:
        floor = model.floors.get(name)
        passed = None if floor is None else metrics[name] >= float(floor)
        if passed is False:
            failed.append(f"{name} {metrics[name]:.4f} < floor {floor}")
        rows.append(("metric", name, float(metrics[name]), None, None if floor is None else float(floor), passed))
    rows += [("confusion", k, float(counts[k]), None, None, None) for k in ("tp", "fp", "fn", "tn")]
    rows += weights
    for n, scenario in enumerate(model.scenarios):
        violations = counts[f"violations_{n}"]
        if violations:
            failed.append(f"scenario {scenario.title!r}: {violations} row(s) where {scenario.where} "
                          f"do not satisfy {scenario.expect}")  # fmt: skip
        rows.append(("scenario", scenario.title, float(violations), f"{counts[f'matched_{n}']} rows: "
                     f"{scenario.where} ⇒ {scenario.expect}", 0.0, violations == 0))  # fmt: skip
    if failed:
        raise ModelRejected(f"{spec.name}: not delivered: " + "; ".join(failed))
    schema = StructType([StructField("section", StringType()), StructField("item", StringType()),
                         StructField("value", DoubleType()), StructField("text", StringType()),
                         StructField("floor", DoubleType()), StructField("passed", BooleanType())])  # fmt: skip
    assert [f.name for f in schema.fields] == list(EVALUATION_COLUMNS)
    result_columns = list(spec.outputs[model.result].columns)
    return {
        model.result: scored.select(*result_columns),
        model.evaluation: spark.createDataFrame(rows, schema),
    }, fitted
