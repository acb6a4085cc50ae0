"""Databases of one pytest-xdist worker (``./dev test`` runs two).

The ledger is already per session (``ledger_url``), but Airflow's metadata database and the
front-end database are shared by everything ``./dev`` starts: two workers running DAGs at
once would meet on the same run ids (``run_dag`` derives them from the logical date) and
reload each other's sample tables. So each worker copies both, before Airflow is imported,
and points its environment (inherited by the ``airflow`` and ``spark-submit`` processes it
starts) at its copies. A copy is ``CREATE DATABASE ... TEMPLATE``, which PostgreSQL allows
only while nobody else is connected to the template; when another session holds it (a
developer's own pytest or ``airflow standalone``), the worker builds its database instead:
``airflow db migrate`` or the bundled sample tables. Either way the DAG bundles are synced
into the copy, as the dag-processor would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from govops import settings

TEMPLATE_WAIT_S = 20.0


def _copy(admin_url: URL, template: str, name: str) -> bool:
    """Recreate ``name`` as a copy of ``template``; False when the template stays busy."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + TEMPLATE_WAIT_S
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            while True:
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
                    return True
                except OperationalError as exc:  # "source database ... is being accessed by other users"
                    if "being accessed" not in str(exc) or time.monotonic() > deadline:
                        if "being accessed" not in str(exc):
                            raise
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
                        return False
                    time.sleep(1.0)
    finally:
        admin.dispose()


def isolate(worker: str) -> None:
    """Point this worker's Airflow metadata and front-end databases at copies of its own."""
    airflow_url = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    source_url = make_url(settings.connection_url(settings.SOURCE_CONN_ID))
    admin_url = airflow_url.set(database="postgres")
    own_airflow = airflow_url.set(database=f"{airflow_url.database}_{worker}")
    own_source = source_url.set(database=f"{source_url.database}_{worker}")
    copied_airflow = _copy(admin_url, str(airflow_url.database), str(own_airflow.database))
    copied_source = _copy(source_url.set(database="postgres"), str(source_url.database), str(own_source.database))
    rendered_airflow = own_airflow.render_as_string(hide_password=False)
    rendered_source = own_source.render_as_string(hide_password=False)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = rendered_airflow
    os.environ[settings.URL_ENV[settings.SOURCE_CONN_ID]] = rendered_source
    os.environ[f"AIRFLOW_CONN_{settings.SOURCE_CONN_ID.upper()}"] = rendered_source
    if not copied_airflow:
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    # A freshly migrated database has no DAG bundle yet; tests that write DAGs of the
    # dags-folder bundle need its row (the dag-processor or api-server would add it).
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    if not copied_source:
        from govops.sample_data import load_sample

        load_sample(rendered_source)
