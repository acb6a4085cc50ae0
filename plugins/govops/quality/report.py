"""The outputs of a check run for people: the quality report (质量报告, HTML with charts:
score per dimension, trend over runs, top failing rules) and the anomaly list
(异常数据清单) exported as CSV and XLSX for the data owner, with each failing record's
fields as columns."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from govops.charts import png_data_uri
from govops.quality.results import Score, rule_pass_ratio
from govops.quality.suites import DIMENSIONS, Suite

XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, less the header: the CSV always holds everything
STATUS_ZH = {"pass": "通过", "warn": "警告", "fail": "不通过"}


def _charts(score: Score, figures: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = {}
    fig, ax = plt.subplots(figsize=(7, 3))
    names = list(score.by_dimension)
    ax.bar(names, [score.by_dimension[n] for n in names], color="#3b7dd8")
    ax.set_ylim(min([*score.by_dimension.values(), 90.0]) - 1, 100.5)
    ax.set_ylabel("score")
    ax.set_title("score per quality dimension")
    ax.tick_params(axis="x", rotation=20)
    charts["dimensions"] = png_data_uri(fig)

    fig, ax = plt.subplots(figsize=(7, 3))
    points = [(i, float(h["score"])) for i, h in enumerate(history)]
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#2a9d8f")
    ax.set_xticks([p[0] for p in points], [str(h["finished_at"])[:10] for h in history], rotation=30, fontsize=7)
    ax.set_ylabel("score")
    ax.set_title(f"score over the last {len(history)} run(s)")
    charts["trend"] = png_data_uri(fig)

    failing = sorted((f for f in figures if f["unexpected_count"]), key=lambda f: -f["unexpected_count"])[:10]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * max(len(failing), 1)))
    ax.barh([f["rule"][:60] for f in failing][::-1], [f["unexpected_count"] for f in failing][::-1], color="#e76f51")
    ax.set_xlabel("anomalies")
    ax.set_title("top failing rules")
    charts["rules"] = png_data_uri(fig)
    return charts


def write_report(
    folder: Path, suite: Suite, figures: dict[str, Any], score: Score, history: list[dict[str, Any]], *,
    data_docs: str | None, exports: dict[str, str],
) -> Path:  # fmt: skip
    """The run's report as ``folder/report.html``."""
    charts = _charts(score, figures["results"], history)
    e = html.escape
    rows = []
    for f in figures["results"]:
        considered = f["element_count"] - f["missing_count"]
        error = f.get("exception")
        status = "error" if error else "ok" if f["success"] else f["severity"]
        met = f"错误 error: {e(error)}" if error else "✓" if f["success"] else "✗"
        rows.append(
            f"<tr class={status}><td>{e(f['rule'])}</td><td>{e(DIMENSIONS[f['dimension']])} {e(f['dimension'])}</td>"
            f"<td>{e(f['severity'])}</td><td class=n>{considered:,}</td><td class=n>{f['unexpected_count']:,}</td>"
            f"<td class=n>{100 * rule_pass_ratio(f):.2f}</td><td>{met}</td>"
            f"<td>{e(f.get('evaluated_by') or '')}</td></tr>"
        )
    errors = [f for f in figures["results"] if f.get("exception")]
    error_note = (f"<p id=rule-errors class=error>{len(errors)} rule(s) could not run and count as failed: "
                  + "; ".join(f"<b>{e(f['rule'])}</b>: {e(f['exception'])}" for f in errors) + "</p>"
                  if errors else "")  # fmt: skip
    dims = "".join(f"<tr><td>{e(DIMENSIONS[d])} {e(d)}</td><td class=n id='dim-{d}'>{v:.2f}</td></tr>"
                   for d, v in score.by_dimension.items())  # fmt: skip
    links = " · ".join(f"<a href='{e(href)}'>{e(label)}</a>" for label, href in exports.items())
    docs = f"<a id=data-docs href='{e(data_docs)}'>Great Expectations data docs</a>" if data_docs else ""
    page = f"""<!doctype html><html lang=zh><head><meta charset=utf-8>
<title>质量报告 {e(suite.name)}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1100px}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd}}
.n{{text-align:right}} table{{border-collapse:collapse}} tr.fail td{{background:#fde2e1}}
tr.warn td{{background:#fff3cd}} tr.error td, p.error{{background:#f8d7da;color:#842029}}
.badge{{padding:4px 10px;border-radius:4px;color:#fff}}
.pass{{background:#2a9d8f}} .warn{{background:#e9c46a}} .fail{{background:#e76f51}}</style></head><body>
<h1>质量检查报告 · Quality report</h1>
<p>suite <b id=suite>{e(suite.name)}</b> ({e(suite.side)}, item {e(suite.service_item)}) on
<code>{e(suite.dataset)}</code>, {e(figures['mode'])} mode</p>
<p>rows checked <b id=rows>{figures['rows']:,}</b>
· rows with anomalies <b id=anomaly-rows>{figures.get('anomaly_rows') or 0:,}</b>
· score <b id=score>{score.score:.2f}</b> · status <span id=status class='badge {score.status}'>{e(score.status)}
{STATUS_ZH[score.status]}</span> (pass ≥ {suite.thresholds['pass']}, warn ≥ {suite.thresholds['warn']})</p>
{error_note}
<p>{docs} {('· ' + links) if links else ''}{' (ID and phone numbers masked; the full list is with the data owner)'
                                            if links else ''}</p>
<h2>Score per dimension</h2><table>{dims}</table><img alt="score per dimension" src="{charts['dimensions']}">
<h2>Trend</h2><img alt="trend" src="{charts['trend']}">
<h2>Top failing rules</h2><img alt="top failing rules" src="{charts['rules']}">
<h2>Rules</h2><table><tr><th>rule</th><th>dimension</th><th>severity</th><th>rows checked</th><th>anomalies</th>
<th>pass %</th><th>met</th><th>evaluated by</th></tr>{''.join(rows)}</table>
</body></html>"""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "report.html"
    target.write_text(page, encoding="utf-8")
    return target


def export_anomalies(uris: list[str], folder: Path, *, masked: bool) -> dict[str, Any]:
    """The anomaly list (Parquet folders in the lake) as ``anomalies.csv`` (UTF-8 with BOM,
    so Excel reads the Chinese) and ``anomalies.xlsx``: rule, dimension, severity, column,
    value, reason, then the record's fields. ``masked``: the view for the report (the masked
    value and record), else the full list for the data owner. Returns the files and the row
    count."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

    parts = []
    for uri in uris:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        parts.append(ds.dataset(path, filesystem=filesystem, format="parquet").to_table())
    frame = pa.concat_tables(parts).to_pandas()
    if masked:
        frame = (frame.drop(columns=["value", "record"])
                 .rename(columns={"masked_value": "value", "masked_record": "record"}))  # fmt: skip
    else:
        frame = frame.drop(columns=["masked_value", "masked_record"])
    if len(frame):
        fields = pd.json_normalize([json.loads(r) if r else {} for r in frame.pop("record")]).add_prefix("record.")
        frame = pd.concat([frame.reset_index(drop=True), fields], axis=1)
    else:
        frame = frame.drop(columns=["record"], errors="ignore")
    folder.mkdir(parents=True, exist_ok=True)
    csv, xlsx = folder / "anomalies.csv", folder / "anomalies.xlsx"
    frame.to_csv(csv, index=False, encoding="utf-8-sig")
    frame.head(XLSX_MAX_ROWS).to_excel(xlsx, index=False, sheet_name="异常数据清单")
    return {"csv": str(csv), "xlsx": str(xlsx), "rows": len(frame), "xlsx_rows": min(len(frame), XLSX_MAX_ROWS)}
