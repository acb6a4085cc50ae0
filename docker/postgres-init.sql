-- Databases of the stack: Airflow's metadata, the usage ledger, and a front-end database
-- (前置库) for the demo. In production the front-end databases are the departments' own.
CREATE USER airflow WITH PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;
CREATE USER govops WITH PASSWORD 'govops';
CREATE DATABASE govops OWNER govops;
CREATE DATABASE frontdb OWNER govops;
