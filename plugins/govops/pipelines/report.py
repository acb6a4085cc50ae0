"""The extraction outputs seed 000 asks for besides the data: the monthly summary per source
(volumes, accuracy, completeness, consistency, rejects by reason) as HTML with charts, and
exports of the extraction inventory (抽取清单), the run log and the data catalog (编目).

Quality figures come from the run log's reject reasons, so they describe exactly the
records that were rejected: a reason about a missing value counts against completeness,
a duplicate or a schema drift against consistency, anything else (malformed, not a date,
not a number, too long, invalid geometry...) against accuracy.
"""

from __future__ import annotations

import html
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

DIMENSIONS = ("accuracy", "completeness", "consistency")


def dimension_of(reason: str) -> str:
    if reason.startswith("missing "):
        return "completeness"
    if reason.startswith(("duplicate of", "schema drift")):
        return "consistency"
    return "accuracy"


@dataclass
class SourceMonth:
    """One pipeline's month: its runs added up."""

    pipeline: str
    description: str
    department: str
    service_item: str
    source: str
    runs: int = 0
    read: int = 0
    written: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    daily: dict[date, tuple[int, int]] = field(default_factory=dict)  # day -> (written, rejected)

    def rate(self, dimension: str) -> float | None:
        """Share of the records read that pass the dimension's checks, or None without reads."""
        if not self.read:
            return None
        failed = sum(n for reason, n in self.reasons.items() if dimension_of(reason) == dimension)
        return 1 - failed / self.read


def month_bounds(month: date) -> tuple[date, date]:
    start = month.replace(day=1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def monthly_summary(engine: Engine, month: date, timezone: str = "Asia/Shanghai") -> list[SourceMonth]:
    """Every pipeline of the inventory with its committed runs of the month (contract time)."""
    from sqlalchemy import text

    start, end = month_bounds(month)
    sources: dict[str, SourceMonth] = {}
    with engine.connect() as conn:
        for r in conn.execute(text(
            """SELECT pipeline, coalesce(description, ''), coalesce(department, ''), service_item_code,
                      concat_ws(' ', database_type, source_object)
                 FROM govops.extraction_inventory ORDER BY pipeline"""
        )):  # fmt: skip
            sources[r[0]] = SourceMonth(*r)
        runs = conn.execute(
            text(
                """SELECT pipeline, (finished_at AT TIME ZONE :tz)::date AS day, read, written, rejected,
                          rejected_by_reason
                     FROM govops.extraction_run
                    WHERE status = 'committed'
                      AND finished_at >= (CAST(:start AS date) AT TIME ZONE :tz)
                      AND finished_at < (CAST(:end AS date) AT TIME ZONE :tz)
                    ORDER BY finished_at"""
            ),
            {"tz": timezone, "start": start, "end": end},
        )
        for pipeline, day, read, written, rejected, reasons in runs:
            s = sources.setdefault(pipeline, SourceMonth(pipeline, "", "", "", ""))
            s.runs += 1
            s.read, s.written, s.rejected = s.read + read, s.written + written, s.rejected + rejected
            s.reasons.update({k: int(v) for k, v in (reasons or {}).items()})
            w, j = s.daily.get(day, (0, 0))
            s.daily[day] = (w + written, j + rejected)
    return list(sources.values())


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _volume_chart(sources: list[SourceMonth]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.pipeline for s in sources]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    ax.barh(names, [s.written for s in sources], color="#2b7bba", label="loaded")
    ax.barh(names, [s.rejected for s in sources], left=[s.written for s in sources], color="#d7301f",
            label="rejected")  # fmt: skip
    ax.set_xlabel("records")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return _svg(fig)


def _daily_chart(source: SourceMonth, month: date) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start, end = month_bounds(month)
    days = [date.fromordinal(d) for d in range(start.toordinal(), end.toordinal())]
    loaded = [source.daily.get(d, (0, 0))[0] for d in days]
    rejected = [source.daily.get(d, (0, 0))[1] for d in days]
    fig, ax = plt.subplots(figsize=(8, 2.2))
    ax.bar([d.day for d in days], loaded, color="#2b7bba", label="loaded")
    ax.bar([d.day for d in days], rejected, bottom=loaded, color="#d7301f", label="rejected")
    ax.set_xlabel(f"day of {start:%Y-%m}")
    ax.set_ylabel("records")
    ax.legend(loc="upper left")
    return _svg(fig)


def _reasons_chart(source: SourceMonth) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = source.reasons.most_common(10)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(top) + 1))
    colors = {"accuracy": "#fdae61", "completeness": "#abd9e9", "consistency": "#a6d96a"}
    labels = [r if len(r) <= 60 else r[:57] + "..." for r, _ in top]
    ax.barh(labels, [n for _, n in top], color=[colors[dimension_of(r)] for r, _ in top])
    ax.invert_yaxis()
    ax.set_xlabel("rejected records")
    return _svg(fig)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def render_html(sources: list[SourceMonth], month: date) -> str:
    e = html.escape
    start, _ = month_bounds(month)
    active = [s for s in sources if s.runs]
    rows = "".join(
        f"<tr><td><a href='#{e(s.pipeline)}'>{e(s.pipeline)}</a></td><td>{e(s.department)}</td>"
        f"<td>{e(s.service_item)}</td><td class=n>{s.runs}</td><td class=n>{s.read:,}</td>"
        f"<td class=n>{s.written:,}</td><td class=n>{s.rejected:,}</td>"
        + "".join(f"<td class=n>{_pct(s.rate(d))}</td>" for d in DIMENSIONS)
        + "</tr>"
        for s in sources
    )
    total = [sum(getattr(s, k) for s in sources) for k in ("runs", "read", "written", "rejected")]
    sections = []
    for s in active:
        reasons = "".join(
            f"<tr><td>{e(r)}</td><td>{dimension_of(r)}</td><td class=n>{n:,}</td></tr>"
            for r, n in s.reasons.most_common()
        ) or "<tr><td colspan=3>no rejects</td></tr>"
        sections.append(
            f"<section id='{e(s.pipeline)}'><h2>{e(s.pipeline)}</h2><p>{e(s.description)}<br>"
            f"{e(s.department)} · item {e(s.service_item)} · {e(s.source)}</p>"
            f"<p>{s.runs} runs: read {s.read:,} = loaded {s.written:,} + rejected {s.rejected:,}. "
            + " · ".join(f"{d} {_pct(s.rate(d))}" for d in DIMENSIONS)
            + f"</p>{_daily_chart(s, month)}"
            + (_reasons_chart(s) if s.reasons else "")
            + f"<table><tr><th>reason</th><th>dimension</th><th>records</th></tr>{reasons}</table></section>"
        )
    chart = _volume_chart(active) if active else "<p>No committed runs this month.</p>"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>数据抽取月度汇总 {start:%Y-%m}</title>
<style>
body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#f3f3f3}} td.n{{text-align:right}} svg{{max-width:100%;height:auto}}
section{{margin-top:2em;border-top:2px solid #2b7bba}}
</style></head><body>
<h1>数据抽取月度汇总 · Extraction summary {start:%Y-%m}</h1>
<p>{total[0]} committed runs; read {total[1]:,} = loaded {total[2]:,} + rejected {total[3]:,}.
Accuracy, completeness and consistency are the shares of records read that no reject reason of
that dimension removed.</p>
<table><tr><th>pipeline</th><th>department</th><th>item</th><th>runs</th><th>read</th><th>loaded</th>
<th>rejected</th><th>accuracy</th><th>completeness</th><th>consistency</th></tr>{rows}</table>
{chart}
{"".join(sections)}
</body></html>
"""


EXPORTS = {
    "inventory": """SELECT pipeline, description, service_item_code, department, source_kind, database_type,
                           database_name, source_object, frequency, mode, target_dataset, updated_at
                      FROM govops.extraction_inventory ORDER BY pipeline""",
    "runs": """SELECT pipeline, dag_id, run_id, status, target_uri, read, written, rejected, rejected_by_reason,
                      watermark_from, watermark_to, onboarding, work_order_id, finished_at
                 FROM govops.extraction_run ORDER BY finished_at""",
    "catalog": """SELECT dataset, name, provider_department, source_system, database_type, source_object, schema,
                         update_frequency, share_type, open_type, classification, onboarded_at, refreshed_at,
                         refreshes, records
                    FROM govops.data_catalog ORDER BY dataset""",
}


def export_table(engine: Engine, what: str, path: Path) -> int:
    """Write the inventory, the run log or the catalog as CSV or XLSX (by the suffix); rows."""
    import csv
    import json

    from sqlalchemy import text

    with engine.connect() as conn:
        result = conn.execute(text(EXPORTS[what]))
        header = list(result.keys())
        rows = [[json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v for v in r] for r in result]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xlsx":
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = what
        sheet.append(header)
        for row in rows:
            sheet.append([v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v for v in row])
        book.save(path)
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8-sig") as handle:  # a BOM so Excel reads UTF-8
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    else:
        raise ValueError(f"{path}: export as .csv or .xlsx")
    return len(rows)


def publish_month(engine: Engine, month: date, lake_root: str) -> dict[str, str]:
    """Write the month's summary and the exports to <lake>/reports/extraction/<yyyy-mm>/."""
    import tempfile

    from pyarrow import fs as pafs

    folder = f"{lake_root.rstrip('/')}/reports/extraction/{month:%Y-%m}"
    filesystem, base = pafs.FileSystem.from_uri(folder)
    filesystem.create_dir(base, recursive=True)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        (local / "summary.html").write_text(render_html(monthly_summary(engine, month), month), encoding="utf-8")
        for what in EXPORTS:
            export_table(engine, what, local / f"{what}.xlsx")
        for item in sorted(local.iterdir()):
            pafs.copy_files(str(item), f"{base}/{item.name}", destination_filesystem=filesystem)
            written[item.stem] = f"{folder}/{item.name}"
    return written
