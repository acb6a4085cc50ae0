# The Spark standalone master and workers of the compose stack: the official Apache Spark
# image plus what the executors need to run the govops jobs' Python.
#   docker compose build        (the compose file builds it as govops-spark:latest)
#
# The Spark version must be the driver's: the pyspark pin in requirements.txt (4.2.0).
ARG SPARK_IMAGE=apache/spark:4.2.0-scala2.13-java17-python3-ubuntu
FROM ${SPARK_IMAGE}

USER root
# PySpark refuses to run when an executor's Python has another minor version than the
# driver's (PYTHON_VERSION_MISMATCH). The driver runs in the Airflow image (Python 3.11);
# this image's python3 is Ubuntu 22.04's 3.10. So add 3.11 and put a virtualenv of it first
# on PATH: the `python3` the driver asks the executors for (PYSPARK_PYTHON's default) is
# then 3.11 on every worker. Change both together if the Airflow image's Python changes.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.11 python3.11-venv curl; \
    rm -rf /var/lib/apt/lists/*; \
    python3.11 -m venv /opt/govops/venv; \
    /opt/govops/venv/bin/pip install --no-cache-dir --upgrade pip

# The libraries the jobs may import on executors (UDFs, pandas/Arrow exchange), at the same
# pins as the driver; the govops package itself arrives with each job (--py-files).
COPY requirements.txt /tmp/requirements.txt
RUN set -eux; \
    grep -E '^(pandas|pyarrow|pyyaml|geopandas|sqlalchemy)==' /tmp/requirements.txt > /tmp/executor-requirements.txt; \
    test "$(wc -l < /tmp/executor-requirements.txt)" -eq 5; \
    /opt/govops/venv/bin/pip install --no-cache-dir -r /tmp/executor-requirements.txt; \
    rm /tmp/requirements.txt /tmp/executor-requirements.txt

# The same user as the Airflow image (uid 50000, gid 0): the driver (in the Airflow
# scheduler) and the executors write and rename files under the shared file:// lake, so
# they must be one owner.
RUN set -eux; \
    useradd --uid 50000 --gid 0 --create-home --home-dir /home/govops --shell /bin/bash govops; \
    mkdir -p /opt/govops/lake /opt/govops/spark-work; \
    chown -R 50000:0 /opt/govops; \
    chmod -R g+rwX /opt/govops

ENV PATH=/opt/govops/venv/bin:${PATH} \
    SPARK_WORKER_DIR=/opt/govops/spark-work
WORKDIR /opt/govops
USER 50000:0
