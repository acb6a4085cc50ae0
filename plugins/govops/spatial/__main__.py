"""Corrections of spatial verification from the command line:

    python -m govops.spatial apply <dataset> <run id> --approver NAME [--record ID ...]
    python -m govops.spatial revert <dataset> <run id> --by NAME [--record ID ...]
    python -m govops.spatial corrections <dataset>

apply and revert change the correction log and rebuild <lake>/curated/<dataset>.
"""

from __future__ import annotations

import argparse
import sys

from govops import settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m govops.spatial", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, who in (("apply", "--approver"), ("revert", "--by")):
        p = commands.add_parser(name)
        p.add_argument("dataset")
        p.add_argument("run_id")
        p.add_argument(who, dest="who", required=True)
        p.add_argument("--record", action="append", help="only these record ids (repeatable)")
    listing = commands.add_parser("corrections", help="the correction log of a dataset")
    listing.add_argument("dataset")
    args = parser.parse_args(argv)

    from sqlalchemy import create_engine, text

    from govops.spatial import corrections

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        if args.command == "corrections":
            with engine.connect() as conn:
                for r in conn.execute(text(
                    "SELECT run_id, state, count(*) FROM govops.spatial_correction WHERE dataset = :d "
                    "GROUP BY 1, 2 ORDER BY 1, 2"), {"d": args.dataset}):  # fmt: skip
                    print(f"{r[0]}\t{r[1]}\t{r[2]}")
            return 0
        try:
            change = corrections.apply if args.command == "apply" else corrections.revert
            n = change(engine, args.dataset, args.run_id, args.who, args.record)
        except corrections.CorrectionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result = corrections.write_back(engine, settings.lake_root(), args.dataset)
        print(f"{args.command}: {n} correction(s); {result['uri']}: {result['rows']} records, "
              f"{result['applied']} with an applied correction")  # fmt: skip
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
