"""python -m govops.settlement: periods, settlement, close, export, verify, evidence."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError

from govops import settings
from govops.settlement import store
from govops.settlement.evidence import evidence_pack
from govops.settlement.export import WRITERS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m govops.settlement", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add-period", help="define a settlement period")
    a.add_argument("period")
    a.add_argument("--kind", choices=("monthly", "bimonthly", "quarterly"), required=True)
    a.add_argument("--start", type=date.fromisoformat, required=True)
    a.add_argument("--end", type=date.fromisoformat, required=True)
    a = sub.add_parser("assess", help="record the period's assessment scores")
    a.add_argument("period")
    a.add_argument("--service-quality", type=Decimal, required=True)
    a.add_argument("--satisfaction", type=Decimal, required=True)
    a = sub.add_parser("penalty", help="record an incident penalty in a period")
    a.add_argument("period")
    a.add_argument("--type", required=True, dest="incident_type")
    a.add_argument("--event-order", default=None)
    for name, text in (("settle", "compute (or replace) the period's draft"), ("close", "settle and close"),
                       ("show", "print the statement"), ("verify", "recompute from the evidence, check the hash")):
        a = sub.add_parser(name, help=text)
        a.add_argument("period")
        if name == "settle":
            a.add_argument("--force", action="store_true", help="recompute even a closed period (refused)")
    a = sub.add_parser("export", help="write the statement as CSV, JSON or XLSX")
    a.add_argument("period")
    a.add_argument("--format", choices=sorted(WRITERS), required=True)
    a.add_argument("--out", type=Path, required=True)
    a = sub.add_parser("evidence", help="write a work order's evidence pack")
    a.add_argument("work_order")
    a.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        if args.command == "add-period":
            with engine.begin() as conn:
                store.add_period(conn, args.period, args.kind, args.start, args.end)
        elif args.command == "assess":
            with engine.begin() as conn:
                store.record_assessment(conn, args.period, args.service_quality, args.satisfaction)
        elif args.command == "penalty":
            with engine.begin() as conn:
                amount = store.add_penalty(conn, args.period, args.incident_type, args.event_order)
            print(f"penalty {args.incident_type}: {amount}")
        elif args.command in ("settle", "close", "show"):
            if args.command == "settle":
                statement = store.settle(engine, args.period, force=args.force)
            elif args.command == "close":
                statement = store.close(engine, args.period)
            else:
                statement = store.statement_of(engine, args.period)
            print(json.dumps({"state": statement.get("state"), "content_hash": statement.get("content_hash"),
                              "totals": statement.get("totals")}, ensure_ascii=False, indent=1))  # fmt: skip
        elif args.command == "export":
            print(WRITERS[args.format](store.statement_of(engine, args.period), args.out))
        elif args.command == "verify":
            result = store.verify(engine, args.period)
            print(f"stored {result.stored_hash}\nrecomputed {result.recomputed_hash}")
            for line in result.ledger_mismatches:
                print(f"mismatch: {line}")
            print("OK" if result.ok else "FAILED")
            return 0 if result.ok else 1
        elif args.command == "evidence":
            print(evidence_pack(engine, args.work_order, args.out))
    except (store.SettlementError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except DBAPIError as exc:  # a refusal of the database (trigger, constraint): its first line, no traceback
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        subject = getattr(args, "period", None) or getattr(args, "work_order", "")
        print(f"{args.command} {subject}: refused by the database: {reason}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
