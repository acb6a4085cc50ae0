"""A spark-submit program for bench/extraction.py: the baselines of the extract job, each in
a fresh JVM and timed the way the jobs time themselves (after the session starts).

    spark-submit bench/spark_copy.py parquet <source Parquet URI> <target URI>
    spark-submit bench/spark_copy.py jdbc <JDBC URL> <user> <table> <partition column> <partitions> \
        <fetch size> <target URI>

``parquet``: Spark's own Parquet-to-Parquet copy of a dataset: no source database, no
cleansing and no checks, so the most any Spark job that writes those rows can do here.
``jdbc``: the plain hand-written ``spark.read.jdbc(...).write.parquet(...)`` of the table,
with the same partitions (bounds from min/max of the column, read in the timed part as the
job does) and fetch size as the extract job: no cleansing, rejects, reconciliation or
manifest. The password comes from GOVOPS_JDBC_PASSWORD. Prints ``{"seconds": …}``.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    from pyspark.sql import SparkSession

    mode, *args = sys.argv[1:]
    spark = SparkSession.builder.config("spark.log.level", "WARN").getOrCreate()
    started = time.perf_counter()
    if mode == "parquet":
        source, target = args
        spark.read.parquet(source).write.mode("overwrite").parquet(target)
    else:
        url, user, table, column, partitions, fetch_size, target = args
        properties = {"driver": "org.postgresql.Driver", "fetchsize": fetch_size, "user": user,
                      "password": os.environ.get("GOVOPS_JDBC_PASSWORD", "")}  # fmt: skip
        bounds = spark.read.jdbc(url, f"(SELECT min({column}) AS lo, max({column}) AS hi FROM {table}) AS b",
                                 properties=properties).first()  # fmt: skip
        df = spark.read.jdbc(url, table, column=column, lowerBound=bounds["lo"], upperBound=bounds["hi"],
                             numPartitions=int(partitions), properties=properties)  # fmt: skip
        df.write.mode("overwrite").parquet(target)
    print(json.dumps({"seconds": time.perf_counter() - started}))
    spark.stop()


if __name__ == "__main__":
    main()
