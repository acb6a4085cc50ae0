"""A spark-submit program for bench/extraction.py: Spark's own Parquet-to-Parquet copy of a
dataset in a fresh JVM, timed the way the jobs time themselves (after the session starts).
It has no source database, no cleansing and no checks, so it is the most any Spark job
that writes those rows can do on this machine.

    spark-submit bench/spark_copy.py <source Parquet URI> <target URI>   # prints {"seconds": …}
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from pyspark.sql import SparkSession

    source, target = sys.argv[1], sys.argv[2]
    spark = SparkSession.builder.config("spark.log.level", "WARN").getOrCreate()
    started = time.perf_counter()
    spark.read.parquet(source).write.mode("overwrite").parquet(target)
    print(json.dumps({"seconds": time.perf_counter() - started}))
    spark.stop()


if __name__ == "__main__":
    main()
