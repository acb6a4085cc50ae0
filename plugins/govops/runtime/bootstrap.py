"""Compute the environment ``./dev`` runs everything in, starting embedded services if needed.

``python -m govops.runtime.bootstrap`` prints ``export`` lines for the shell to ``eval``.
Anything already configured (a database URL, an Airflow connection, JAVA_HOME, a Spark
connection, GOVOPS_CHROMIUM) wins over the embedded default; this module only fills gaps.
With ``--chromium`` (``./dev test``) it also makes sure a headless Chromium exists for the
browser checks of the HTML reports, installing Debian's ``chromium`` package if needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from govops import settings
from govops.runtime import embedded_pg, java


def _airflow_conn_env(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def compute_environment(environ: dict[str, str]) -> dict[str, str]:
    """The variables to add to ``environ``; starts the embedded PostgreSQL when needed."""
    env: dict[str, str] = {}
    home = settings.home()
    repo = settings.repo_root()
    env["GOVOPS_HOME"] = str(home)
    env["GOVOPS_REPO"] = str(repo)
    env["JAVA_HOME"] = str(java.java_home())
    env["PYSPARK_PYTHON"] = environ.get("PYSPARK_PYTHON", sys.executable)

    needs_server = not (
        (environ.get("GOVOPS_DATABASE_URL") or environ.get(_airflow_conn_env(settings.LEDGER_CONN_ID)))
        and (
            environ.get("GOVOPS_SOURCE_DATABASE_URL")
            or environ.get(_airflow_conn_env(settings.SOURCE_CONN_ID))
        )
        and environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    )
    if needs_server:
        server = embedded_pg.ensure_running(home / "pg")
        for url_var, conn_id, db in (
            ("GOVOPS_DATABASE_URL", settings.LEDGER_CONN_ID, "govops"),
            ("GOVOPS_SOURCE_DATABASE_URL", settings.SOURCE_CONN_ID, "frontdb"),
        ):
            if not (environ.get(url_var) or environ.get(_airflow_conn_env(conn_id))):
                env[url_var] = server.url(db)
                env[_airflow_conn_env(conn_id)] = server.url(db)
        if not environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = server.url("airflow")
    for url_var, conn_id in (
        ("GOVOPS_DATABASE_URL", settings.LEDGER_CONN_ID),
        ("GOVOPS_SOURCE_DATABASE_URL", settings.SOURCE_CONN_ID),
    ):
        # A configured URL is also offered to Airflow tasks as the connection.
        if environ.get(url_var) and not environ.get(_airflow_conn_env(conn_id)):
            env[_airflow_conn_env(conn_id)] = environ[url_var]

    spark_conn = _airflow_conn_env(settings.SPARK_CONN_ID)
    if not environ.get(spark_conn):
        env[spark_conn] = json.dumps({"conn_type": "spark", "host": "local[*]"})
    env.setdefault("AIRFLOW_HOME", environ.get("AIRFLOW_HOME", str(home / "airflow")))
    env.update(dev_secrets_backend(environ, home / "secrets"))
    for key, value in {
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": environ.get("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "airflow" / "logs"),
    }.items():
        if not environ.get(key):
            env[key] = value
    return env


def dev_secrets_backend(environ: dict[str, str], folder: Path) -> dict[str, str]:
    """When no secrets backend and no master key are configured: Airflow's local-filesystem
    secrets backend over ``folder/connections.json`` (mode 600), holding a random master key
    (the connection ``govops_master_key``) made once. The key never enters the environment,
    so ``./dev env`` and process listings do not show it."""
    from govops.security.keys import KEY_BYTES, MASTER_CONN_ID

    if environ.get("AIRFLOW__SECRETS__BACKEND") or environ.get(_airflow_conn_env(MASTER_CONN_ID)):
        return {}
    path = folder / "connections.json"
    if not path.exists():
        import base64

        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = base64.b64encode(os.urandom(KEY_BYTES)).decode()
        body = {MASTER_CONN_ID: {"conn_type": "generic", "password": key, "extra": {"version": 1}}}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(body, out, indent=2)
    return {
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)}),
    }


def migrate_airflow_db(full_env: dict[str, str]) -> None:
    """``airflow db migrate`` once per metadata database and Airflow version."""
    from importlib.metadata import version

    url = full_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    stamp = hashlib.sha256(f"{url}|{version('apache-airflow-core')}".encode()).hexdigest()
    marker = Path(full_env["AIRFLOW_HOME"]) / ".db-migrated"
    if marker.exists() and marker.read_text() == stamp:
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=full_env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout}\n{result.stderr}")
    marker.write_text(stamp)


class ServiceDemoOrder(NamedTuple):
    """The default work order of a DAG that is not a pipeline (its ``work_order_id`` param)."""

    dag_id: str
    work_order_id: str
    item: str
    difficulty: Decimal
    unit: str | None  # None: the item's first unit


SERVICE_DEMO_WORK_ORDERS = (
    ServiceDemoOrder("spatial_verification", "WO-DEMO-VERIFY", "10", Decimal(1), None),  # coordinate points
    ServiceDemoOrder("quality_check", "WO-DEMO-QUALITY", "07", Decimal(1), "table"),  # batch mode: tables
    ServiceDemoOrder("quality_file_check", "WO-DEMO-FILES", "09", Decimal(1), None),  # files
    ServiceDemoOrder("catalog_quality_check", "WO-DEMO-CATALOG", "11", Decimal(1), None),  # catalog entries
    ServiceDemoOrder("security_labeling", "WO-DEMO-LABEL", "06", Decimal(1), None),  # records labeled
    ServiceDemoOrder("security_assessment", "WO-DEMO-ASSESS", "19", Decimal(1), None),  # records assessed
    ServiceDemoOrder("security_masking", "WO-DEMO-MASK", "20", Decimal(1), None),  # records controlled
    ServiceDemoOrder("security_archive", "WO-DEMO-ARCHIVE", "21", Decimal(1), None),  # archived or destroyed
)


def sample_file_zone(ledger_url: str) -> Path | None:
    """The sample files of the sharing zone and their catalog entries, for the file check
    (item 09), when the lake is local and the zone has no file catalog yet."""
    from sqlalchemy import create_engine

    from govops.quality.files import zone_folder
    from govops.sample_data.sample_files import register_datasets, write_sample_files

    if not settings.lake_root().startswith("file://"):
        return None
    folder = zone_folder(settings.lake_root(), "sharing")
    if not (folder / "_file_catalog.yaml").exists():
        written = write_sample_files(folder)
        ledger = create_engine(ledger_url)
        register_datasets(ledger, written.datasets)
        ledger.dispose()
    return folder


def ensure_dev_fixtures(ledger_url: str, source_url: str) -> None:
    """On the embedded server only: the sample front-end tables, the sample files in the
    landing area and the demo work orders, so `airflow dags test` and the UI's trigger
    button work before `./dev demo` ever ran."""
    from datetime import date

    from sqlalchemy import create_engine, text

    from govops.pipelines.spec import SpecError, demo_work_orders, load_spec, spec_files
    from govops.settlement.workorders import ensure_demo_work_order

    source = create_engine(source_url)
    with source.connect() as conn:
        loaded = conn.execute(text("SELECT to_regclass('public_security.persons')")).scalar()
    source.dispose()
    if loaded is None:
        from govops.sample_data import load_sample

        load_sample(source_url)
    specs = []
    for path in spec_files():
        try:
            specs.append(load_spec(path))
        except SpecError:
            continue  # the DAG processor reports it
    ledger = create_engine(ledger_url)
    for order, item, difficulty in demo_work_orders(specs):
        ensure_demo_work_order(ledger, order, item, on=date.today(), difficulty=difficulty)
    for o in SERVICE_DEMO_WORK_ORDERS:
        ensure_demo_work_order(ledger, o.work_order_id, o.item, on=date.today(), difficulty=o.difficulty, unit=o.unit)
    from govops.analytics.difficulty import demo_work_orders as analytics_orders
    from govops.analytics.spec import load_specs

    for order, item, difficulty, unit in analytics_orders(load_specs()[0]):  # at the difficulty each spec gives
        ensure_demo_work_order(ledger, order, item, on=date.today(), difficulty=difficulty, unit=unit)
    from govops.ops import DEMO_WORK_ORDER

    ensure_demo_work_order(ledger, DEMO_WORK_ORDER, "05", on=date.today())  # the job registry's (item 05)
    ledger.dispose()
    sample_file_zone(ledger_url)
    landing = settings.home() / "landing"
    if not (landing / "spatial" / "poi.geojson").exists():  # the newest sample file: an older landing lacks it
        from govops.sample_data import SampleConfig, generate

        generate(SampleConfig(), landing)


# Debian's Chromium for the browser checks of the HTML reports, which Playwright for Python
# drives (tests/browser.py), and a small CJK font so the Chinese in the screenshots shows as
# text, not as boxes. Not Google's or Playwright's downloads: CI reaches Debian's mirrors,
# not their CDNs.
CHROMIUM_PACKAGES = ("chromium", "fonts-wqy-microhei")
CHROMIUM_NAMES = ("chromium", "chromium-browser")


class ChromiumError(RuntimeError):
    pass


def _log(message: str) -> None:
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def find_chromium(environ: dict[str, str]) -> str | None:
    """GOVOPS_CHROMIUM if set (it must be an executable), else chromium on PATH, else None."""
    configured = environ.get("GOVOPS_CHROMIUM")
    if configured:
        found = shutil.which(configured)
        if not found:
            raise ChromiumError(f"GOVOPS_CHROMIUM={configured} is not an executable Chromium")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return found
    return None


def _apt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Wait for a dpkg lock held by another apt instead of failing at once.
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def ensure_chromium(environ: dict[str, str]) -> str | None:
    """The Chromium binary for the browser tests. When there is none and this is root on a
    machine with apt-get, installs Debian's package (when the install fails, for missing
    or stale package lists, it runs apt-get update and retries once); raises ChromiumError
    when that fails too. Elsewhere
    warns and returns None: the tests marked ``browser`` then fail and say why."""
    found = find_chromium(environ)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _log("no Chromium for the browser tests (-m browser): install Debian's chromium package, "
             "or set GOVOPS_CHROMIUM to a Chromium or Chrome binary")  # fmt: skip
        return None
    _log(f"installing Debian's {' '.join(CHROMIUM_PACKAGES)} for the browser checks of the HTML reports "
         "(apt-get, once; under a minute)")  # fmt: skip
    started = time.monotonic()
    env = {**environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["install", "-y", "-qq", "--no-install-recommends", *CHROMIUM_PACKAGES]
    result = _apt(install, env)
    if result.returncode != 0:  # package lists missing or stale: refresh them once and retry
        update = _apt(["update", "-qq"], env)
        result = _apt(install, env) if update.returncode == 0 else update
    found = find_chromium(environ) if result.returncode == 0 else None
    if not found:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ChromiumError(
            f"could not install Debian's chromium (apt-get {' '.join(result.args[3:])} exited "
            f"{result.returncode}):\n{tail}\nInstall it (apt-get install chromium) or set GOVOPS_CHROMIUM "
            "to a Chromium or Chrome binary."
        )
    _log(f"Chromium: {found} (installed in {time.monotonic() - started:.0f} s)")
    return found


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m govops.runtime.bootstrap")
    parser.add_argument("--chromium", action="store_true",
                        help="also make sure a headless Chromium exists (./dev test): GOVOPS_CHROMIUM")  # fmt: skip
    args = parser.parse_args(argv)
    env = compute_environment(dict(os.environ))
    if args.chromium:
        try:
            chromium = ensure_chromium(dict(os.environ))
        except ChromiumError as exc:
            _log(str(exc))
            sys.exit(1)
        if chromium:
            env["GOVOPS_CHROMIUM"] = chromium
    full_env = {**os.environ, **env}
    migrate_airflow_db(full_env)
    from govops.ledger.migrate import upgrade

    ledger_url = full_env.get("GOVOPS_DATABASE_URL") or full_env[_airflow_conn_env(settings.LEDGER_CONN_ID)]
    upgrade(ledger_url)
    if "GOVOPS_DATABASE_URL" in env and "GOVOPS_SOURCE_DATABASE_URL" in env:  # both embedded
        ensure_dev_fixtures(env["GOVOPS_DATABASE_URL"], env["GOVOPS_SOURCE_DATABASE_URL"])
    for key, value in sorted(env.items()):
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
