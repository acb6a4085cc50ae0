"""govops: the governance services of a public-data operations contract (公共数据运营服务).

One importable package shared by Airflow tasks and Spark jobs (shipped to executors with
``--py-files``). Heavy libraries (pyspark, pandas, geopandas, great_expectations) are imported
inside functions so that importing ``govops`` stays cheap for the DAG processor.
"""

__version__ = "0.1.0"
