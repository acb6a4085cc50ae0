"""The bundled dashboard spec (include/analytics/district_services_dashboard.yaml): its Spark
SQL in the session's Spark against pandas over the same sample files, its pages written to a
lake (a page per theme domain of the big screen, a page per module), self-contained, and
drawn by headless Chromium; its billed theme domains and modules."""

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
from govops.sample_data import SampleConfig, build_frames
from govops.security.archive_sample import write_sample_events
from tests.browser import assert_screenshot_not_blank, render

pytestmark = pytest.mark.integration
SPEC = load_spec(Path(__file__).resolve().parents[2] / "include/analytics/district_services_dashboard.yaml")
EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|<script""")


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
    assert sorted(written) == ["big_1_1.html", "big_1_2.html", "index.html", "module_2_1.html", "module_3_1.html"]
    folder = lake / "reports/analytics" / SPEC.name / "run-1"
    pages = {name: (folder / name).read_text(encoding="utf-8") for name in written}
    assert not any(EXTERNAL.search(page) for page in pages.values())
    assert all(f"href='{name}'" in pages["index.html"] for name in written if name != "index.html")
    assert "主题域：政务服务" in pages["big_1_1.html"] and pages["big_1_1.html"].count("<svg") == 2
    assert "主题域：人口" in pages["big_1_2.html"] and pages["big_1_2.html"].count("<svg") == 2
    assert "模块：部门办件排名" in pages["module_3_1.html"] and "width:480px" in pages["module_3_1.html"]

    # Billed: the big screen's two theme domains at 1 each, two modules at 0.15 each.
    lines = dif.delivery_lines(SPEC)
    assert [(x.work_order, x.quantity, x.difficulty) for x in lines] == [
        ("WO-DEMO-DASHBOARD", 2, Decimal(1)), ("WO-DEMO-DASHBOARD-MODULES", 2, Decimal("0.15"))]  # fmt: skip
    assert dif.billed_equivalent(lines) == Decimal("2.3")

    big = render(folder / "big_1_1.html")
    assert "区政务服务与人口主题大屏 · 主题域：政务服务" in big.text and "各部门办件量" in big.text
    assert len(big.svg_widths) == 2 and all(w > 500 for w in big.svg_widths)
    assert_screenshot_not_blank(big.screenshot)
    small = render(folder / "module_3_1.html")
    assert "模块：部门办件排名" in small.text and len(small.svg_widths) == 1 and 300 < small.svg_widths[0] <= 480
