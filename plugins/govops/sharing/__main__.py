"""python -m govops.sharing: the sharing API server, its callers and keys, its call records.

serve [--host H] [--port P]          the API server (port: --port, else GOVOPS_API_PORT, else 8090)
check                                validate include/apis/*.yaml (SPEC_INVALID names file and field),
                                     and their catalog entries in the ledger (govops.data_catalog)
set close SET --reason TEXT --by NAME   close a published set (410; the lists show it closed), and
                                     report the revocation to its cascade platforms
cascade send SET                     report the set's current state to its cascade platforms (a retry)
caller add ID --name N --kind department|company|person --contact C [--role R ...] [--set S ...]
key issue CALLER [--days N]          prints the key once (only its hash is stored)
key revoke KEY_ID --reason TEXT
application add CALLER SET --purpose TEXT       (有条件开放 sets)
application approve|refuse ID --by NAME [--days N]
records aggregate --period day|month --from DATE --to DATE [--out FILE.xlsx|.csv]
records export --from DATE --to DATE --out FILE.xlsx|.csv   (接口信息, 请求方信息, 请求时间, 请求次数)
operations meter --work-order WO --year YYYY   item 13 (1 年) for a year the service ran through
sample-dataset [--rows N]            publish the sample set's dataset into the lake (file://)
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from govops.errors import CodedError


def _table(value: str) -> Path:
    if not value.endswith((".xlsx", ".csv")):
        raise argparse.ArgumentTypeError(f"{value}: a .xlsx or .csv file")
    return Path(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m govops.sharing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    top = p.add_subparsers(dest="area", required=True)
    a = top.add_parser("serve")
    a.add_argument("--host", default=os.environ.get("GOVOPS_API_HOST", "127.0.0.1"))
    a.add_argument("--port", type=int, default=int(os.environ.get("GOVOPS_API_PORT", "8090")))
    top.add_parser("check")
    a = top.add_parser("set").add_subparsers(dest="command", required=True).add_parser("close")
    a.add_argument("set_name")
    a.add_argument("--reason", required=True)
    a.add_argument("--by", required=True)
    a = top.add_parser("cascade").add_subparsers(dest="command", required=True).add_parser("send")
    a.add_argument("set_name")
    caller = top.add_parser("caller").add_subparsers(dest="command", required=True)
    a = caller.add_parser("add")
    a.add_argument("caller_id")
    a.add_argument("--name", required=True)
    a.add_argument("--kind", required=True, choices=("department", "company", "person"))
    a.add_argument("--contact", required=True)
    a.add_argument("--role", action="append", default=[])
    a.add_argument("--set", action="append", default=None, help="restrict to these sets (default: any)")
    key = top.add_parser("key").add_subparsers(dest="command", required=True)
    a = key.add_parser("issue")
    a.add_argument("caller_id")
    a.add_argument("--days", type=int, default=365)
    a = key.add_parser("revoke")
    a.add_argument("key_id")
    a.add_argument("--reason", required=True)
    app = top.add_parser("application").add_subparsers(dest="command", required=True)
    a = app.add_parser("add")
    a.add_argument("caller_id")
    a.add_argument("set_name")
    a.add_argument("--purpose", required=True)
    for decision in ("approve", "refuse"):
        a = app.add_parser(decision)
        a.add_argument("application_id", type=int)
        a.add_argument("--by", required=True)
        a.add_argument("--days", type=int, default=None)
    records = top.add_parser("records").add_subparsers(dest="command", required=True)
    a = records.add_parser("aggregate")
    a.add_argument("--period", choices=("day", "month"), default="day")
    a.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    a.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    a.add_argument("--out", type=_table, default=None, help="write .xlsx or .csv (Chinese headers), not print")
    a = records.add_parser("export")
    a.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    a.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    a.add_argument("--out", type=_table, required=True)
    a = top.add_parser("operations").add_subparsers(dest="command", required=True).add_parser("meter")
    a.add_argument("--work-order", required=True)
    a.add_argument("--year", type=int, required=True)
    a = top.add_parser("sample-dataset")
    a.add_argument("--rows", type=int, default=2000)
    return p


def _engine():  # -> sqlalchemy Engine
    from sqlalchemy import create_engine

    from govops import settings

    return create_engine(settings.connection_url(settings.LEDGER_CONN_ID))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CodedError as exc:
        print(exc, file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from govops.sharing import callers, records

    if args.area == "serve":
        import uvicorn

        from govops.sharing.app import create_app

        uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)
        return 0
    if args.area == "check":
        from govops.sharing.spec import check_catalog, load_all
        from govops.specs import SpecError

        sets, errors = load_all()
        engine = _engine()
        for name, loaded in sets.items():
            try:
                check_catalog(engine, loaded)
            except SpecError as exc:
                errors.append(str(exc))
                continue
            print(f"ok {name}")
        for error in errors:
            print(error, file=sys.stderr)
        return 1 if errors else 0
    if args.area == "sample-dataset":
        from govops import settings
        from govops.sharing.sample import SAMPLE_DATASET, publish_table, sample_table

        print(publish_table(settings.lake_root(), SAMPLE_DATASET, sample_table(args.rows)))
        return 0
    engine = _engine()
    if args.area == "caller":
        callers.add_caller(engine, args.caller_id, args.name, args.kind, args.contact, args.role, args.set)
        print(f"caller {args.caller_id} registered")
    elif args.area == "key" and args.command == "issue":
        print(callers.issue_key(engine, args.caller_id, args.days))
    elif args.area == "key":
        callers.revoke_key(engine, args.key_id, args.reason)
        print(f"key {args.key_id} revoked")
    elif args.area == "application" and args.command == "add":
        print(f"application {callers.apply(engine, args.caller_id, args.set_name, args.purpose)} pending")
    elif args.area == "application":
        callers.decide(engine, args.application_id, args.command == "approve", args.by, args.days)
        print(f"application {args.application_id} {args.command}d")
    elif args.area in ("set", "cascade"):
        from govops import settings
        from govops.sharing import publish
        from govops.sharing.cascade import PlatformUnreachable, report

        if args.area == "set":
            result = publish.close(engine, settings.lake_root(), args.set_name, args.reason, args.by)
            print(f"set {args.set_name} closed at {result['closed_at']}; lists {result['api_list_uri']}")
        try:
            sent = report(engine, settings.lake_root(), publish._load(args.set_name).spec, publish.api_url())
        except PlatformUnreachable as exc:
            print(f"{exc}; send it again: python -m govops.sharing cascade send {args.set_name}", file=sys.stderr)
            return 1
        for item in sent:
            print(f"{item['platform']}: {item['action']} {item['outcome']} (message {item['message_id']})")
    elif args.area == "operations":
        from govops.sharing.operations import meter_year

        result = meter_year(engine, args.work_order, args.year, run_id="cli")
        print(f"item 13, {args.year}: {result['billing']} (usage event {result['usage_event_id']})")
    elif args.area == "records" and args.command == "aggregate":
        found = records.aggregates(engine, args.period, args.start, args.end)
        if args.out is None:
            for row in found:
                print(" ".join(f"{k}={v}" for k, v in row.items()))
            return 0
        header = records.AGGREGATE_HEADER
        records.write_table(args.out, "调用统计", tuple(header.values()), [tuple(r[k] for k in header) for r in found])
        print(args.out)
    elif args.area == "records":
        records.write_table(args.out, "调用记录", records.EXPORT_HEADER,
                            list(records.export_rows(engine, args.start, args.end)))  # fmt: skip
        print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
