"""The govops operations plugin: its listener opens and resolves event orders (事件单) and
meters a scheduled job's first successful scheduled run (item 05), without DAG changes."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from govops.ops import listener


class GovopsOpsPlugin(AirflowPlugin):
    name = "govops_ops"
    listeners: ClassVar[list[Any]] = [listener]
