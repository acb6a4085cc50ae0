"""The console at scale (issue 18): N usage events (default 1,000,000) over 1,000 work orders
in a fresh ledger, bulk-loaded with COPY, and the server time of the usage page (per period
and item, and per work order), a statement page (1,000 work orders) and the metrics
endpoint: p50 / p95 over 20 requests each. Goals: pages under 300 ms, metrics under 200 ms.

The requests go through the console's real FastAPI app in this process with a real Airflow
token (the simple auth manager's JWT, checked on every request), so the figures are the
server's own work: routing, authentication, queries, rendering; no network. Next to them:
the plain SQL the pages would need without ``govops.usage_rollup`` (the ledger grouped
per period, item and unit), to show what the rollup saves.
"""

from __future__ import annotations

import io
import logging
import os
import statistics
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from sqlalchemy import create_engine, text

WORK_ORDERS = 1_000
PER_ORDER = 10  # work orders per service order
DEPARTMENTS = [f"区委办局{d:02d}" for d in range(10)]
PERIOD = "2026-P1"
REQUESTS = 20


def _work_orders(url: str) -> None:
    """1,000 delivered work orders of item 01 under 100 accepted service orders, and the period."""
    from govops.settlement import store, workorders
    from govops.settlement.catalog import load_catalog

    catalog = load_catalog()
    engine = create_engine(url)
    with engine.begin() as conn:
        for s in range(WORK_ORDERS // PER_ORDER):
            so = f"SO-C{s:04d}"
            workorders.create_service_order(conn, workorders.ServiceOrder(id=so, name=so))
            for w in range(PER_ORDER):
                order = workorders.WorkOrder(id=f"WO-C{s:04d}-{w}", service_order_id=so, service_item_code="01",
                                             order_date=date(2026, 1, 5), difficulty=Decimal("0.8"))  # fmt: skip
                workorders.create_work_order(conn, order, catalog)
        conn.execute(text("UPDATE govops.work_order SET state = 'delivered' WHERE id LIKE 'WO-C%'"))
        accept = """UPDATE govops.service_order SET state = 'accepted', quality_score = 80 + substr(id, 5)::int % 20,
                           accepted_on = DATE '2026-02-20', operator_opinion = 'ok', purchaser_opinion = 'ok'
                     WHERE id LIKE 'SO-C%'"""
        conn.execute(text(accept))
        store.add_period(conn, PERIOD, "bimonthly", date(2026, 1, 1), date(2026, 2, 28))
        store.record_assessment(conn, PERIOD, Decimal("88"), Decimal("91"))
    engine.dispose()


def _copy_usage(url: str, events: int) -> float:
    """COPY ``events`` ledger rows (1% with no work order), in chunks of 100,000 lines; the
    rollup trigger runs once per COPY statement. Returns the seconds taken."""
    import psycopg

    started = time.perf_counter()
    columns = ("service_item_code, quantity, unit, records, work_order_id, department, data_source, period, dag_id, "
               "run_id, task_id, map_index, event_time")  # fmt: skip
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for start in range(0, events, 100_000):
            buffer = io.StringIO()
            for g in range(start, min(events, start + 100_000)):
                quantity = 1000 + g % 5000
                wo = r"\N" if g % 100 == 0 else f"WO-C{(g % WORK_ORDERS) // PER_ORDER:04d}-{g % PER_ORDER}"
                period, day = ("2026-01-01", "2026-01-10") if g % 2 else ("2026-02-01", "2026-02-10")
                buffer.write(f"01\t{quantity}\trecord\t{quantity}\t{wo}\t{DEPARTMENTS[g % 10]}\tsrc.t{g}\t{period}\t"
                             f"bench_console\trun-{g // 1000}\textract\t{g % 1000}\t{day} 10:00:00+08\n")  # fmt: skip
            with cur.copy(f"COPY govops.usage_event ({columns}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        conn.commit()
        # 1,000 of the unassigned rows assigned since (the pages move them to their work order).
        cur.execute("""INSERT INTO govops.usage_assignment (usage_event_id, work_order_id, assigned_by)
                       SELECT id, 'WO-C0000-0', 'bench' FROM govops.usage_event WHERE work_order_id IS NULL
                        ORDER BY id LIMIT 1000""")  # fmt: skip
        cur.execute("ANALYZE govops.usage_event")
        cur.execute("ANALYZE govops.usage_rollup")
        conn.commit()
    return time.perf_counter() - started


def _timings(call: Callable[[], object]) -> tuple[float, float]:
    """p50 and p95 (nearest rank) in ms over REQUESTS calls, after two warm-up calls."""
    for _ in range(2):
        call()
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * REQUESTS + 0.999) - 1]


def bench_console(url: str, events: int = 1_000_000) -> dict[str, tuple[float, float]]:
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from govops.console import URL_PREFIX
    from govops.console.app import create_app
    from govops.settlement import store

    os.environ["GOVOPS_DATABASE_URL"] = url
    os.environ["AIRFLOW_CONN_GOVOPS_DB"] = url
    started = time.perf_counter()
    _work_orders(url)
    copy_s = _copy_usage(url, events)
    engine = create_engine(url)
    statement = store.settle(engine, PERIOD)
    with engine.connect() as conn:
        rows, rollup = conn.execute(text("SELECT count(*), (SELECT count(*) FROM govops.usage_rollup) "
                                         "FROM govops.usage_event")).one()  # fmt: skip
    print(f"console data: {rows:,} usage events over {WORK_ORDERS:,} work orders (COPY {copy_s:.1f}s, the rollup "
          f"{rollup:,} rows), statement of {sum(len(x['work_orders']) for x in statement['lines'])} work orders; "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip

    manager = init_auth_manager()
    token = manager.generate_jwt(SimpleAuthManagerUser(username="bench", role="admin"))
    app = create_app()
    for name in ("httpx", "httpx2"):  # not a line per request (after Airflow's logging set-up)
        logging.getLogger(name).setLevel(logging.WARNING)
    figures: dict[str, tuple[float, float]] = {}
    with TestClient(app, root_path=URL_PREFIX, headers={"Authorization": f"Bearer {token}"}) as client:
        for name, path in (("usage page (per period and item)", "/usage"),
                           ("usage page (per work order)", "/usage?by=work_order"),
                           ("statement page", f"/statements/{PERIOD}"),
                           ("metrics", "/metrics")):  # fmt: skip
            reply = client.get(path)
            if reply.status_code != 200:
                raise SystemExit(f"{path}: {reply.status_code} {reply.text[:500]}")
            figures[name] = _timings(lambda path=path: client.get(path).raise_for_status())
            p50, p95 = figures[name]
            goal = 200 if name == "metrics" else 300
            verdict = "met" if p95 < goal else "NOT met"
            print(f"  {name} {path}: p50 {p50:.0f} ms, p95 {p95:.0f} ms over {REQUESTS} requests "
                  f"({len(reply.content):,} bytes; goal p95 < {goal} ms: {verdict})")  # fmt: skip
    grouped = text("SELECT service_item_code, unit, period, count(*), sum(quantity) FROM govops.usage_event "
                   "GROUP BY 1, 2, 3")  # fmt: skip
    with engine.connect() as conn:
        plain = _timings(lambda: conn.execute(grouped).all())
    print(f"  without the rollup: the ledger grouped per item, unit and period in plain SQL: p50 {plain[0]:.0f} ms, "
          f"p95 {plain[1]:.0f} ms")  # fmt: skip
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    engine.dispose()
    return figures
