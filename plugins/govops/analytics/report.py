"""Report deliverables (数据报表服务, item 15): a page, a workbook and data files, with the
spec's Chinese titles and headers in every format.

``<lake>/reports/analytics/<spec>/<run>/``:
- ``report.html``: one self-contained page (charts as inline SVG, no script, nothing loaded
  from elsewhere), a section per output with its chart and its table;
- ``report.xlsx``: one sheet per output (openpyxl), headers in Chinese;
- ``<output>.csv``: UTF-8 with a BOM, so Excel opens Chinese correctly;
- ``report.pdf``: the title, the run's details, the data sources and each output's chart
  (matplotlib, PNG, its text in the same font) and table, drawn by fpdf2 with a CJK font
  embedded (subset). The font is
  ``GOVOPS_CJK_FONT`` (a .ttf, .otf or .ttc file; of a collection the first face), else the
  first of ``CJK_FONTS`` on the machine (Debian's fonts-wqy-microhei, fonts-noto-cjk, …).
  With no font, or one that lacks a glyph of the report's text, the PDF is skipped with a
  logged reason (never a PDF with empty boxes); the other files are delivered as usual.
"""

from __future__ import annotations

import csv
import html
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from govops.analytics import difficulty as dif
from govops.analytics.spec import AnalyticsSpec, Output

log = logging.getLogger(__name__)
CJK_FONT_ENV = "GOVOPS_CJK_FONT"
CJK_FONTS = (  # Debian / Ubuntu packages, in order of preference
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


def chart_svg(output: Output, rows: list[dict[str, Any]]) -> str:
    from govops.charts import svg_markup

    return svg_markup(chart_figure(output, rows))


def chart_png(output: Output, rows: list[dict[str, Any]], font: Path) -> bytes:
    """The chart as PNG with its text drawn in ``font`` (the PDF's CJK font)."""
    import io

    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(font))
    with plt.rc_context({"font.family": font_manager.FontProperties(fname=str(font)).get_name()}):
        figure = chart_figure(output, rows)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def chart_figure(output: Output, rows: list[dict[str, Any]]) -> Any:
    """The output's chart as a matplotlib figure (the HTML report's and the PDF's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart = output.chart
    assert chart is not None
    series: dict[str, dict[Any, float]] = {}
    for row in rows:
        key = str(row[chart.series]) if chart.series else output.columns[chart.y]
        series.setdefault(key, {})[row[chart.x]] = float(row[chart.y] or 0)
    xs = sorted({row[chart.x] for row in rows}, key=lambda v: (v is None, str(v)))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(series), 1)
    for n, (name, points) in enumerate(sorted(series.items())):
        values = [points.get(x, 0.0) for x in xs]
        if chart.type == "line":
            ax.plot(range(len(xs)), values, marker="o", markersize=3, label=name)
        else:
            ax.bar([i + n * width for i in range(len(xs))], values, width=width, label=name)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel(output.columns[chart.x])
    ax.set_ylabel(output.columns[chart.y])
    ax.set_title(chart.title or output.title)
    if chart.series or len(series) > 1:
        ax.legend(fontsize=8, ncol=min(len(series), 4))
    return fig


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def render_html(spec: AnalyticsSpec, results: Mapping[str, list[dict[str, Any]]], manifest: Mapping[str, Any],
                run_id: str) -> str:  # fmt: skip
    e = html.escape
    sections = []
    for name, out in spec.outputs.items():
        rows = results[name]
        head = "".join(f"<th>{e(h)}</th>" for h in out.columns.values())
        body = "".join("<tr>" + "".join(f"<td>{e(_cell(r[c]))}</td>" for c in out.columns) + "</tr>" for r in rows)
        figure = f"<figure class=chart>{chart_svg(out, rows)}</figure>" if out.chart and rows else ""
        sections.append(f"<section id='{e(name)}'><h2>{e(out.title)}</h2>{figure}"
                        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>")  # fmt: skip
    inputs = "".join(
        f"<li><code>{e(i['dataset'])}</code> ({e(i['domain'])}): {i['rows']:,} 行"
        f"{', 版本 ' + e(str((i.get('version') or {}).get('run', ''))) if i.get('version') else ''}</li>"
        for i in manifest["inputs"]
    )  # fmt: skip
    d = dif.difficulty(spec)
    return page(
        spec.title,
        f"""<h1>{e(spec.title)}</h1><p>{e(spec.description)}</p>
<p>需求部门 {e(spec.department)} · 工单 <code>{e(str(manifest["run"].get("work_order_id") or spec.work_order))}</code>
· 数据领域 {e("、".join(spec.domains))} · 难度系数 {d} · 运行 <code>{e(run_id)}</code>
· 生成时间 {e(str(manifest["finished_at"]))}</p>
<h2>数据来源</h2><ul>{inputs}</ul>{"".join(sections)}""",
    )


def page(title: str, body: str, style: str = "", head: str = "") -> str:
    """An HTML page that loads nothing from elsewhere; ``head``: what a page with scripts
    loads (a dashboard's chart library, by a relative name)."""
    return f"""<!doctype html><html lang=zh-CN><head><meta charset=utf-8><title>{html.escape(title)}</title>{head}
<style>body{{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:2em;color:#222;
max-width:1100px}} table{{border-collapse:collapse;margin:.5em 0 2em}} td,th{{padding:3px 10px;
border-bottom:1px solid #ddd;text-align:left}} figure.chart svg{{max-width:100%;height:auto}}{style}</style></head>
<body>{body}</body></html>"""


def table_html(headers: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sheet_title(title: str, used: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "_", title)[:31] or "sheet"
    name, n = base, 2
    while name in used:
        name, n = f"{base[:28]}_{n}", n + 1
    used.add(name)
    return name


def write_xlsx(path: Path, spec: AnalyticsSpec, results: Mapping[str, list[dict[str, Any]]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    used: set[str] = set()
    for name, out in spec.outputs.items():
        sheet = book.create_sheet(_sheet_title(out.title, used))
        sheet.append(list(out.columns.values()))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in results[name]:
            sheet.append([row[c] for c in out.columns])
        sheet.freeze_panes = "A2"
    book.save(path)


def write_csv(path: Path, output: Output, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:  # a BOM: Excel reads it as UTF-8
        writer = csv.writer(handle)
        writer.writerow(list(output.columns.values()))
        writer.writerows([row[c] for c in output.columns] for row in rows)


def cjk_font() -> Path | None:
    """The font of the PDF: GOVOPS_CJK_FONT, else the first of CJK_FONTS that exists."""
    configured = os.environ.get(CJK_FONT_ENV)
    if configured:
        return Path(configured)
    return next((Path(p) for p in CJK_FONTS if Path(p).is_file()), None)


def _missing_glyphs(font: Path, text: str) -> list[str]:
    from fontTools.ttLib import TTFont

    with TTFont(font, fontNumber=0, lazy=True) as face:
        cmap = face.getBestCmap() or {}
    return sorted({c for c in text if not c.isspace() and ord(c) not in cmap})


def _version(source: Mapping[str, Any]) -> str:
    """The run that published an input (its commit marker's run id), or ''."""
    run = (source.get("version") or {}).get("run")
    return str(run.get("run_id", "")) if isinstance(run, dict) else str(run or "")


def _pdf_blocks(spec: AnalyticsSpec, results: Mapping[str, list[dict[str, Any]]], manifest: Mapping[str, Any],
                run_id: str) -> list[tuple[str, Any]]:  # fmt: skip
    """The PDF's content as (kind, value): every string it draws, so the font can be checked
    for each character before anything is drawn."""
    order = manifest["run"].get("work_order_id") or spec.work_order
    blocks: list[tuple[str, Any]] = [
        ("title", spec.title), ("text", spec.description),
        ("text", f"需求部门 {spec.department} · 工单 {order} · 数据领域 {'、'.join(spec.domains)} · "
                 f"难度系数 {dif.difficulty(spec)} · 运行 {run_id} · 生成时间 {manifest['finished_at']}"),
        ("heading", "数据来源"),
        ("table", [["数据集", "数据领域", "行数", "版本"]]
         + [[i["dataset"], i["domain"], _cell(i["rows"]), _version(i)] for i in manifest["inputs"]]),
    ]  # fmt: skip
    for name, out in spec.outputs.items():
        blocks.append(("heading", out.title))
        if out.chart and results[name]:
            blocks.append(("chart", name))
        blocks.append(("table", [list(out.columns.values())] + [[_cell(r[c]) for c in out.columns]
                                                                 for r in results[name]]))  # fmt: skip
    return blocks


def write_pdf(path: Path, spec: AnalyticsSpec, results: Mapping[str, list[dict[str, Any]]],
              manifest: Mapping[str, Any], run_id: str) -> str | None:  # fmt: skip
    """Write the report as PDF with the CJK font embedded; None (and a logged reason, nothing
    written) when no font on the machine renders all of its text."""
    import io

    from fpdf import FPDF
    from fpdf.fonts import FontFace

    font = cjk_font()
    if font is None or not font.is_file():
        why = (f"{CJK_FONT_ENV}={font} is not a file" if font else
               f"no CJK font: set {CJK_FONT_ENV} to a .ttf/.otf/.ttc file, or install fonts-wqy-microhei")  # fmt: skip
        log.warning("%s: report.pdf skipped: %s", spec.name, why)
        return None
    blocks = _pdf_blocks(spec, results, manifest, run_id)
    text = "".join(str(v) for kind, v in blocks if kind not in ("table", "chart"))  # a chart's text is in its table
    text += "".join(o.chart.title or "" for o in spec.outputs.values() if o.chart)
    text += "".join(cell for kind, v in blocks if kind == "table" for row in v for cell in row)
    missing = _missing_glyphs(font, text)
    if missing:
        log.warning("%s: report.pdf skipped: font %s has no glyph for %s", spec.name, font, "".join(missing[:20]))
        return None
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(spec.title)
    pdf.set_creator("govops")
    pdf.add_font("cjk", fname=str(font))
    pdf.add_page()
    sizes = {"title": 16, "heading": 12, "text": 9, "table": 8, "chart": 8}
    for kind, value in blocks:
        pdf.set_font("cjk", size=sizes[kind])
        if kind == "chart":
            image = chart_png(spec.outputs[value], results[value], font)
            pdf.image(io.BytesIO(image), w=min(pdf.epw, 230))
            pdf.ln(2)
        elif kind == "table":
            with pdf.table(headings_style=FontFace(fill_color=(230, 236, 245)), text_align="LEFT",
                           line_height=pdf.font_size * 1.6) as table:  # fmt: skip
                for row in value:
                    cells = table.row()
                    for cell in row:
                        cells.cell(cell)
            pdf.ln(4)
        elif value:
            pdf.multi_cell(0, pdf.font_size * 1.6, str(value), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1 if kind == "text" else 2)
    pdf.output(str(path))
    return path.name


def publish(lake_root: str, spec: AnalyticsSpec, run_id: str, write: Callable[[Path], list[str]]) -> dict[str, str]:
    """Run ``write`` in a local folder and copy what it wrote (file names it returns) to
    ``<lake>/reports/analytics/<spec>/<run>/``; the URI of each file by its name."""
    from pyarrow import fs as pafs

    from govops.spark.manifest import _safe

    folder = f"{lake_root.rstrip('/')}/reports/analytics/{spec.name}/{_safe(run_id)}"
    with tempfile.TemporaryDirectory() as tmp:
        names = write(Path(tmp))
        filesystem, base = pafs.FileSystem.from_uri(folder)
        filesystem.create_dir(base, recursive=True)
        pafs.copy_files(tmp, base, destination_filesystem=filesystem)
    return {name: f"{folder}/{name}" for name in names}


def write_report(lake_root: str, spec: AnalyticsSpec, manifest: Mapping[str, Any], *, run_id: str) -> dict[str, str]:
    """Write the report's files under ``<lake>/reports/analytics/<spec>/<run>/``; their URIs."""
    from govops.analytics.runs import read_outputs

    results = read_outputs(manifest)

    def write(local: Path) -> list[str]:
        (local / "report.html").write_text(render_html(spec, results, manifest, run_id), encoding="utf-8")
        write_xlsx(local / "report.xlsx", spec, results)
        for name, output in spec.outputs.items():
            write_csv(local / f"{name}.csv", output, results[name])
        pdf = write_pdf(local / "report.pdf", spec, results, manifest, run_id)
        return ["report.html", "report.xlsx", *(f"{name}.csv" for name in spec.outputs), *([pdf] if pdf else [])]

    written = publish(lake_root, spec, run_id, write)
    return {{"report.html": "html", "report.xlsx": "xlsx", "report.pdf": "pdf"}.get(k)
            or f"csv_{k.removesuffix('.csv')}": v for k, v in written.items()}  # fmt: skip
