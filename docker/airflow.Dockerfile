# One image for the whole production-like stack: the Airflow services, and the Spark
# master and workers (the pyspark wheel carries a full Spark runtime), so the driver and
# the executors run the same Python and the same govops package.
FROM apache/airflow:3.3.2-python3.11

USER root
# A JRE for Spark and the PostgreSQL JDBC driver (/usr/share/java/postgresql.jar), from
# Debian's packages at build time: nothing is downloaded when a job runs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless libpostgresql-jdbc-java procps \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java

USER airflow
WORKDIR /opt/govops
COPY --chown=airflow:0 requirements.txt pyproject.toml README.md ./
COPY --chown=airflow:0 plugins ./plugins
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -e .
ENV SPARK_HOME=/home/airflow/.local/lib/python3.11/site-packages/pyspark
