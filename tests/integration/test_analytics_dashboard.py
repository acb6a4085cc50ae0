"""The bundled dashboard spec (include/analytics/district_services_dashboard.yaml): its Spark
SQL in the session's Spark against pandas over the same sample files, its pages written to a
lake (a page per theme domain of the big screen, a page per module) with the chart library
written once next to them, and drawn by headless Chromium with the network blocked: the
Plotly charts draw the results, a hover shows the Chinese tooltip, a line chart zooms, a
series hides from its legend; its billed theme domains and modules."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from govops.analytics import dashboards
from govops.analytics import difficulty as dif
from govops.analytics.spec import load_spec
from govops.charts import plotly_js_name
from govops.sample_data import SampleConfig, build_frames
from govops.security.archive_sample import write_sample_events
from tests.browser import assert_screenshot_not_blank, in_browser, render

pytestmark = pytest.mark.integration
SPEC = load_spec(Path(__file__).resolve().parents[2] / "include/analytics/district_services_dashboard.yaml")
EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//""")
# Each chart's traces as Plotly drew them: x values, y values and whether the series is shown.
TRACES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(
  gd => gd.data.map(t => ({x: t.x, y: t.y, visible: t.visible === undefined ? true : t.visible})))"""


def test_dashboard_figures_pages_and_theme_domains(spark, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    events_dataset, persons_dataset = SPEC.inputs["events"].dataset, SPEC.inputs["persons"].dataset
    write_sample_events(lake.as_uri(), events_dataset, start=date(2025, 1, 1), end=date(2025, 6, 30), every_days=7,
                        rows_per_day=20)  # fmt: skip
    persons = build_frames(SampleConfig(seed=7, persons=300)).persons
    (lake / persons_dataset).mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(persons, preserve_index=False), lake / persons_dataset / "part-0.parquet")
    spark.read.parquet(str(lake / events_dataset)).createOrReplaceTempView("events")
    spark.read.parquet(str(lake / persons_dataset)).createOrReplaceTempView("persons")
    results = {name: [r.asDict() for r in spark.sql(out.sql or "").collect()] for name, out in SPEC.outputs.items()}

    events = pq.read_table(lake / events_dataset).to_pandas()
    months = events["event_date"].astype(str).str[:7].value_counts().sort_index()
    assert [(r["month"], r["events"]) for r in results["monthly_trend"]] == [(m, int(n)) for m, n in months.items()]
    departments = events.groupby("department").size()
    assert {r["department"]: r["events"] for r in results["by_department"]} == departments.to_dict()
    assert [r["events"] for r in results["by_department"]] == sorted(departments, reverse=True)
    assert {r["gender"]: r["persons"] for r in results["persons_by_gender"]} == persons.groupby(
        "gender"
    ).size().to_dict()
    valid = persons["id_number"].dropna()
    valid = valid[valid.str.fullmatch(r"[0-9]{17}[0-9X]")]
    decades = (valid.str[6:10].astype(int) // 10 * 10).astype(str) + "年代"
    assert {r["decade"]: r["persons"] for r in results["birth_decades"]} == decades.value_counts().to_dict()
    by_month_department = events.assign(month=events["event_date"].astype(str).str[:7]).groupby(
        ["month", "department"]).size()  # fmt: skip
    assert {(r["month"], r["department"]): r["events"] for r in results["department_trend"]} == (
        by_month_department.to_dict())  # fmt: skip

    # The run's outputs as the job leaves them, then the pages.
    outputs = []
    for name, rows in results.items():
        folder = lake / "analytics" / SPEC.name / name / "version=run-1"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")
        outputs.append(
            {"name": name, "kind": "parquet", "uri": folder.as_uri(), "columns": list(SPEC.outputs[name].columns)}
        )
    manifest = {"outputs": outputs, "finished_at": "2026-12-01T08:00:00+00:00"}
    written = dashboards.write_dashboard(lake.as_uri(), SPEC, json.loads(json.dumps(manifest)), run_id="run-1")
    library = plotly_js_name()
    assert sorted(written) == sorted(["big_1_1.html", "big_1_2.html", "index.html", "module_2_1.html",
                                      "module_3_1.html", library])  # fmt: skip
    folder = lake / "reports/analytics" / SPEC.name / "run-1"
    pages = {name: (folder / name).read_text(encoding="utf-8") for name in written if name.endswith(".html")}
    assert not any(EXTERNAL.search(page) for page in pages.values())
    assert all(f"href='{name}'" in pages["index.html"] for name in pages if name != "index.html")
    # The library once, next to the pages; each chart page loads it by its relative name.
    assert (folder / library).stat().st_size > 1_000_000 and "Plotly" not in pages["index.html"]
    for name in ("big_1_1.html", "big_1_2.html", "module_2_1.html", "module_3_1.html"):
        assert pages[name].count(f"<script src='{library}'></script>") == 1 and len(pages[name]) < 100_000, name
    assert "主题域：政务服务" in pages["big_1_1.html"] and pages["big_1_1.html"].count("Plotly.newPlot(") == 3
    assert "主题域：人口" in pages["big_1_2.html"] and pages["big_1_2.html"].count("Plotly.newPlot(") == 2
    assert "模块：部门办件排名" in pages["module_3_1.html"] and "width:480px" in pages["module_3_1.html"]

    # Billed: the big screen's two theme domains at 1 each, two modules at 0.15 each.
    lines = dif.delivery_lines(SPEC)
    assert [(x.work_order, x.quantity, x.difficulty) for x in lines] == [
        ("WO-DEMO-DASHBOARD", 2, Decimal(1)), ("WO-DEMO-DASHBOARD-MODULES", 2, Decimal("0.15"))]  # fmt: skip
    assert dif.billed_equivalent(lines) == Decimal("2.3")

    # In Chromium with the network blocked: the charts draw the results, a hover shows the
    # tooltip, a drag zooms the line chart, a legend click hides a series.
    shot = tmp_path / "big_1_1.png"

    def steps(p, traffic):
        p.set_default_timeout(15_000)
        p.goto((folder / "big_1_1.html").as_uri())
        p.wait_for_selector("#chart-3 .legend .traces")
        drawn = p.evaluate(TRACES)
        bar = p.locator("#chart-2 .trace.bars .point path").first.bounding_box()  # under Plotly's drag layer
        p.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
        tip = p.locator("#chart-2 .hoverlayer .hovertext").first
        tip.wait_for()
        tooltip = " ".join(tip.text_content().split())
        p.locator("#chart-3 .legend .traces .legendtoggle").first.click()
        p.wait_for_function("() => document.getElementById('chart-3').data[0].visible === 'legendonly'")
        box = p.locator("#chart-1 .nsewdrag").first.bounding_box()
        y = box["y"] + box["height"] / 2
        p.mouse.move(box["x"] + box["width"] * 0.1, y)
        p.mouse.down()
        p.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
        p.mouse.up()
        p.wait_for_function("() => document.getElementById('chart-1').layout.xaxis.autorange === false")
        zoomed = p.evaluate("() => document.getElementById('chart-1').layout.xaxis.range")
        p.screenshot(path=shot)
        hidden = p.evaluate(TRACES)[2]
        return drawn, tooltip, zoomed, hidden, " ".join(p.inner_text("body").split()), traffic

    drawn, tooltip, zoomed, hidden, text, traffic = in_browser(steps)
    assert traffic.blocked == [] and traffic.errors == [] and traffic.failed == {}
    assert any(url.endswith(library) for url in traffic.requests)
    assert "区政务服务与人口主题大屏 · 主题域：政务服务" in text and "各部门办件量" in text
    trend, by_department, department_trend = drawn
    assert [(x, y) for t in trend for x, y in zip(t["x"], t["y"], strict=True)] == [
        (r["month"], r["events"]) for r in results["monthly_trend"]]  # fmt: skip
    [bars] = by_department
    assert list(zip(bars["x"], bars["y"], strict=True)) == [(r["department"], r["events"]) for r in
                                                            results["by_department"]]  # fmt: skip
    assert {(x, y) for t in department_trend for x, y in zip(t["x"], t["y"], strict=True)} == {
        (r["month"], r["events"]) for r in results["department_trend"]}  # fmt: skip
    assert len(department_trend) == len(departments) and all(t["visible"] is True for t in department_trend)
    first = results["by_department"][0]
    assert f"部门：{first['department']}" in tooltip and f"办件量：{first['events']:,}" in tooltip, tooltip
    assert hidden[0]["visible"] == "legendonly" and all(t["visible"] is True for t in hidden[1:])
    assert 0 < zoomed[1] - zoomed[0] < len(results["monthly_trend"]) - 1  # fewer months shown than drawn
    assert_screenshot_not_blank(shot)
    small = render(folder / "module_3_1.html")
    assert "模块：部门办件排名" in small.text and 300 < small.svg_widths[0] <= 480  # Plotly's main <svg>
