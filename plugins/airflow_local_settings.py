"""Airflow cluster policies of the project (Airflow imports this module from the plugins
folder, which it puts on ``sys.path``). Imports stay inside the functions: Airflow loads
this file while it is itself being imported."""

from __future__ import annotations

from typing import Any


def dag_policy(dag: Any) -> None:
    """Every scheduled DAG gets its service item's deadline as a Deadline Alert (作业时限,
    ``govops.ops.deadlines``), so no DAG file has to declare it."""
    from govops.ops.deadlines import attach

    attach(dag)
