"""Theme-domain dashboards (可视化展现服务, item 18): pages generated from the spec, with
interactive charts that work offline.

``<lake>/reports/analytics/<spec>/<run>/``:
- ``index.html``: the screens, with a link to each page;
- ``big_<screen>_<domain>.html``: one page per theme domain (主题域) of a big screen (大屏),
  laid out for 1920 x 1080, the domain's outputs as charts (or tables when the output has no
  chart) on a dark grid;
- ``module_<screen>_<module>.html``: one page per module of a medium (960 x 540) or small
  (480 x 360) screen, its output's chart;
- ``plotly-<version>.min.js``: the chart library (Plotly's JavaScript from the plotly wheel),
  written once next to the pages, which load it by its relative name.
Charts are Plotly: a tooltip on hover with the Chinese headers, a legend (click to hide a
series) when the chart has series, and for line charts zoom along the x axis (drag; a
double click resets). The pages load nothing from elsewhere: the folder works as files, on a
machine without network. Pages are numbered (``<screen>`` and ``<domain>`` / ``<module>``
are positions in the spec), so file names stay ASCII.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from govops.analytics import difficulty as dif
from govops.analytics.report import page, publish, table_html
from govops.analytics.spec import AnalyticsSpec, Output, Screen

e = html.escape
SIZES = {"big": (1920, 1080), "medium": (960, 540), "small": (480, 360)}
FONT = 'system-ui, "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", sans-serif'
_DARK = """body{background:#0b1a33;color:#e8eefc;margin:0;padding:16px;max-width:none}
h1{margin:0 0 8px;font-size:28px} .grid{display:grid;gap:12px} .card{background:#fff;color:#222;border-radius:6px;
padding:8px;overflow:hidden} .card h2{font-size:16px;margin:0 0 4px} .meta{font-size:12px;opacity:.8}"""


def _number(value: Any) -> Any:
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


def chart_figure(output: Output, rows: list[dict[str, Any]], height: int) -> Any:
    """The output's chart as a Plotly figure: a trace per series (``chart.series``) with a
    Chinese tooltip; line charts zoom along x, bar charts stay fixed."""
    import plotly.graph_objects as go

    chart = output.chart
    assert chart is not None
    x_title, y_title = output.columns[chart.x], output.columns[chart.y]
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series.setdefault(str(row[chart.series]) if chart.series else y_title, []).append(row)
    figure = go.Figure()
    for name, points in sorted(series.items()):
        xs, ys = [str(r[chart.x]) for r in points], [_number(r[chart.y]) or 0 for r in points]
        tip = f"{e(x_title)}：%{{x}}<br>{e(y_title)}：%{{y:,}}<extra>{e(name)}</extra>"
        if chart.type == "line":
            figure.add_trace(go.Scatter(x=xs, y=ys, name=e(name), mode="lines+markers", hovertemplate=tip))
        else:
            figure.add_trace(go.Bar(x=xs, y=ys, name=e(name), hovertemplate=tip))
    line = chart.type == "line"
    subtitle = e(chart.title) if chart.title and chart.title != output.title else ""  # the card shows the output's
    figure.update_layout(
        template="none", height=height, margin={"l": 60, "r": 20, "t": 40 if subtitle else 16, "b": 60},
        title={"text": subtitle, "font": {"size": 15}}, font={"family": FONT, "size": 12},
        showlegend=bool(chart.series), legend={"orientation": "h", "y": -0.25}, hovermode="closest",
        dragmode="zoom" if line else False, paper_bgcolor="#fff", plot_bgcolor="#fff",
        colorway=["#1f6feb", "#f78166", "#3fb950", "#d29922", "#a371f7", "#39c5cf", "#ff7b72", "#8b949e"],
    )  # fmt: skip
    figure.update_xaxes(title_text=e(x_title), type="category", fixedrange=not line, gridcolor="#eee")
    figure.update_yaxes(title_text=e(y_title), fixedrange=True, gridcolor="#eee", rangemode="tozero")
    return figure


def _panel(spec: AnalyticsSpec, name: str, rows: list[dict[str, Any]], height: int, slot: str) -> str:
    from govops.charts import plotly_markup

    out = spec.outputs[name]
    if out.chart and rows:
        config = {"modeBarButtonsToRemove": ["select2d", "lasso2d"], "displayModeBar": "hover"}
        body = plotly_markup(chart_figure(out, rows, height), f"chart-{slot}", config)
    else:
        body = table_html(list(out.columns.values()), [[r[c] for c in out.columns] for r in rows[:20]])
    return f"<section class=card id='{e(name)}'><h2>{e(out.title)}</h2>{body}</section>"


def _screen_page(spec: AnalyticsSpec, screen: Screen, title: str, shown: list[str],
                 results: Mapping[str, list[dict[str, Any]]], footer: str) -> str:  # fmt: skip
    from govops.charts import plotly_js_name

    width, height = SIZES[screen.size]
    columns = 1 if len(shown) == 1 else 2 if screen.size != "big" or len(shown) <= 4 else 3
    rows = -(-len(shown) // columns)
    chart_height = max(200, (height - 150) // rows - 40)  # the screen's height, less the title and the cards' headers
    style = (_DARK + f" body{{width:{width}px;min-height:{height}px;box-sizing:border-box}}"
             f" .grid{{grid-template-columns:repeat({columns},1fr)}}")  # fmt: skip
    panels = "".join(_panel(spec, name, results[name], chart_height, f"{n}") for n, name in enumerate(shown, 1))
    body = (f"<h1>{e(spec.title)} · {e(title)}</h1><p class=meta>{e(screen.name)}（{width}×{height}）· {footer}</p>"
            f"<div class=grid>{panels}</div>")  # fmt: skip
    return page(f"{spec.title} · {title}", body, style, head=f"<script src='{plotly_js_name()}'></script>")


def pages(spec: AnalyticsSpec, results: Mapping[str, list[dict[str, Any]]], manifest: Mapping[str, Any],
          run_id: str) -> dict[str, str]:  # fmt: skip
    """File name -> page, index first."""
    footer = e(f"运行 {run_id} · 数据截至 {manifest['finished_at']}")
    found: dict[str, str] = {}
    links = []
    for s, screen in enumerate(spec.screens, start=1):
        if screen.size == "big":
            for d, (domain, shown) in enumerate(screen.theme_domains.items(), start=1):
                name = f"big_{s}_{d}.html"
                found[name] = _screen_page(spec, screen, f"主题域：{domain}", shown, results, footer)
                links.append((screen, f"主题域 {domain}", name))
        else:
            for m, (module, output) in enumerate(screen.modules.items(), start=1):
                name = f"module_{s}_{m}.html"
                found[name] = _screen_page(spec, screen, f"模块：{module}", [output], results, footer)
                links.append((screen, f"模块 {module}", name))
    billed = "；".join(f"{line.quantity} × {line.difficulty}（{line.basis}）" for line in dif.delivery_lines(spec))
    items = "".join(f"<li>{e(screen.name)}（{screen.size}）：<a href='{e(name)}'>{e(label)}</a></li>"
                    for screen, label, name in links)  # fmt: skip
    index = page(spec.title, f"<h1>{e(spec.title)}</h1><p>{e(spec.description)}</p><p>需求部门 {e(spec.department)}"
                 f" · 计量（主题域）{e(billed)}</p><ul>{items}</ul>")  # fmt: skip
    return {"index.html": index, **found}


def write_dashboard(lake_root: str, spec: AnalyticsSpec, manifest: Mapping[str, Any], *,
                    run_id: str) -> dict[str, str]:  # fmt: skip
    """Write the dashboard's pages and the chart library next to them; their URIs by file name."""
    from govops.analytics.runs import read_outputs
    from govops.charts import plotly_js, plotly_js_name

    made = pages(spec, read_outputs(manifest), manifest, run_id)

    def write(local: Path) -> list[str]:
        for name, text in made.items():
            (local / name).write_text(text, encoding="utf-8")
        (local / plotly_js_name()).write_text(plotly_js(), encoding="utf-8")  # once, for every page
        return [*made, plotly_js_name()]

    return publish(lake_root, spec, run_id, write)
