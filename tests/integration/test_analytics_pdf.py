"""The report's PDF (govops.analytics.report.write_pdf, fpdf2): written next to the page,
workbook and CSV files with a CJK font embedded and a chart per output that has one, its
text extracted again with pypdf (the Chinese title, headers and cells); with a font that
lacks the report's glyphs or a font path that does not exist, no PDF and a logged reason,
and the other formats still delivered."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pypdf import PdfReader

from govops.analytics import report
from govops.analytics.spec import load_spec

pytestmark = pytest.mark.integration
SPEC = load_spec(Path(__file__).resolve().parents[2] / "include/analytics/service_events_report.yaml")
RESULTS = {
    "by_month_department": [{"month": f"2025-{m:02d}", "department": d, "events": 10 * m + n}
                            for m in (1, 2, 3) for n, d in enumerate(("区民政局", "区市场监管局"))],
    "age_groups": [{"age_group": "30岁以下", "events": 7}, {"age_group": "60岁及以上", "events": 3}],
    "persons_by_gender": [{"gender": "女", "persons": 104}, {"gender": "男", "persons": 96}],
}  # fmt: skip
LATIN_ONLY = Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"  # ships with matplotlib: no CJK


def _manifest(lake: Path) -> dict:
    outputs = []
    for name, rows in RESULTS.items():
        folder = lake / "analytics" / SPEC.name / name / "version=run-1"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")
        outputs.append({"name": name, "kind": "parquet", "uri": folder.as_uri(), "columns": list(rows[0])})
    inputs = [{"dataset": i.dataset, "domain": i.domain, "rows": 1000, "version": {"run": {"run_id": "extract-7"}}}
              for i in SPEC.inputs.values()]  # fmt: skip
    return {"run": {"work_order_id": "WO-T-PDF"}, "finished_at": "2026-12-01T08:00:00+00:00", "inputs": inputs,
            "outputs": outputs}  # fmt: skip


def test_the_pdf_embeds_a_cjk_font_and_its_chinese_text_extracts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(report.CJK_FONT_ENV, raising=False)
    if report.cjk_font() is None:
        pytest.skip(f"no CJK font on this machine ({', '.join(report.CJK_FONTS)}; or set {report.CJK_FONT_ENV})")
    written = report.write_report(tmp_path.as_uri(), SPEC, _manifest(tmp_path), run_id="run-1")
    assert set(written) == {"html", "xlsx", "pdf", *(f"csv_{n}" for n in SPEC.outputs)}
    pdf = PdfReader(written["pdf"].removeprefix("file://"))
    assert pdf.metadata is not None and pdf.metadata.title == "区政务服务办件月报"
    lines = [" ".join(line.split()) for page in pdf.pages for line in page.extract_text().splitlines()]
    assert lines[0] == "区政务服务办件月报" and "数据来源" in lines
    assert "需求部门 区政务服务中心 · 工单 WO-T-PDF · 数据领域 政务服务、人口 · 难度系数 2" in lines[2]
    for out in SPEC.outputs.values():  # each output: its title, its Chinese headers
        assert out.title in lines and " ".join(out.columns.values()) in lines, out.title
    assert "2025-03 区市场监管局 31" in lines and "60岁及以上 3" in lines and "女 104" in lines
    assert "raw/frontdb/public_security/persons 人口 1,000 extract-7" in lines
    charted = [o for o in SPEC.outputs.values() if o.chart]
    assert sum(len(page.images) for page in pdf.pages) == len(charted) == 2  # a chart per output with one
    fonts = [f.get_object() for page in pdf.pages for f in page["/Resources"]["/Font"].values()]
    descendants = [d.get_object() for f in fonts for d in f.get("/DescendantFonts", [])]
    assert descendants and all("/FontFile2" in d["/FontDescriptor"] for d in descendants)  # embedded, not referenced


@pytest.mark.parametrize("font", [LATIN_ONLY, Path("/nonexistent/font.ttc")], ids=["no_cjk_glyphs", "missing_file"])
def test_without_a_font_for_its_text_the_pdf_is_skipped_and_the_rest_delivered(
    tmp_path: Path, monkeypatch, caplog, font: Path
) -> None:
    monkeypatch.setenv(report.CJK_FONT_ENV, str(font))
    with caplog.at_level(logging.WARNING, logger=report.__name__):
        written = report.write_report(tmp_path.as_uri(), SPEC, _manifest(tmp_path), run_id="run-1")
    assert set(written) == {"html", "xlsx", *(f"csv_{n}" for n in SPEC.outputs)}
    assert not list(tmp_path.rglob("*.pdf"))
    why = "has no glyph for" if font.exists() else "is not a file"
    assert any("service_events_report: report.pdf skipped: " in r.message and why in r.message
               for r in caplog.records), caplog.text  # fmt: skip
