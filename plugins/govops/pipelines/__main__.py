"""Extraction reports from the command line.

    python -m govops.pipelines summary --month 2026-07 --out summary.html
    python -m govops.pipelines export inventory|runs|catalog --out inventory.xlsx (or .csv)
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from govops import settings
from govops.pipelines.report import EXPORTS, export_table, monthly_summary, render_html


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m govops.pipelines", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="the monthly summary per source, as HTML with charts")
    summary.add_argument("--month", required=True, type=lambda s: date.fromisoformat(s + "-01"), help="YYYY-MM")
    summary.add_argument("--out", required=True, type=Path)
    export = commands.add_parser("export", help="the inventory, the run log or the catalog as CSV/XLSX")
    export.add_argument("what", choices=sorted(EXPORTS))
    export.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    from sqlalchemy import create_engine

    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        if args.command == "summary":
            args.out.parent.mkdir(parents=True, exist_ok=True)
            sources = monthly_summary(engine, args.month)
            args.out.write_text(render_html(sources, args.month), encoding="utf-8")
            print(f"{args.out}: {sum(s.runs for s in sources)} runs of {len(sources)} sources")
        else:
            print(f"{args.out}: {export_table(engine, args.what, args.out)} rows")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
