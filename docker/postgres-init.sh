#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume
# (/docker-entrypoint-initdb.d). Creates the stack's three databases, each with its own
# login role whose password comes from the environment (.env beside docker-compose.yaml):
#   airflow  Airflow's metadata database              role airflow  AIRFLOW_DB_PASSWORD
#   govops   the usage ledger                         role govops   GOVOPS_DB_PASSWORD
#   frontdb  a front-end database (前置库) for the demo  role frontdb  FRONTDB_PASSWORD
# In production the front-end databases are the departments' own.
# Changing a password later: ALTER ROLE ... PASSWORD ...; this script does not run again.
set -e

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v airflow_pw="${AIRFLOW_DB_PASSWORD:-airflow}" \
    -v govops_pw="${GOVOPS_DB_PASSWORD:-govops}" \
    -v frontdb_pw="${FRONTDB_PASSWORD:-frontdb}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE govops LOGIN PASSWORD :'govops_pw';
CREATE DATABASE govops OWNER govops;
CREATE ROLE frontdb LOGIN PASSWORD :'frontdb_pw';
CREATE DATABASE frontdb OWNER frontdb;
SQL
