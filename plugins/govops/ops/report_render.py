"""The scheduling service's monthly reports for people: HTML with charts (inline PNG from
``govops.charts``, nothing loaded from elsewhere) and XLSX workbooks, written to
``<lake>/reports/ops/<yyyy-mm>/``: ``anomalies.html|xlsx`` (异常作业监控数据分析汇总报告) and
``monthly.html|xlsx`` (月总结报告). The figures are ``govops.ops.reports``'."""

from __future__ import annotations

import html
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govops.charts import png_data_uri
from govops.ops.reports import (
    CHANGES,
    DIMENSIONS,
    DIMENSIONS_ZH,
    KINDS_ZH,
    AnomalySummary,
    Durations,
    EventOrderRow,
    Month,
    MonthlySummary,
    RunFigures,
    anomaly_summary,
    kind_of,
    monthly_summary,
    read_month,
    runs_from_api,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from govops.ops.reports import DagRunRow

e = html.escape
CHANGES_ZH = {"new": "新增", "re_added": "重新部署", "removed": "下线", "schedule_changed": "调度变更",
              "paused": "暂停", "unpaused": "恢复", "attributes_changed": "属性变更"}  # fmt: skip
STYLE = """body{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:2em;color:#222;
max-width:1200px} table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3} td.n{text-align:right} h2{border-top:2px solid #2b7bba;padding-top:.6em;margin-top:1.6em}
p.how{color:#555;font-size:.9em} img{max-width:100%}"""
_COLORS = ["#d7301f", "#fc8d59", "#fdcc8a", "#8c96c6", "#88419d", "#2b7bba", "#1a9850", "#999999", "#66c2a5",
           "#e78ac3", "#a6d854"]  # fmt: skip


def _num(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _local(moment: datetime | None, month: Month) -> str:
    return "" if moment is None else f"{moment.astimezone(month.start.tzinfo):%Y-%m-%d %H:%M}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, id: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class=n>{_num(v)}</td>" if isinstance(v, int | float) and not isinstance(v, bool)
                         else f"<td>{e('' if v is None else str(v))}</td>" for v in r) + "</tr>"
        for r in rows
    )  # fmt: skip
    return f"<table{f' id={id}' if id else ''}><tr>{head}</tr>{body}</table>"


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=zh-CN><head><meta charset=utf-8><title>{e(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")  # fmt: skip


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _stacked(labels: list[str], series: dict[str, list[int]], title: str, *, horizontal: bool,
             colors: Sequence[str] = _COLORS) -> str:  # fmt: skip
    plt = _plt()
    size = (9, 0.6 + 0.32 * max(len(labels), 1)) if horizontal else (9, 3)
    fig, ax = plt.subplots(figsize=size)
    base = [0] * len(labels)
    at = list(range(len(labels)))  # positions, so labels like "12" stay labels, not numbers
    for i, (name, values) in enumerate(series.items()):
        color = colors[i % len(colors)]
        if horizontal:
            ax.barh(at, values, left=base, label=name, color=color)
        else:
            ax.bar(at, values, bottom=base, label=name, color=color)
        base = [b + v for b, v in zip(base, values, strict=True)]
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))  # counts
    if horizontal:
        ax.set_yticks(at, labels)
        ax.invert_yaxis()
    else:
        ax.set_xticks(at, labels, fontsize=7)
    ax.set_title(title)
    if series:
        ax.legend(fontsize=7)
    return png_data_uri(fig)


# --- 异常作业监控数据分析汇总报告 ----------------------------------------------------------


def _kind_header(kinds: list[str]) -> list[str]:
    return [f"{KINDS_ZH.get(k, k)} {k}" for k in kinds]


def _grouped(groups: dict[str, Counter[str]], kinds: list[str]) -> list[list[Any]]:
    return [[name, *(c.get(k, 0) for k in kinds), sum(c.values())] for name, c in groups.items()]


def _duration_rows(s: AnomalySummary) -> list[list[Any]]:
    def row(name: str, d: Durations) -> list[Any]:
        return [name, d.count, d.mean_h, d.median_h, d.p90_h, d.max_h]

    return [row("响应（确认）time to acknowledge", s.to_acknowledge), row("解决 time to resolve", s.to_resolve)]


DURATION_HEADER = ["", "orders", "mean h", "median h", "p90 h", "max h"]
OPEN_HEADER = ["number 编号", "kind 类型", "state 状态", "urgency 紧急程度", "DAG", "task", "item 服务事项",
               "department 部门", "opened 开始时间", "acknowledged 确认时间", "occurrences 次数",
               "title 名称"]  # fmt: skip


def _order_row(o: EventOrderRow, month: Month) -> list[Any]:
    return [o.number, kind_of(o), o.state, o.urgency, o.dag_id or "", o.task_id or "", o.service_item or "",
            o.department or "", _local(o.started_at, month), _local(o.acknowledged_at, month), o.occurrences,
            o.title]  # fmt: skip


def render_anomalies(s: AnomalySummary) -> str:
    m, kinds = s.month, s.kinds
    title = f"异常作业监控数据分析汇总报告 {m.label}"
    charts = ""
    if s.opened:
        days = m.days()
        by_day = _stacked(
            [f"{d.day}" for d in days],
            {k: [s.by_day.get(d, Counter()).get(k, 0) for d in days] for k in kinds},
            "event orders opened per day",
            horizontal=False,
        )
        top = sorted(s.by_dag.items(), key=lambda i: (-sum(i[1].values()), i[0]))[:15]
        by_dag = _stacked([d for d, _ in top], {k: [c.get(k, 0) for _, c in top] for k in kinds},
                          "event orders per DAG (top 15)", horizontal=True)  # fmt: skip
        charts = f"<img alt='per day' src='{by_day}'><img alt='per DAG' src='{by_dag}'>"
    kind_rows = [[f"{KINDS_ZH.get(k, k)} {k}", s.by_kind[k]] for k in kinds]
    header = ["", *_kind_header(kinds), "total 合计"]
    body = f"""<h1>{e(title)}</h1>
<p>Job-anomaly summary of {m.label} ({e(str(m.start.tzinfo))}): <b id=opened>{len(s.opened)}</b> event orders
(事件单) opened, <b id=occurrences>{s.occurrences}</b> occurrences;
<b id=open-at-end>{len(s.open_at_end)}</b> open at {e(_local(s.as_of, m))}.</p>
<p class=how>An order counts in the month it was opened (its start time). Occurrences add the repeats
(retries, re-runs, repeated callbacks) the order took. Kind <code>failure</code> (a final task failure)
counts as <code>failed</code>. Times are hours from opening to acknowledgement (orders acknowledged by a
person) and to resolution (by a person or by the next successful run); p90 is the nearest-rank 90th
percentile. The cause is the first line of the order's last error without parenthesised parts, numbers as #.
An order is open at the month's end if it was opened before it and not resolved before it.</p>
<h2>按类型 · By kind</h2>{_table(["kind 类型", "orders 事件单"], kind_rows, id="by-kind")}
{charts}
<h2>按作业 · By DAG</h2>{_table(["DAG", *header[1:]], _grouped(s.by_dag, kinds), id="by-dag")}
<h2>按服务事项 · By service item</h2>{_table(["item 服务事项", *header[1:]], _grouped(s.by_item, kinds), id="by-item")}
<h2>按部门 · By department</h2>{
        _table(["department 部门", *header[1:]], _grouped(s.by_department, kinds), id="by-department")
    }
<h2>响应与解决时长 · Time to acknowledge and resolve</h2>{_table(DURATION_HEADER, _duration_rows(s), id="durations")}
<h2>主要原因 · Top causes</h2>{
        _table(["cause 原因", "kind 类型", "orders 事件单", "occurrences 次数"], s.top_causes, id="causes")
    }
<h2>未关闭事件单 · Open event orders</h2>{_table(OPEN_HEADER, [_order_row(o, m) for o in s.open_at_end], id="open")}
"""
    return _page(title, body)


# --- 月总结报告 --------------------------------------------------------------------------------


def _run_row(f: RunFigures) -> list[Any]:
    return [f.dag_id, f.runs, f.scheduled, f.success, f.failed, f.other, _pct(f.success_rate), f.mean_duration_s]


RUN_HEADER = ["DAG", "runs 运行", "scheduled 调度触发", "success 成功", "failed 失败", "queued/running 未完成",
              "success rate 成功率", "mean duration s"]  # fmt: skip
USAGE_HEADER = ["item 服务事项", "name 名称", "unit 单位", "quantity 计量", "records 记录数", "events", "runs"]


def _item_name(code: str) -> str:
    from govops.service_items import SERVICE_ITEMS

    item = SERVICE_ITEMS.get(code)
    return item.name_zh if item else ""


def _quality_rows(s: MonthlySummary) -> list[list[Any]]:
    q = s.quality
    return [[f"{DIMENSIONS_ZH[d]} {d}", _pct(q.extraction_rate[d]), _num(q.check_score[d])] for d in DIMENSIONS]


def render_monthly(s: MonthlySummary) -> str:
    m, j, q = s.month, s.jobs, s.quality
    title = f"月总结报告 {m.label}"
    plt_volume = _stacked([f"{d.day}" for d in j.daily], {"jobs": list(j.daily.values())},
                          "scheduled jobs deployed at the end of each day", horizontal=False,
        colors=["#2b7bba"])  # fmt: skip
    if s.runs_total is None:
        runs = (f"<p id=runs-unavailable>DAG runs not available: {e(s.runs_source or 'no source')} "
                "(define the Airflow connection govops_airflow_api).</p>")  # fmt: skip
    else:
        t = s.runs_total
        chart = ""
        if s.runs:
            top = sorted(s.runs, key=lambda f: (-f.runs, f.dag_id))[:20]
            chart = "<img alt='runs per DAG' src='{}'>".format(_stacked(
                [f.dag_id for f in top], {"success": [f.success for f in top], "failed": [f.failed for f in top],
                                          "queued/running": [f.other for f in top]},
                "DAG runs per DAG (top 20)", horizontal=True,
                colors=["#1a9850", "#d7301f", "#fdcc8a"]))  # fmt: skip
        runs = (
            f"<p><b id=runs>{t.runs}</b> DAG runs ({t.scheduled} scheduled): <b id=success>{t.success}</b> "
            f"succeeded, <b id=failed>{t.failed}</b> failed, {t.other} queued or running; success rate "
            f"<b id=success-rate>{_pct(t.success_rate)}</b>. Source: {e(s.runs_source)}.</p>"
            + _table(RUN_HEADER, [_run_row(t), *(_run_row(f) for f in s.runs)], id="runs-per-dag")
            + chart
        )
    attempts = _table(["DAG", "failed attempts 失败尝试", "final failures 最终失败"],
                      [[f.dag_id, f.attempts, f.final] for f in s.failed_attempts], id="failed-attempts")  # fmt: skip
    usage_rows = [[i, _item_name(i), u, qn, rec, ev, rn] for i, u, qn, rec, ev, rn in s.usage_by_item]
    usage_chart = ""
    if s.usage_by_item:
        usage_chart = "<img alt='records per item' src='{}'>".format(_stacked(
            [f"{i} {u}" for i, u, *_ in s.usage_by_item], {"records": [r[3] for r in s.usage_by_item]},
            "records metered per service item", horizontal=True,
            colors=["#2b7bba"]))  # fmt: skip
    rec = q.reconciliation
    status = ", ".join(f"{k} {v}" for k, v in sorted(q.check_status.items())) or "none"
    body = f"""<h1>{e(title)}</h1>
<p>Monthly summary of the scheduling service (作业调度) for {m.label} ({e(str(m.start.tzinfo))}).</p>
<h2>作业规模及变化 · Job volume and changes</h2>
<p>Scheduled jobs deployed: <b id=jobs-start>{j.at_start}</b> at the start of the month,
<b id=jobs-end>{j.at_end}</b> at its end. Changes: {
        ", ".join(f"{CHANGES_ZH[c]} {c} {j.changes.get(c, 0)}" for c in CHANGES)
    }.</p>
<p class=how>From the change record (govops.scheduled_job_change): a job is deployed from its
<code>new</code> or <code>re_added</code> change until a <code>removed</code> one. Items and departments are the
registry's current ones. New jobs metered (item 05, 个): <b id=new-jobs-metered>{s.new_jobs_metered}</b>.</p>
<img alt='job volume' src='{plt_volume}'>
{_table(["item 服务事项", "jobs 作业数"], sorted(j.by_item.items()), id="jobs-by-item")}
{_table(["department 部门", "jobs 作业数"], sorted(j.by_department.items()), id="jobs-by-department")}
{
        _table(
            ["time 时间", "DAG", "change 变化", "old 原值", "new 新值"],
            [
                [
                    _local(c.observed_at, m),
                    c.dag_id,
                    f"{CHANGES_ZH.get(c.change, c.change)} {c.change}",
                    c.old_value,
                    c.new_value,
                ]
                for c in j.listed
            ],
            id="changes",
        )
    }
<h2>运行与成功率 · Runs and success rate</h2>
<p class=how>DAG runs due in the month (their <code>run_after</code>), read from Airflow's REST API v2; the success
rate is successful runs of the finished ones (success + failed). Failed attempts are the task attempts
recorded in govops.task_failure (each retry too); final failures are the last attempts.</p>
{runs}{attempts}
<h2>数据量 · Data volumes metered</h2>
<p><b id=records-moved>{s.records_moved:,}</b> records in {sum(r[4] for r in s.usage_by_item):,} usage events of
period {m.label} (govops.usage_event: quantity in the item's base unit, records processed).</p>
{_table(USAGE_HEADER, usage_rows, id="usage")}{usage_chart}
<h2>调度质量 · Scheduling quality</h2>
<p>Extraction reconciliation: <b id=rec-runs>{rec.runs}</b> committed runs, read <b id=rec-read>{rec.read:,}</b> =
loaded {rec.written:,} + rejected {rec.rejected:,}; reconciliation event orders opened:
<b id=rec-orders>{q.reconciliation_orders}</b>. Quality checks: <b id=check-runs>{q.check_runs}</b> runs ({status}),
{q.rows_checked:,} rows checked, overall score <b id=check-score>{_num(q.overall_score)}</b>.</p>
{
        _table(
            ["dimension 维度", "extraction 抽取 (share of records read)", "quality checks 质量检查 (score)"],
            _quality_rows(s),
            id="quality",
        )
    }
<p class=how>Extraction: for each dimension, 1 − (records rejected for a reason of that dimension ÷ records read)
over the month's committed runs of govops.extraction_run, classified as the extraction monthly summary does
(a missing value: completeness; a duplicate or schema drift: consistency; any other reason: accuracy).
Quality checks: for each dimension, the mean of the dimension scores (0–100) of the month's runs in
govops.quality_check_run, weighted by the rows each run checked; the overall score likewise.</p>
"""
    return _page(title, body)


# --- XLSX ----------------------------------------------------------------------------------


def _book(sheets: dict[str, tuple[Sequence[str], Iterable[Sequence[Any]]]], path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for name, (header, rows) in sheets.items():
        sheet = book.create_sheet(name)
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for r in rows:
            sheet.append([v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in r])
    book.save(path)
    return path


def write_anomalies_xlsx(s: AnomalySummary, path: Path) -> Path:
    kinds, header = s.kinds, [*_kind_header(s.kinds), "total 合计"]
    m = s.month
    return _book({
        "按类型": (["kind 类型", "orders 事件单"], [[k, s.by_kind[k]] for k in kinds]),
        "按作业": (["DAG", *header], _grouped(s.by_dag, kinds)),
        "按服务事项": (["item 服务事项", *header], _grouped(s.by_item, kinds)),
        "按部门": (["department 部门", *header], _grouped(s.by_department, kinds)),
        "时长": (DURATION_HEADER, _duration_rows(s)),
        "主要原因": (["cause 原因", "kind 类型", "orders 事件单", "occurrences 次数"], s.top_causes),
        "未关闭事件单": (OPEN_HEADER, [_order_row(o, m) for o in s.open_at_end]),
        "本月事件单": (OPEN_HEADER, [_order_row(o, m) for o in s.opened]),
    }, path)  # fmt: skip


def write_monthly_xlsx(s: MonthlySummary, path: Path) -> Path:
    j, q, m = s.jobs, s.quality, s.month
    runs = [_run_row(s.runs_total), *(_run_row(f) for f in s.runs)] if s.runs_total else []
    return _book({
        "作业规模": (["figure", "value"], [["jobs at start", j.at_start], ["jobs at end", j.at_end],
                                          *([f"change {c}", j.changes.get(c, 0)] for c in CHANGES),
                                          ["new jobs metered (item 05)", s.new_jobs_metered]]),
        "作业变化记录": (["time 时间", "DAG", "change 变化", "old 原值", "new 新值"],
                       [[_local(c.observed_at, m), c.dag_id, c.change, c.old_value, c.new_value] for c in j.listed]),
        "运行": (RUN_HEADER, runs),
        "失败尝试": (["DAG", "failed attempts", "final failures"],
                   [[f.dag_id, f.attempts, f.final] for f in s.failed_attempts]),
        "数据量": (USAGE_HEADER, [[i, _item_name(i), u, qn, rec, ev, rn] for i, u, qn, rec, ev, rn in s.usage_by_item]),
        "调度质量": (["dimension", "extraction share", "quality check score"],
                   [[d, q.extraction_rate[d], q.check_score[d]] for d in DIMENSIONS]
                   + [["reconciliation runs", q.reconciliation.runs, None],
                      ["records read", q.reconciliation.read, None],
                      ["check runs", q.check_runs, None], ["overall check score", q.overall_score, None],
                      ["reconciliation orders", q.reconciliation_orders, None]]),
    }, path)  # fmt: skip


# --- publishing ----------------------------------------------------------------------------


def report_folder(lake_root: str, month: Month) -> str:
    return f"{lake_root.rstrip('/')}/reports/ops/{month.label}"


def write_reports(folder: Path, anomalies: AnomalySummary, monthly: MonthlySummary) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "anomalies.html").write_text(render_anomalies(anomalies), encoding="utf-8")
    (folder / "monthly.html").write_text(render_monthly(monthly), encoding="utf-8")
    write_anomalies_xlsx(anomalies, folder / "anomalies.xlsx")
    write_monthly_xlsx(monthly, folder / "monthly.xlsx")
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix in (".html", ".xlsx")}


def publish(folder_uri: str, anomalies: AnomalySummary, monthly: MonthlySummary) -> dict[str, str]:
    """Both reports into a folder of the lake (any pyarrow filesystem URI); a month's files are
    replaced, never appended to."""
    from pyarrow import fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(folder_uri)
    filesystem.create_dir(base, recursive=True)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_reports(Path(tmp), anomalies, monthly).items():
            pafs.copy_files(str(path), f"{base}/{name}", destination_filesystem=filesystem)
            written[name] = f"{folder_uri}/{name}"
    return written


def report_to(engine: Engine, month: date, out: Path | None = None, *,
              runs: list[DagRunRow] | None = None, runs_source: str = "") -> list[str]:  # fmt: skip
    """Both reports of ``month``: to ``out``, else ``<lake>/reports/ops/<yyyy-mm>/``. The DAG
    runs come from the REST API v2 (``runs_from_api``) unless given. Returns what was written,
    one line each, after a line of the main figures."""
    from govops import settings

    m = Month.of(month)
    if runs is None:
        runs, runs_source = runs_from_api(m)
    rows = read_month(engine, m, runs, runs_source)
    anomalies, monthly = anomaly_summary(m, rows.orders), monthly_summary(rows)
    if out is None:
        written = publish(report_folder(settings.lake_root(), m), anomalies, monthly)
    else:
        written = {name: str(path) for name, path in write_reports(out, anomalies, monthly).items()}
    t = monthly.runs_total
    runs_text = f"{t.runs} runs, success rate {_pct(t.success_rate)}" if t else f"runs not available ({runs_source})"
    return [
        f"{m.label}: {len(anomalies.opened)} event order(s) opened, {len(anomalies.open_at_end)} open at the end; "
        f"{monthly.jobs.at_end} scheduled job(s); {runs_text}; {monthly.records_moved:,} records metered",
        *(f"  {name}: {location}" for name, location in written.items()),
    ]
