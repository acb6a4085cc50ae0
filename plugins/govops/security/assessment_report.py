"""The security assessment report (数据安全评估报告) of one run, for people.

``<lake>/reports/security/assessment/<run>/``: ``report.html`` (charts: storage by zone and
grade, this run's findings by kind and severity, finding status over runs; the storage
table per dataset and the issue list), and the issue list with each finding's
rectification record (found, fixed, re-verified) as ``issues.csv`` (UTF-8 with BOM, so Excel
reads the Chinese) and ``issues.xlsx``. Like the findings, the report holds column names,
counts and ratios, never a value of the data.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from govops.charts import png_data_uri
from govops.security import assessment as A

STATUS_ZH = {"open": "待整改", "fixed": "已整改待复核", "reverified": "已复核"}
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
GRADE_ZH = {"core": "核心数据", "important": "重要数据", "general": "一般数据", A.UNLABELED: "未分级"}
ISSUE_COLUMNS = (  # the issue list, with the rectification record
    "id", "kind", "kind_zh", "dataset", "subject", "severity", "detail", "status", "status_zh", "found_at",
    "found_run_id", "last_seen_run_id", "fixed_at", "fixed_by", "fix_note", "reverified_at", "reverified_run_id",
    "history",
)  # fmt: skip
_COLORS = {"core": "#c0392b", "important": "#e67e22", "general": "#3b7dd8", A.UNLABELED: "#9e9e9e",
           "high": "#c0392b", "medium": "#e9c46a", "low": "#8ab17d",
           "open": "#e76f51", "fixed": "#e9c46a", "reverified": "#2a9d8f"}  # fmt: skip


def report_folder(lake_root: str, run_id: str) -> str:
    from govops.spark.manifest import _safe

    return f"{lake_root.rstrip('/')}/reports/security/assessment/{_safe(run_id)}"


def _history_text(history: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for h in history:
        who = f" {h['by']}" if h.get("by") else ""
        run = f" run {h['run']}" if h.get("run") else ""
        note = f": {h['note']}" if h.get("note") else ""
        parts.append(f"{h['at'][:19]} {h['event']}{who}{run}{note}")
    return " | ".join(parts)


def issue_rows(found: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for f in found:
        row = {c: f.get(c) for c in ISSUE_COLUMNS}
        row.update(kind_zh=A.KINDS.get(f["kind"], f["kind"]), status_zh=STATUS_ZH[f["status"]],
                   history=_history_text(f.get("history") or []))  # fmt: skip
        for c in ("found_at", "fixed_at", "reverified_at"):
            row[c] = f[c].isoformat(timespec="seconds") if f.get(c) else None
        rows.append(row)
    return rows


def export_issues(found: Sequence[Mapping[str, Any]], folder: Path) -> dict[str, Any]:
    """``issues.csv`` (UTF-8 with BOM) and ``issues.xlsx`` (openpyxl)."""
    import pandas as pd

    frame = pd.DataFrame(issue_rows(found), columns=list(ISSUE_COLUMNS))
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "issues.csv", index=False, encoding="utf-8-sig")
    frame.to_excel(folder / "issues.xlsx", index=False, sheet_name="问题清单", engine="openpyxl")
    return {"csv": str(folder / "issues.csv"), "xlsx": str(folder / "issues.xlsx"), "rows": len(frame)}


def _charts(summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    charts = {}
    by_zone_grade = summary["distribution"]["by_zone_grade"]
    zones = list(by_zone_grade)
    grades = [g for g in (*A.GRADES, A.UNLABELED) if any(g in by_zone_grade[z] for z in zones)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, measure in zip(axes, ("rows", "bytes"), strict=True):
        bottom = [0] * len(zones)
        for g in grades:
            values = [by_zone_grade[z].get(g, {}).get(measure, 0) for z in zones]
            ax.bar(zones, values, bottom=bottom, label=g, color=_COLORS[g])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_title(f"storage by zone and grade: {measure}")
    axes[0].legend(fontsize=7)
    charts["storage"] = png_data_uri(fig)

    table = summary["findings"]["by_kind_severity"]
    kinds = list(table)
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.4 * max(len(kinds), 1)))
    left = [0] * len(kinds)
    for s in A.SEVERITIES:
        values = [table[k].get(s, 0) for k in kinds]
        ax.barh(kinds, values, left=left, label=s, color=_COLORS[s])
        left = [a + v for a, v in zip(left, values, strict=True)]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("findings of this run by kind and severity")
    ax.legend(fontsize=7)
    charts["findings"] = png_data_uri(fig)

    fig, ax = plt.subplots(figsize=(9, 3))
    labels = [f"#{h['id']}" for h in history]
    bottom = [0] * len(history)
    for s in A.STATUSES:
        values = [int((h["summary"].get("status") or {}).get(s, 0)) for h in history]
        ax.bar(labels, values, bottom=bottom, label=s, color=_COLORS[s])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"finding status over the last {len(history)} run(s)")
    ax.set_xlabel("assessment run")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    charts["status"] = png_data_uri(fig)
    return charts


def write_report(folder: Path, summary: Mapping[str, Any], found: Sequence[Mapping[str, Any]],
                 history: Sequence[Mapping[str, Any]], exports: Mapping[str, str]) -> Path:  # fmt: skip
    charts = _charts(summary, history)
    e = html.escape
    dist = summary["distribution"]
    zone_rows = "".join(
        f"<tr id='zone-{e(z)}'><td>{e(z)}</td><td class=n>{v['datasets']:,}</td><td class=n>{v['rows']:,}</td>"
        f"<td class=n>{v['files']:,}</td><td class=n>{v['bytes']:,}</td></tr>" for z, v in dist["by_zone"].items())
    grade_rows = "".join(
        f"<tr id='grade-{e(g)}'><td>{e(GRADE_ZH.get(g, g))} {e(g)}</td><td class=n>{v['datasets']:,}</td>"
        f"<td class=n>{v['rows']:,}</td><td class=n>{v['bytes']:,}</td></tr>" for g, v in dist["by_grade"].items())
    dataset_rows = "".join(
        f"<tr><td>{e(d['dataset'])}</td><td>{e(d['zone'])}</td><td>{e(d['grade'])}</td><td class=n>{d['rows']:,}</td>"
        f"<td class=n>{d['bytes']:,}</td><td class=n>{d['columns']}</td><td class=n>{d['sensitive_columns']}</td>"
        f"<td class=n>{d['unmasked_columns']}</td></tr>" for d in dist["datasets"])
    issue_rows_html = "".join(
        f"<tr class='{e(r['status'])} {e(r['severity'])}'><td>{r['id']}</td><td>{e(r['kind_zh'])}<br>"
        f"<small>{e(r['kind'])}</small></td><td class=dataset>{e(r['dataset'])}</td><td>{e(r['subject'] or '')}</td>"
        f"<td>{SEVERITY_ZH[r['severity']]} {e(r['severity'])}</td><td class=detail>{e(r['detail'])}</td>"
        f"<td>{e(r['status_zh'])}<br><small>{e(r['status'])}</small></td><td>{e((r['found_at'] or '')[:10])}</td>"
        f"<td>{e((r['fixed_at'] or '')[:10])} {e(r['fixed_by'] or '')}<br><small>{e(r['fix_note'] or '')}</small></td>"
        f"<td>{e((r['reverified_at'] or '')[:10])}</td></tr>" for r in issue_rows(found))
    changes = summary["changes"]
    status = summary["status"]
    links = " · ".join(f"<a href='{e(href)}'>{e(label)}</a>" for label, href in exports.items())
    page = f"""<!doctype html><html lang=zh><head><meta charset=utf-8>
<title>数据安全评估报告 {e(summary['run_id'])}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1400px}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd;
vertical-align:top}} .n{{text-align:right}} table{{border-collapse:collapse}} tr.open.high td{{background:#fde2e1}}
tr.reverified td{{color:#555}} #issues td{{font-size:13px}} #issues td.detail{{min-width:320px}}
#issues td.dataset{{word-break:break-all;max-width:260px}}</style></head><body>
<h1>数据安全评估报告 · Security assessment report</h1>
<p>assessment run <b id=run>#{summary['run']}</b> ({e(summary['dag_id'])} / {e(summary['run_id'])}), as of
{e(summary['as_of'][:19])}; zones {e(', '.join(summary['zones']))}{
    (' · prefixes ' + e(', '.join(summary['prefixes']))) if summary['prefixes'] else ''}</p>
<p>datasets <b id=datasets>{summary['datasets']:,}</b> · records assessed <b id=rows>{summary['rows']:,}</b>
· bytes {summary['bytes']:,} · findings this run <b id=findings>{summary['findings']['total']:,}</b>
(new {changes['new']}, reopened {changes['reopened']}, still open {changes['still_open']}; re-verified
{changes['reverified']}, resolved without a recorded fix {changes['resolved']})</p>
<p>all findings: open <b id=status-open>{status['open']}</b> · fixed, awaiting re-verification
<b id=status-fixed>{status['fixed']}</b> · re-verified <b id=status-reverified>{status['reverified']}</b></p>
<p>{links}</p>
<h2>敏感数据分布 · Where the data lives</h2><img alt="storage by zone and grade" src="{charts['storage']}">
<table><tr><th>zone</th><th>datasets</th><th>rows</th><th>files</th><th>bytes</th></tr>{zone_rows}</table>
<table><tr><th>grade</th><th>datasets</th><th>rows</th><th>bytes</th></tr>{grade_rows}</table>
<h2>问题 · Findings</h2><img alt="findings by kind and severity" src="{charts['findings']}">
<img alt="finding status over runs" src="{charts['status']}">
<h2>数据集 · Datasets</h2><table><tr><th>dataset</th><th>zone</th><th>grade</th><th>rows</th><th>bytes</th>
<th>columns</th><th>sensitive columns (label)</th><th>unmasked sensitive columns</th></tr>{dataset_rows}</table>
<h2>问题清单与整改记录 · Issue list and rectification record</h2>
<table id=issues><tr><th>id</th><th>kind</th><th>dataset</th><th>subject</th><th>severity</th><th>detail</th>
<th>status</th><th>found</th><th>fixed</th><th>re-verified</th></tr>{issue_rows_html}</table>
</body></html>"""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "report.html"
    target.write_text(page, encoding="utf-8")
    return target


def _copy_to_lake(local: Path, uri: str) -> None:
    from pyarrow import fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(uri)
    filesystem.create_dir(base, recursive=True)
    pafs.copy_files(str(local), base, destination_filesystem=filesystem)


def publish(engine: Engine, assessment_run: int, lake_root: str) -> dict[str, Any]:
    """The report and the issue list of one assessment run, written to the lake; the run row
    records the report's location. Returns the locations and the figures shown."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT run_id, summary FROM govops.security_assessment_run WHERE id = :id"),
                           {"id": assessment_run}).first()  # fmt: skip
        if row is None:
            raise A.AssessmentError(f"assessment run {assessment_run} does not exist")
        found = A.findings(conn)
        history = [h for h in A.runs(conn) if h["id"] <= assessment_run]
    summary = row.summary if isinstance(row.summary, dict) else json.loads(row.summary)
    folder = report_folder(lake_root, row.run_id)
    exports = {"issues.csv": f"{folder}/issues.csv", "issues.xlsx": f"{folder}/issues.xlsx"}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "run"
        exported = export_issues(found, local)
        write_report(local, summary, found, history, exports)
        _copy_to_lake(local, folder)
    uri = f"{folder}/report.html"
    with engine.begin() as conn:
        conn.execute(text("UPDATE govops.security_assessment_run SET report_uri = :u WHERE id = :id"),
                     {"u": uri, "id": assessment_run})  # fmt: skip
    return {"report": uri, **exports, "issues": exported["rows"], "assessment_run": assessment_run}
