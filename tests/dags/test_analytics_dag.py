"""The report spec include/analytics/service_events_report.yaml under real Airflow, Spark
and PostgreSQL: its Spark job over the sample service events and persons, the result rows
against figures computed here with pandas, the report in four formats (and in Chromium),
the ledger row (1 report at the difficulty of two data domains), and a correction run of
the same report that records a new version and meters nothing. Then the analysis spec
include/analytics/service_events_monthly.yaml (item 14) end to end, against pandas."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import create_engine

from govops.analytics import difficulty as dif
from govops.analytics import report
from govops.analytics.spec import load_spec
from govops.dag_runs import run_dag
from govops.sample_data import SampleConfig, build_frames
from govops.security.archive_sample import write_sample_events
from govops.settlement.workorders import ensure_demo_work_order
from govops.spark.manifest import _safe
from tests.browser import assert_screenshot_not_blank, render
from tests.db import rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "include/analytics/service_events_report.yaml")
EVENTS, PERSONS = (SPEC.inputs[v].dataset for v in ("events", "persons"))
USAGE = """SELECT service_item_code, unit, quantity, records, work_order_id, run_id, task_id,
                  attributes ->> 'difficulty', attributes ->> 'first_run_id'
             FROM govops.usage_event WHERE dag_id = :dag ORDER BY id"""
RESULT = """SELECT x.row FROM govops.analytics_result x JOIN govops.analytics_run r ON r.id = x.run_pk
             WHERE r.run_id = :run AND x.output = :out ORDER BY x.row_no"""


def _sample(lake: Path) -> tuple:
    write_sample_events(lake.as_uri(), EVENTS, start=date(2025, 1, 1), end=date(2025, 12, 31), every_days=7,
                        rows_per_day=30)  # fmt: skip
    persons = build_frames(SampleConfig(seed=7, persons=200)).persons
    folder = lake / PERSONS
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(persons, preserve_index=False), folder / "part-0.parquet")
    (folder / "_GOVOPS_COMMIT.json").write_text(json.dumps({"run": {"run_id": "extract-persons-1"}}))
    events = pq.read_table(lake / EVENTS).to_pandas()
    events["event_date"] = events["event_date"].astype(str)
    return events, persons


def _expected(events, persons) -> dict[str, list[dict]]:
    """The report's figures, computed with pandas from the same files."""
    events = events.assign(month=events["event_date"].str[:7])
    by_month = events.groupby(["month", "department"]).size().reset_index(name="events")
    age = events["event_date"].str[:4].astype(int) - events["id_number"].str[6:10].astype(int)
    groups = age.map(lambda a: "30岁以下" if a < 30 else "30-44岁" if a < 45 else "45-59岁" if a < 60 else "60岁及以上")
    by_age = groups.value_counts().sort_index()
    by_gender = persons.groupby("gender").size().sort_index()
    return {
        "by_month_department": by_month.sort_values(["month", "department"]).to_dict("records"),
        "age_groups": [{"age_group": g, "events": int(n)} for g, n in by_age.items()],
        "persons_by_gender": [{"gender": g, "persons": int(n)} for g, n in by_gender.items()],
    }


def test_report_spec_runs_meters_once_and_a_correction_meters_nothing(isolated_env: Path, ledger_url: str) -> None:
    events, persons = _sample(isolated_env)
    expected = _expected(events, persons)
    [line] = dif.delivery_lines(SPEC)
    assert (line.service_item, line.unit, line.quantity, line.difficulty) == ("15", "report", 1, Decimal(2))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-REPORT", "15", on=date(2026, 6, 1), difficulty=line.difficulty)
    engine.dispose()
    conf = {"work_order_id": "WO-T-REPORT"}

    first = run_dag(SPEC.dag_id, conf=conf, logical_date=datetime(2026, 8, 3, tzinfo=UTC))
    assert first.state == "success", first.task_states
    for output, want in expected.items():
        got = [r for (r,) in rows(ledger_url, RESULT, run=first.run_id, out=output)]
        assert got == [{k: (int(v) if k in ("events", "persons") else v) for k, v in w.items()} for w in want], output
    delivered = [("15", "report", 1, None, "WO-T-REPORT", "deliverable:WO-T-REPORT", "deliver", "2", first.run_id)]
    assert rows(ledger_url, USAGE, dag=SPEC.dag_id) == delivered
    [(billing, difficulty, inputs, parameters)] = rows(
        ledger_url,
        "SELECT billing, difficulty, inputs, parameters FROM govops.analytics_run WHERE run_id = :r",
        r=first.run_id,
    )
    assert (billing, difficulty, parameters) == ("delivery", Decimal(2), {})
    assert {i["dataset"]: (i["rows"], i["version"]) for i in inputs} == {
        EVENTS: (len(events), {"run": {"dag_id": "sample_data", "run_id": "archive_sample"}, "rows": len(events)}),
        PERSONS: (len(persons), {"run": {"run_id": "extract-persons-1"}}),
    }
    version = isolated_env / "analytics" / SPEC.name / "age_groups" / f"version={_safe(first.run_id)}"
    assert pq.read_table(version).num_rows == len(expected["age_groups"])

    # The report: a page with its charts, a workbook and CSV files, Chinese headers in each.
    folder = isolated_env / "reports/analytics" / SPEC.name / _safe(first.run_id)
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "区政务服务办件月报" in page and "<th>年龄段</th><th>办件量</th>" in page and page.count("<svg") == 2
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|<script""", page)
    book = load_workbook(folder / "report.xlsx")
    assert book.sheetnames == ["各部门月度办件量", "办件人年龄段分布", "人口性别构成"]
    assert [c.value for c in book["人口性别构成"][1]] == ["性别", "人数"]
    assert book["办件人年龄段分布"].max_row == len(expected["age_groups"]) + 1
    raw = (folder / "by_month_department.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert table[0] == ["月份", "部门", "办件量"] and len(table) == len(expected["by_month_department"]) + 1
    if report.cjk_font() is not None:  # a CJK font on the machine: see tests/integration/test_analytics_pdf.py
        pdf = PdfReader(folder / "report.pdf")
        assert pdf.pages[0].extract_text().splitlines()[0] == "区政务服务办件月报"
    shown = render(folder / "report.html")
    assert "区政务服务办件月报" in shown.text and "人口性别构成" in shown.text
    assert len(shown.svg_widths) == 2 and all(w > 300 for w in shown.svg_widths)
    assert_screenshot_not_blank(shown.screenshot)

    # A correction of the same report (another run, same work order): a new version and
    # result rows, nothing billed.
    second = run_dag(SPEC.dag_id, conf=conf, logical_date=datetime(2026, 8, 10, tzinfo=UTC))
    assert second.state == "success", second.task_states
    assert rows(ledger_url, USAGE, dag=SPEC.dag_id) == delivered
    runs = rows(ledger_url, "SELECT run_id, billing, delivery_run_id, usage_event_ids FROM govops.analytics_run "
                            "WHERE spec_name = :s ORDER BY id", s=SPEC.name)  # fmt: skip
    assert [r[:3] for r in runs] == [(first.run_id, "delivery", first.run_id),
                                     (second.run_id, "correction", first.run_id)]  # fmt: skip
    assert len(runs[0][3]) == 1 and runs[1][3] == []
    assert len(rows(ledger_url, RESULT, run=second.run_id, out="age_groups")) == len(expected["age_groups"])


ANALYSIS = load_spec(REPO / "include/analytics/service_events_monthly.yaml")


def test_analysis_spec_delivers_its_statistics_and_meters_one_analysis(isolated_env: Path, ledger_url: str) -> None:
    """The analysis kind (item 14) end to end: the grouped summary, the monthly time series
    with its month-over-month change and the descriptive statistics, against pandas over the
    same files (events before the spec's from_date left out); one analysis of one data
    domain metered at difficulty 1, in its library."""
    dataset = ANALYSIS.inputs["events"].dataset
    write_sample_events(isolated_env.as_uri(), dataset, start=date(2024, 11, 1), end=date(2025, 8, 31), every_days=5,
                        rows_per_day=20)  # fmt: skip
    events = pq.read_table(isolated_env / dataset).to_pandas()
    events["event_date"] = events["event_date"].astype(str)
    kept = events[events["event_date"] >= "2025-01-01"].assign(month=lambda e: e["event_date"].str[:7])
    assert 0 < len(kept) < len(events)
    by_month = kept.groupby("month").size()
    daily = kept.groupby(["event_type", "event_date"]).size()
    expected_stats = [
        {"event_type": t, "days": len(n), "events": int(n.sum()), "mean": round(n.mean(), 4), "std": round(n.std(), 4),
         "min": int(n.min()), "median": float(n.median()), "max": int(n.max())}
        for t, n in ((t, daily.loc[t]) for t in sorted(daily.index.get_level_values(0).unique()))
    ]  # fmt: skip
    [line] = dif.delivery_lines(ANALYSIS)
    assert (line.service_item, line.unit, line.quantity, line.difficulty) == ("14", "analysis", 1, Decimal(1))
    engine = create_engine(ledger_url)
    ensure_demo_work_order(engine, "WO-T-ANALYSIS", "14", on=date(2026, 6, 1), difficulty=line.difficulty)
    engine.dispose()

    conf = {"work_order_id": "WO-T-ANALYSIS"}
    run = run_dag(ANALYSIS.dag_id, conf=conf, logical_date=datetime(2026, 8, 4, tzinfo=UTC))
    assert run.state == "success", run.task_states
    got = {out: [r for (r,) in rows(ledger_url, RESULT, run=run.run_id, out=out)] for out in ANALYSIS.outputs}
    by_month_department = kept.groupby(["month", "department"]).size()
    assert got["by_month_department"] == [
        {"month": m, "department": d, "events": int(n)} for (m, d), n in by_month_department.items()
    ]
    assert got["monthly_trend"] == [
        {"month": m, "events": int(n), "change": None if i == 0 else int(n - by_month.iloc[i - 1])}
        for i, (m, n) in enumerate(by_month.items())
    ]
    assert len(got["daily_stats"]) == len(expected_stats)
    for row, want in zip(got["daily_stats"], expected_stats, strict=True):
        assert row == pytest.approx(want, abs=1e-4), want["event_type"]
    assert rows(ledger_url, USAGE, dag=ANALYSIS.dag_id) == [
        ("14", "analysis", 1, None, "WO-T-ANALYSIS", "deliverable:WO-T-ANALYSIS", "deliver", "1", run.run_id)
    ]
    assert rows(ledger_url, "SELECT attributes ->> 'library' FROM govops.usage_event WHERE dag_id = :d",
                d=ANALYSIS.dag_id) == [("政务服务",)]  # fmt: skip
    [(billing, parameters)] = rows(ledger_url, "SELECT billing, parameters FROM govops.analytics_run WHERE run_id = :r",
                                   r=run.run_id)  # fmt: skip
    assert (billing, parameters) == ("delivery", {"from_date": "2025-01-01"})
    assert (isolated_env / "analytics" / ANALYSIS.name / "daily_stats" / f"version={_safe(run.run_id)}").is_dir()
