"""The console's Prometheus text endpoint (``/govops/metrics``): what monitoring systems
scrape, computed at each scrape from the ledger (its usage from ``govops.usage_rollup``,
which the database keeps equal to the ledger, migration 0019) and from Airflow's metadata
database (the api-server's own; this code runs only there, never in a task)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, text

from govops.ops.event_orders import OPEN, URGENCIES

# The unassigned queue (govops.unassigned_usage_v1): the rollup's usage metered with no work
# order, less the (few) events an assignment moved since.
_UNASSIGNED = """SELECT service_item_code, unit, sum(n) AS n, sum(q) AS q FROM (
                     SELECT service_item_code, unit, events AS n, quantity AS q FROM govops.usage_rollup
                      WHERE work_order_id IS NULL
                     UNION ALL
                     SELECT e.service_item_code, e.unit, -1, -e.quantity FROM govops.usage_assignment a
                       JOIN govops.usage_event e ON e.id = a.usage_event_id WHERE e.work_order_id IS NULL) u
                  GROUP BY 1, 2 HAVING sum(n) > 0 ORDER BY 1, 2"""


def _usage(conn: Connection) -> list[GaugeMetricFamily]:
    rows_ = GaugeMetricFamily("govops_usage_rows", "Usage ledger rows per service item, unit and period (month)",
                              labels=["service_item", "unit", "period"])  # fmt: skip
    quantity = GaugeMetricFamily("govops_usage_quantity", "Metered quantity in base units per service item, unit "
                                 "and period (month)", labels=["service_item", "unit", "period"])  # fmt: skip
    for r in conn.execute(text("""SELECT service_item_code, unit, period, sum(events) AS n, sum(quantity) AS q
                                    FROM govops.usage_rollup GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")):  # fmt: skip
        labels = [r.service_item_code, r.unit, r.period.strftime("%Y-%m")]
        rows_.add_metric(labels, int(r.n))
        quantity.add_metric(labels, int(r.q))
    unassigned_rows = GaugeMetricFamily("govops_unassigned_usage_rows", "Usage rows with no work order "
                                        "(the unassigned queue)", labels=["service_item", "unit"])  # fmt: skip
    unassigned = GaugeMetricFamily("govops_unassigned_usage_quantity", "Quantity in the unassigned queue, base units",
                                   labels=["service_item", "unit"])  # fmt: skip
    for r in conn.execute(text(_UNASSIGNED)):
        unassigned_rows.add_metric([r.service_item_code, r.unit], int(r.n))
        unassigned.add_metric([r.service_item_code, r.unit], int(r.q))
    return [rows_, quantity, unassigned_rows, unassigned]


def _event_orders(conn: Connection) -> GaugeMetricFamily:
    family = GaugeMetricFamily("govops_event_orders_open", "Open or acknowledged event orders by urgency",
                               labels=["urgency"])  # fmt: skip
    counts = dict(conn.execute(text("SELECT urgency, count(*) FROM govops.event_order WHERE state = ANY(:s) "
                                    "GROUP BY 1"), {"s": list(OPEN)}).all())  # fmt: skip
    for urgency in URGENCIES:  # every urgency, zero included: an alert can watch each series
        family.add_metric([urgency], int(counts.get(urgency, 0)))
    return family


def _last_success(now: datetime) -> GaugeMetricFamily:
    """Seconds since each DAG's (service's) last successful run ended, from Airflow's
    metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import func, select

    family = GaugeMetricFamily("govops_last_successful_run_age_seconds", "Seconds since the DAG's last successful "
                               "run ended", labels=["dag_id"])  # fmt: skip
    with create_session() as session:
        query = select(DagRun.dag_id, func.max(DagRun.end_date)).where(DagRun.state == DagRunState.SUCCESS)
        rows = session.execute(query.where(DagRun.end_date.is_not(None)).group_by(DagRun.dag_id)).all()
    for dag_id, ended in sorted(rows):
        family.add_metric([dag_id], max(0.0, (now - ended).total_seconds()))
    return family


class _Collector:
    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


def render(conn: Connection, now: datetime) -> bytes:
    """The metrics in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector([*_usage(conn), _event_orders(conn), _last_success(now)]))  # type: ignore[arg-type]
    return generate_latest(registry)
