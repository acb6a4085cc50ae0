"""The HTML reports as a person sees them: opened in headless Chromium, the expected content
is in the rendered page, the images decode, and the screenshot is not blank.

The reports are built by their own render functions on small inputs, without Spark or
Airflow: the spatial verification report from the per-batch checks the Spark job runs
(govops.spatial.verify) on the same sample records as tests/dags/test_spatial_verification.py,
and the monthly extraction summary from a run log written into a fresh ledger."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.browser import assert_screenshot_not_blank, render

pytestmark = pytest.mark.browser


def verified_records() -> tuple[dict[str, Any], Any, Any]:
    """(manifest, records, boundaries) as spark_jobs/verify_spatial.py would leave them for
    800 sample records with 3 of each defect, computed in one chunk."""
    import numpy as np
    import pyarrow as pa

    from govops.sample_data import SampleConfig, build_frames
    from govops.spatial import boundaries, checks, sample, verify

    library = sample.clean_library(build_frames(SampleConfig(seed=4, persons=3000)).addresses)
    records, _ = sample.new_records(library, 800, seed=6, per_defect=3)
    area = boundaries.load()
    rules = checks.Rules(area_bounds=area.bounds)
    reference = library.set_index("id")
    frame = records.rename(columns={"id": "record_id", "lon": "lon_raw", "lat": "lat_raw"}).assign(
        ref_lon=records["address_id"].map(reference["lon"]), ref_lat=records["address_id"].map(reference["lat"]))
    table = pa.Table.from_pandas(frame[list(verify.INPUT)], preserve_index=False)
    lon, lat, _ = checks.point_checks(checks.parse(table["lon_raw"], table["lat_raw"]), rules)
    system = checks.detect_system(lon, lat, frame["ref_lon"].to_numpy(float), frame["ref_lat"].to_numpy(float))
    assert system is not None
    batch_system = system.system if system.matched >= 0.5 * system.compared else "WGS-84"
    lon, lat, usable, _ = verify.locate(table["lon_raw"], table["lat_raw"], rules, batch_system)
    exact, near = checks.duplicates(lon, lat, usable, rules.near_duplicate_m)
    out, _ = verify.verify_table(table, area, rules, batch_system=batch_system, expected_district="青浦区",
                                 exact=exact, near=near)  # fmt: skip
    out = out.to_pandas()
    outcome, reasons = out["outcome"], out["reasons"]
    manifest = {
        "run": {"dag_id": "spatial_verification", "run_id": "manual__2026-08-01T00:00:00+00:00"},
        "outputs": [{
            "dataset": "new_points", "outcomes": dict(Counter(outcome.tolist())),
            "reasons": dict(Counter(code for r in reasons for code in r.split(";") if code)),
            "batch_system": batch_system, "system_evidence": system.__dict__,
        }],
    }  # fmt: skip
    assert np.isnan(out["distance_to_reference_m"]).sum() < len(out)
    return manifest, out, area


def test_spatial_verification_report_in_chromium(tmp_path: Path) -> None:
    from govops.spatial import report

    manifest, records, area = verified_records()
    page = tmp_path / "report.html"
    page.write_text(report.render(manifest, records, area), encoding="utf-8")
    shown = render(page, screenshot=tmp_path / "report.png")

    # The same figures as the Spark job gives for these records (test_spatial_verification.py).
    assert "verified 核实通过 770 corrected 自动纠正 3 field verification 需外业核实 27" in shown.text
    assert "800 records (coordinate points) checked" in shown.text
    reasons = manifest["outputs"][0]["reasons"]
    assert len(reasons) == 10 and set(reasons.values()) == {3}
    for code, name in report.REASONS_ZH.items():
        if code in reasons:
            assert f"{code} {name} " in shown.text, code
    assert "Most likely WGS-84" in shown.text and "空间地理数据核实报告" in shown.text
    # The map and the histogram: inline PNGs that the browser decoded to their full size.
    assert [i.alt for i in shown.images] == ["checked points over the boundaries", "histogram"]
    for image in shown.images:
        assert image.src.startswith("data:image/png;base64,")
        assert image.natural_width and image.natural_width > 500 and image.natural_height > 200, image.alt
    assert_screenshot_not_blank(shown.screenshot)


def test_monthly_extraction_summary_in_chromium(fresh_ledger: Engine, tmp_path: Path) -> None:
    from govops.pipelines.report import publish_month

    with fresh_ledger.begin() as conn:
        for pipeline, department, item, kind, source in (
            ("frontdb_legal_persons", "区市场监管局", "04", "jdbc", "market_regulation.legal_persons"),
            ("landing_persons_export", "区公安分局", "01", "csv", "persons/*.csv"),
        ):
            conn.execute(text(
                """INSERT INTO govops.extraction_inventory (pipeline, description, service_item_code, department,
                       source_kind, database_type, source_object, frequency, mode, target_dataset)
                   VALUES (:p, :d, :i, :dep, :k, :dt, :o, '@daily', 'full', :p)"""
            ), {"p": pipeline, "d": f"{department} 抽取入湖", "i": item, "dep": department, "k": kind,
                "dt": "PostgreSQL" if kind == "jdbc" else "file (csv)", "o": source})  # fmt: skip
        for run, day, read, rejected, reasons in (
            ("r1", "2026-07-08", 200, 5, {"missing name": 3, "duplicate of id 7": 2}),
            ("r2", "2026-07-09", 205, 6, {"missing name": 2, "registered_on is not a date: 2026-13-01": 4}),
        ):
            conn.execute(text(
                """INSERT INTO govops.extraction_run (pipeline, dag_id, run_id, status, read, written, rejected,
                       rejected_by_reason, finished_at)
                   VALUES ('landing_persons_export', 'pipeline_landing_persons_export', :r, 'committed', :n,
                           :n - :j, :j, CAST(:why AS jsonb), CAST(:at AS timestamptz))"""
            ), {"r": run, "n": read, "j": rejected, "why": json.dumps(reasons), "at": f"{day} 10:00+08"})  # fmt: skip

    lake = tmp_path / "lake"
    written = publish_month(fresh_ledger, date(2026, 7, 1), lake.as_uri())
    page = lake / "reports/extraction/2026-07/summary.html"
    assert written["summary"] == f"{lake.as_uri()}/reports/extraction/2026-07/summary.html" and page.is_file()
    shown = render(page, screenshot=tmp_path / "summary.png")

    assert "数据抽取月度汇总 · Extraction summary 2026-07" in shown.text
    assert "2 committed runs; read 405 = loaded 394 + rejected 11." in shown.text
    # The active source's row: runs, read, loaded, rejected, accuracy, completeness, consistency.
    assert "landing_persons_export 区公安分局 01 2 405 394 11 99.01% 98.77% 99.51%" in shown.text
    assert "frontdb_legal_persons 区市场监管局 04 0 0 0 0 – – –" in shown.text
    assert "missing name completeness 5" in shown.text and "duplicate of id 7 consistency 2" in shown.text
    # Volumes, and for the one active source its days and its reasons: inline SVG laid out wide.
    assert len(shown.svg_widths) == 3 and min(shown.svg_widths) > 400, shown.svg_widths
    assert_screenshot_not_blank(shown.screenshot)


def test_a_blank_page_fails_the_screenshot_check(tmp_path: Path) -> None:
    page = tmp_path / "blank.html"
    page.write_text("<!doctype html><html><body></body></html>", encoding="utf-8")
    shown = render(page, screenshot=tmp_path / "blank.png")
    assert shown.text == "" and shown.images == []
    with pytest.raises(AssertionError, match="distinct colours"):
        assert_screenshot_not_blank(shown.screenshot)
