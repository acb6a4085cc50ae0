"""python -m govops.ops: event orders (事件单) and the job registry (item 05).

  event-orders list [--state S]
  event-orders raise --title T --description D --reporter R [--unit U] [--urgency U] [--work-order W]
  event-orders ack NUMBER --by B [--workload H]
  event-orders resolve NUMBER --by B --resolution TEXT
  event-orders evaluate NUMBER --by B --operator-opinion O --purchaser-opinion P [--incident-type T] [--on DATE]
  jobs sync [--source dag_folder|rest_api] [--work-order W]
  jobs list
  report --month YYYY-MM [--out DIR]   the job-anomaly summary and the monthly summary (HTML, XLSX)
  health check      one monitoring pass (stuck, slow, late, import errors) over the REST API v2
  health notify     send the event orders' state changes not yet sent (SMTP, DingTalk)
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from govops import settings
from govops.errors import CodedError
from govops.ops import DEMO_WORK_ORDER, event_orders


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m govops.ops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    top = p.add_subparsers(dest="area", required=True)
    eo = top.add_parser("event-orders", help="event orders (事件单)").add_subparsers(dest="command", required=True)
    a = eo.add_parser("list")
    a.add_argument("--state", choices=event_orders.STATES)
    a = eo.add_parser("raise", help="raise an event order by hand")
    a.add_argument("--title", required=True)
    a.add_argument("--description", required=True)
    a.add_argument("--reporter", required=True, help="申报人")
    a.add_argument("--unit", default="区大数据中心", help="申报单位 (default: the purchaser)")
    a.add_argument("--urgency", choices=event_orders.URGENCIES, default="normal")
    a.add_argument("--work-order", default=None)
    a = eo.add_parser("ack")
    a.add_argument("number")
    a.add_argument("--by", required=True)
    a.add_argument("--workload", type=float, default=None, help="estimated workload (hours)")
    a = eo.add_parser("resolve")
    a.add_argument("number")
    a.add_argument("--by", required=True)
    a.add_argument("--resolution", required=True)
    a = eo.add_parser("evaluate", help="事后评估; an incident type makes its penalty part of settlement")
    a.add_argument("number")
    a.add_argument("--by", required=True)
    a.add_argument("--operator-opinion", required=True)
    a.add_argument("--purchaser-opinion", required=True)
    a.add_argument("--incident-type", default=None)
    a.add_argument("--on", type=date.fromisoformat, default=None)
    jobs = top.add_parser("jobs", help="the job registry (item 05)").add_subparsers(dest="command", required=True)
    a = jobs.add_parser("sync", help="bring the registry in step with the deployment")
    a.add_argument("--source", choices=("dag_folder", "rest_api"), default="dag_folder")
    a.add_argument("--work-order", default=DEMO_WORK_ORDER, help="item-05 work order of jobs that name none")
    jobs.add_parser("list")
    a = top.add_parser("report", help="异常作业监控数据分析汇总报告 and 月总结报告 of a month")
    a.add_argument("--month", required=True, type=lambda v: date.fromisoformat(v + "-01"), help="YYYY-MM")
    a.add_argument("--out", type=Path, default=None, help="a folder (default: <lake>/reports/ops/YYYY-MM)")
    health = top.add_parser("health", help="job health (issue 17)").add_subparsers(dest="command", required=True)
    health.add_parser("check", help="one monitoring pass through the connection govops_airflow_api")
    health.add_parser("notify", help="send pending notifications through govops_smtp / govops_dingtalk")
    return p


def _print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print("  ".join("" if v is None else str(v) for v in r.values()))


def _health(engine: Any, command: str) -> list[str]:
    from govops.ops import health, notify

    if command == "check":
        with engine.begin() as conn:
            return health.check(conn).lines()
    configured = notify.channels()
    if not configured:
        return [f"no notification channel: define the Airflow connection {notify.SMTP_CONN_ID} (extra 'to')"]
    return notify.send_pending(engine, configured)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        if args.area == "health":
            for line in _health(engine, args.command):
                print(line)
            return 0
        if args.area == "report":
            from govops.ops.report_render import report_to

            for line in report_to(engine, args.month, args.out):
                print(line)
            return 0
        with engine.begin() as conn:
            if args.area == "event-orders":
                if args.command == "list":
                    _print_rows(event_orders.list_orders(conn, args.state))
                elif args.command == "raise":
                    print(event_orders.raise_order(
                        conn, args.title, description=args.description, reporter=args.reporter,
                        reporting_unit=args.unit, urgency=args.urgency, work_order_id=args.work_order,
                    ))  # fmt: skip
                elif args.command == "ack":
                    event_orders.acknowledge(conn, args.number, args.by, estimated_workload=args.workload)
                elif args.command == "resolve":
                    event_orders.resolve(conn, args.number, args.by, args.resolution)
                else:
                    event_orders.evaluate(
                        conn, args.number, args.by, operator_opinion=args.operator_opinion,
                        purchaser_opinion=args.purchaser_opinion, incident_type=args.incident_type, on=args.on,
                    )  # fmt: skip
            elif args.command == "sync":
                from govops.ops.job_sync import run_sync

                for line in run_sync(conn, args.source, default_work_order=args.work_order):
                    print(line)
            else:
                _print_rows([dict(r) for r in conn.execute(text(
                    """SELECT dag_id, schedule, paused, service_item_code, department, work_order_id, first_seen_at,
                              removed_at, first_success_run_id, metered_work_order_id
                       FROM govops.scheduled_job ORDER BY dag_id""")).mappings()])  # fmt: skip
    except CodedError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
