# The Airflow image of the compose stack (api-server, scheduler, dag-processor, triggerer).
# The scheduler runs the tasks (LocalExecutor), so it is also the Spark driver: it needs a
# JRE, `spark-submit` (from the pinned pyspark wheel) and the PostgreSQL JDBC driver.
#   docker compose build        (the compose file builds it as govops-airflow:latest)
FROM apache/airflow:3.3.2-python3.11

USER root
# A JRE 17 for the Spark driver, and the PostgreSQL JDBC driver from Debian's package
# (/usr/share/java/postgresql.jar): installed at build time, nothing is downloaded when a
# job runs. A CJK font (WenQuanYi Micro Hei) so report PDFs embed Chinese glyphs
# (govops.analytics.report looks for it; without one the PDF is skipped). The man directory
# works around openjdk's postinst on slim images.
RUN set -eux; \
    mkdir -p /usr/share/man/man1; \
    apt-get update; \
    apt-get install -y --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java \
        fonts-wqy-microhei; \
    ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17; \
    test -f /usr/share/java/postgresql.jar; \
    apt-get autoremove -yqq --purge; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /opt/govops/lake /opt/govops/state; \
    chown -R airflow:0 /opt/govops; \
    chmod -R g+rwX /opt/govops
ENV JAVA_HOME=/usr/lib/jvm/java-17

USER airflow
WORKDIR /opt/govops
# Dependencies first (a layer that survives code changes), then the project itself in
# editable mode: compose mounts ./plugins over /opt/govops/plugins, and the editable
# install points at that directory, so the mounted code is what runs.
COPY --chown=airflow:0 requirements.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=airflow:0 plugins ./plugins
RUN pip install --no-cache-dir --no-deps -e .
# The image also works without the bind mounts (for example as a production image).
COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 include ./include
COPY --chown=airflow:0 spark_jobs ./spark_jobs

ENV GOVOPS_REPO=/opt/govops \
    GOVOPS_HOME=/opt/govops/state \
    GOVOPS_JDBC_JARS=/usr/share/java/postgresql.jar \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/govops/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/govops/plugins
