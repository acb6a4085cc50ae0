"""Theme-domain dashboards (可视化展现服务, item 18): static pages generated from the spec.

``<lake>/reports/analytics/<spec>/<run>/``:
- ``index.html``: the screens, with a link to each page;
- ``big_<screen>_<domain>.html``: one page per theme domain (主题域) of a big screen (大屏),
  laid out for 1920 x 1080, the domain's outputs as charts (or tables when the output has no
  chart) on a dark grid;
- ``module_<screen>_<module>.html``: one page per module of a medium (960 x 540) or small
  (480 x 360) screen, its output's chart.
Each page is self-contained: charts are inline SVG drawn by matplotlib (govops.charts), no
script, nothing loaded from elsewhere (the charts are static: no tooltips or zoom). Pages
are numbered (``<screen>`` and ``<domain>`` / ``<module>`` are positions in the
spec), so file names stay ASCII.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from govops.analytics import difficulty as dif
from govops.analytics.report import chart_svg, page, publish, table_html
from govops.analytics.spec import AnalyticsSpec, Screen

e = html.escape
SIZES = {"big": (1920, 1080), "medium": (960, 540), "small": (480, 360)}
_DARK = """body{background:#0b1a33;color:#e8eefc;margin:0;padding:16px;max-width:none}
h1{margin:0 0 8px;font-size:28px} .grid{display:grid;gap:12px} .card{background:#fff;color:#222;border-radius:6px;
padding:8px;overflow:hidden} .card h2{font-size:16px;margin:0 0 4px} .meta{font-size:12px;opacity:.8}"""


def _panel(spec: AnalyticsSpec, name: str, rows: list[dict[str, Any]]) -> str:
    out = spec.outputs[name]
    if out.chart and rows:
        body = f"<figure class=chart>{chart_svg(out, rows)}</figure>"
    else:
        body = table_html(list(out.columns.values()), [[r[c] for c in out.columns] for r in rows[:20]])
    return f"<section class=card id='{e(name)}'><h2>{e(out.title)}</h2>{body}</section>"


def _screen_page(spec: AnalyticsSpec, screen: Screen, title: str, shown: list[str],
                 results: Mapping[str, list[dict[str, Any]]], footer: str) -> str:  # fmt: skip
    width, height = SIZES[screen.size]
    columns = 1 if len(shown) == 1 else 2 if screen.size != "big" or len(shown) <= 4 else 3
    style = (_DARK + f" body{{width:{width}px;min-height:{height}px;box-sizing:border-box}}"
             f" .grid{{grid-template-columns:repeat({columns},1fr)}}")  # fmt: skip
    panels = "".join(_panel(spec, name, results[name]) for name in shown)
    body = (f"<h1>{e(spec.title)} · {e(title)}</h1><p class=meta>{e(screen.name)}（{width}×{height}）· {footer}</p>"
            f"<div class=grid>{panels}</div>")  # fmt: skip
    return page(f"{spec.title} · {title}", body, style)


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
    """Write the dashboard's pages; their URIs by file name."""
    from govops.analytics.runs import read_outputs

    made = pages(spec, read_outputs(manifest), manifest, run_id)

    def write(local: Path) -> list[str]:
        for name, text in made.items():
            (local / name).write_text(text, encoding="utf-8")
        return list(made)

    return publish(lake_root, spec, run_id, write)
