"""The archive and destruction report (归档及销毁报告) of item 21: volumes archived, restored and
destroyed by dataset and month (charts and tables) from ``govops.security_archive_operation``,
the destruction certificates, unfinished operations, and whether the audit chain verifies.
Written to ``<lake>/reports/security/archive/report.html``; names and figures only."""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from govops.charts import png_data_uri
from govops.ledger.usage import contract_timezone
from govops.security import audit
from govops.security.archive import FINAL, Location, safe_name

TOP_DATASETS = 8
LABELS = {"archive": "归档 archived", "restore": "恢复 restored", "destroy": "销毁 destroyed"}


def report_data(engine: Engine) -> dict[str, Any]:
    """Finished operations summed by kind, dataset and month (in the contract's time zone)."""
    tz = contract_timezone()
    with engine.connect() as conn:
        done = conn.execute(
            text("""SELECT kind, dataset, partition, state, rows, bytes, files, dag_id, run_id, work_order_id,
                           finished_at FROM govops.security_archive_operation
                     WHERE state IN ('removed', 'restored', 'destroyed') ORDER BY finished_at, id"""),
        ).all()  # fmt: skip
        open_ = conn.execute(
            text("""SELECT kind, dataset, partition, state, dag_id, run_id, started_at
                      FROM govops.security_archive_operation
                     WHERE state NOT IN ('removed', 'restored', 'destroyed', 'superseded') ORDER BY id"""),
        ).all()  # fmt: skip
        chain = audit.verify(conn)
    volumes: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: {"rows": 0, "bytes": 0, "partitions": 0})
    runs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in done:
        month = r.finished_at.astimezone(tz).strftime("%Y-%m")
        v = volumes[(r.kind, r.dataset, month)]
        v["rows"] += r.rows or 0
        v["bytes"] += r.bytes or 0
        v["partitions"] += 1
        if r.kind == "destroy":
            run = runs.setdefault((r.dataset, r.dag_id, r.run_id), {"dataset": r.dataset, "dag_id": r.dag_id,
                                                                     "run_id": r.run_id, "rows": 0, "partitions": 0,
                                                                     "work_order_id": r.work_order_id,
                                                                     "finished_at": r.finished_at})  # fmt: skip
            run["rows"] += r.rows or 0
            run["partitions"] += 1
            run["finished_at"] = max(run["finished_at"], r.finished_at)
    return {
        "volumes": [{"kind": k, "dataset": d, "month": m, **v} for (k, d, m), v in sorted(volumes.items())],
        "destructions": sorted(runs.values(), key=lambda r: r["finished_at"]),
        "unfinished": [dict(r._mapping) for r in open_],
        "audit": {"ok": chain.ok, "entries": chain.entries, "first_bad_seq": chain.first_bad_seq,
                  "reason": chain.reason},
    }


def _chart(volumes: list[dict[str, Any]], kind: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [v for v in volumes if v["kind"] == kind]
    months = sorted({v["month"] for v in rows})
    totals: dict[str, int] = defaultdict(int)
    for v in rows:
        totals[v["dataset"]] += v["rows"]
    top = sorted(totals, key=lambda d: (-totals[d], d))[:TOP_DATASETS]  # the rest stacks as "others"
    groups = [*([d] for d in top), [d for d in totals if d not in top]]
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    bottom = [0] * len(months)
    for group in groups:
        if not group:
            continue
        heights = [sum(v["rows"] for v in rows if v["dataset"] in group and v["month"] == m) for m in months]
        label = group[0].rsplit("/", 1)[-1] if group[0] in top else f"{len(group)} other dataset(s)"
        ax.bar(months, heights, bottom=bottom, label=label)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    datasets = list(totals)
    if not months:
        ax.text(0.5, 0.5, "none yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_ylabel("records")
    ax.set_title(f"records {kind}d by month" if kind != "destroy" else "records destroyed by month")
    if datasets:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", rotation=30)
    return png_data_uri(fig)


def render(data: dict[str, Any]) -> str:
    e = html.escape
    charts = "".join(f"<h2>{e(LABELS[k])}</h2><img id=chart-{k} alt='{k}' src='{_chart(data['volumes'], k)}'>"
                     for k in FINAL)  # fmt: skip
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for v in data["volumes"]:
        totals[(v["dataset"], v["month"])][v["kind"]] = v["rows"]
    table = "".join(
        f"<tr><td>{e(d)}</td><td>{e(m)}</td>" + "".join(f"<td class=n>{t.get(k, 0):,}</td>" for k in FINAL) + "</tr>"
        for (d, m), t in sorted(totals.items())
    )
    certs = "".join(
        f"<tr><td>{e(c['dataset'])}</td><td>{e(c['run_id'])}</td><td>{e(str(c['work_order_id']))}</td>"
        f"<td class=n>{c['partitions']}</td><td class=n>{c['rows']:,}</td>"
        f"<td><a href='../destruction/{e(c['dataset'])}/{e(safe_name(c['run_id']))}/certificate.html'>certificate</a>"
        "</td></tr>"
        for c in data["destructions"]
    )
    unfinished = "".join(
        f"<tr><td>{e(u['kind'])}</td><td>{e(u['dataset'])}</td><td>{e(u['partition'])}</td><td>{e(u['state'])}</td>"
        f"<td>{e(u['dag_id'])}/{e(u['run_id'])}</td></tr>"
        for u in data["unfinished"]
    )
    chain = data["audit"]
    chain_text = (f"verifies: {chain['entries']} entries" if chain["ok"]
                  else f"BROKEN at entry {chain['first_bad_seq']}: {chain['reason']}")  # fmt: skip
    return f"""<!doctype html><html lang=zh><head><meta charset=utf-8><title>归档及销毁报告</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1100px}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left}} .n{{text-align:right}} table{{border-collapse:collapse}} .bad{{color:#e76f51}}</style></head><body>
<h1>历史数据归档及销毁报告 · Archive and destruction report</h1>
<p>generated {datetime.now(UTC).isoformat(timespec="seconds")} · audit log
<span id=audit class={'ok' if chain['ok'] else 'bad'}>{e(chain_text)}</span></p>
{charts}
<h2>按数据集和月份 · By dataset and month (records)</h2>
<table id=volumes><tr><th>dataset</th><th>month</th>{''.join(f'<th>{e(LABELS[k])}</th>' for k in FINAL)}</tr>
{table or '<tr><td colspan=5>none</td></tr>'}</table>
<h2>销毁证明 · Destruction certificates</h2>
<table id=certificates>
<tr><th>dataset</th><th>run</th><th>work order</th><th>partitions</th><th>records</th><th></th></tr>
{certs or '<tr><td colspan=6>none</td></tr>'}</table>
<h2>未完成 · Unfinished operations (a re-run of their run finishes them)</h2>
<table id=unfinished><tr><th>kind</th><th>dataset</th><th>partition</th><th>step</th><th>run</th></tr>
{unfinished or '<tr><td colspan=5>none</td></tr>'}</table>
</body></html>"""


def write_report(engine: Engine, lake_root: str) -> str:
    """Write the report; returns its URI."""
    folder = Location.of(f"{lake_root.rstrip('/')}/reports/security/archive")
    folder.fs.create_dir(folder.path, recursive=True)
    with folder.fs.open_output_stream(f"{folder.path}/report.html", compression=None) as out:
        out.write(render(report_data(engine)).encode())
    return f"{folder.uri}/report.html"

