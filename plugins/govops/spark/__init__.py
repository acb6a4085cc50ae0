"""The Spark-job contract: parameters in, a JSON manifest out, outputs swapped in on success.

``manifest`` and ``package`` are plain Python (used by Airflow); ``job`` and ``lake`` run
inside ``spark-submit`` and import pyspark.
"""
