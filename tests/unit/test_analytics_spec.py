"""Analytics specs (include/analytics): validation naming the file and field, a bad spec not
hiding the others, and the difficulty and quantities the contract gives, from the spec."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from govops.analytics import difficulty as dif
from govops.analytics.spec import AnalyticsSpec, SpecError, load_spec, load_specs

REPO = Path(__file__).resolve().parents[2]
DOMAINS = ["政务服务", "人口", "法人", "空间地理", "信用", "医保"]


def spec(kind: str = "analysis", domains: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": "sample_spec", "kind": kind, "title": "测试", "department": "区大数据中心", "work_order": "WO-1",
        "inputs": {f"in{i}": {"dataset": f"raw/x/d{i}", "domain": DOMAINS[i % len(DOMAINS)]} for i in range(domains)},
        "outputs": {"out": {"title": "结果", "sql": "SELECT 1 AS n", "columns": {"n": "数量"}}},
        **extra,
    }  # fmt: skip


def build(**kwargs: Any) -> AnalyticsSpec:
    return AnalyticsSpec.model_validate(spec(**kwargs))


@pytest.mark.parametrize(
    ("kind", "domains", "difficulty"),
    [
        ("analysis", 1, 1), ("analysis", 2, 2), ("analysis", 3, 3), ("analysis", 5, 3),
        ("report", 1, 1), ("report", 3, 3), ("report", 5, 5), ("report", 6, 5),
        ("fusion_model", 2, 2), ("fusion_model", 4, 3), ("mining_model", 1, 1), ("mining_model", 6, 3),
    ],
)  # fmt: skip
def test_difficulty_is_one_per_domain_capped(kind: str, domains: int, difficulty: int) -> None:
    s = build(kind=kind, domains=domains)
    [line] = dif.delivery_lines(s)
    assert (line.quantity, line.difficulty, line.work_order) == (1, Decimal(difficulty), "WO-1")
    assert (line.service_item, line.unit) == (dif.ITEMS[kind], dif.UNITS[kind])


def test_two_inputs_of_one_domain_count_once() -> None:
    raw = spec(domains=1)
    raw["inputs"]["second"] = {"dataset": "raw/x/other", "domain": DOMAINS[0]}
    assert dif.difficulty(AnalyticsSpec.model_validate(raw)) == 1


@pytest.mark.parametrize(("domains", "factor", "refresh"), [(1, "0.1", "0.1"), (2, "0.2", "0.4"), (5, "0.3", "1.5")])
def test_manual_report_refresh_is_difficulty_times_factor(domains: int, factor: str, refresh: str) -> None:
    s = build(kind="report", domains=domains, refresh={"mode": "manual", "factor": factor, "work_order": "WO-R"})
    line = dif.refresh_line(s)
    assert (line.work_order, line.quantity, line.difficulty) == ("WO-R", 1, Decimal(refresh))


def test_automatic_refresh_has_no_billed_refresh() -> None:
    s = build(kind="report", refresh={"mode": "automatic", "schedule": "@monthly"})
    with pytest.raises(ValueError, match=r"refresh\.mode manual"):
        dif.refresh_line(s)


@pytest.mark.parametrize(
    ("screens", "factor", "lines", "equivalent"),
    [
        ([{"name": "大屏", "size": "big", "theme_domains": ["政务服务", "人口"]}], None, [(2, "1")], "2"),
        # a theme domain on two big screens counts once
        ([{"name": "A", "size": "big", "theme_domains": ["政务服务", "人口"]},
          {"name": "B", "size": "big", "theme_domains": ["人口", "法人"]}], None, [(3, "1")], "3"),
        ([{"name": "大屏", "size": "big", "theme_domains": ["政务服务"]},
          {"name": "中屏", "size": "medium", "modules": ["趋势", "排名"]},
          {"name": "H5", "size": "small", "modules": ["概览"]}], "0.15", [(1, "1"), (3, "0.15")], "1.45"),
        ([{"name": "小屏", "size": "small", "modules": ["趋势", "排名"]}], "0.1", [(2, "0.1")], "0.2"),
    ],
)  # fmt: skip
def test_dashboard_theme_domains_and_modules(screens: list, factor: str | None, lines: list, equivalent: str) -> None:
    extra = {"module_factor": factor, "module_work_order": "WO-M"} if factor else {}
    s = build(kind="dashboard", screens=screens, **extra)
    got = dif.delivery_lines(s)
    assert [(line.quantity, line.difficulty) for line in got] == [(q, Decimal(d)) for q, d in lines]
    assert all(line.service_item == "18" and line.unit == "theme_domain" for line in got)
    assert dif.billed_equivalent(got) == Decimal(equivalent)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"kind": "chart"}, "kind", "Input should be"),
        ({"inputs": {}}, "(spec)", "read at least one lake dataset"),
        ({"inputs": {"e": {"dataset": "events", "domain": "政务服务"}}}, "inputs.e.dataset", "should match pattern"),
        ({"inputs": {"e": {"dataset": "raw/x/y"}}}, "inputs.e.domain", "Field required"),
        ({"outputs": {"out": {"title": "t", "columns": {"n": "数量"}}}}, "(spec)", "have no sql"),
        ({"module": "pkg.mod"}, "(spec)", "give module or sql, not both"),
        ({"outputs": {"out": {"title": "t", "sql": "SELECT 1", "columns": {"n": "数量"},
                              "chart": {"type": "line", "x": "month", "y": "n"}}}}, "outputs.out", "month"),
        ({"refresh": {"mode": "manual", "factor": "0.2", "work_order": "WO-R"}}, "(spec)", "billed only for reports"),
        ({"kind": "report", "refresh": {"mode": "manual", "factor": "0.5", "work_order": "WO-R"}},
         "refresh.factor", "less than or equal to 0.3"),
        ({"kind": "report", "refresh": {"mode": "manual", "factor": "0.2"}}, "refresh", "needs factor"),
        ({"kind": "report", "refresh": {"mode": "automatic"}}, "refresh", "exactly one of schedule or on_inputs"),
        ({"kind": "dashboard"}, "(spec)", "lists its screens"),
        ({"kind": "dashboard", "screens": [{"name": "s", "size": "small", "modules": ["m"]}]}, "(spec)",
         "module_factor"),
        ({"kind": "dashboard", "screens": [{"name": "s", "size": "small", "modules": ["m"]}],
          "module_factor": "0.3", "module_work_order": "WO-M"}, "module_factor", "less than or equal to 0.2"),
        ({"parameters": {"Bad-Name": 1}}, "parameters", "lower-case identifiers"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_bad_spec_names_its_file_and_field(tmp_path: Path, change: dict, field: str, message: str) -> None:
    path = tmp_path / "sample_spec.yaml"
    path.write_text(yaml.safe_dump({**spec(), **change}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    text = str(raised.value)
    assert text.startswith(f"SPEC_INVALID: {path}: {field}") and message in text


def test_the_name_is_the_file_name_and_a_bad_spec_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "good_one.yaml").write_text(yaml.safe_dump({**spec(), "name": "good_one"}), encoding="utf-8")
    (tmp_path / "other_name.yaml").write_text(yaml.safe_dump(spec()), encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("name: [unclosed", encoding="utf-8")
    specs, errors = load_specs(tmp_path)
    assert [s.name for s in specs] == ["good_one"]
    assert sorted(str(e).split(": ")[1].rsplit("/", 1)[1] for e in errors) == ["broken.yaml", "other_name.yaml"]
    assert any("must match the file name 'other_name'" in str(e) for e in errors)


def test_the_bundled_specs_load_with_their_difficulty() -> None:
    specs, errors = load_specs(REPO / "include/analytics")
    assert errors == []
    got = {s.name: [(line.service_item, line.quantity, line.difficulty) for line in dif.delivery_lines(s)]
           for s in specs}  # fmt: skip
    assert got["service_events_monthly"] == [("14", 1, Decimal(1))]
    assert got["service_events_report"] == [("15", 1, Decimal(2))]


def test_the_factory_builds_analyses_and_reports_only_and_refreshes_on_input_assets() -> None:
    from govops.analytics.dags import build_dag, schedule_of

    dag = build_dag(build(kind="report", domains=2, refresh={"mode": "automatic", "on_inputs": True}))
    assert sorted(dag.task_ids) == ["analyze", "commit", "prepare", "report"]
    assert dag.get_task("analyze").upstream_task_ids == {"prepare"}
    assert [a.uri for a in schedule_of(build(kind="report", domains=2, refresh={"mode": "automatic",
                                                                               "on_inputs": True}))] == [
        "govops-lake://raw/x/d0", "govops-lake://raw/x/d1"]  # fmt: skip
    assert schedule_of(build(refresh={"mode": "automatic", "schedule": "@monthly"})) == "@monthly"
    assert "item:14" in build_dag(build()).tags
    screens = [{"name": "大屏", "size": "big", "theme_domains": ["政务服务"]}]
    for kind, extra in (("dashboard", {"screens": screens}), ("mining_model", {})):
        with pytest.raises(SpecError, match=f"kind {kind}: no DAG yet"):
            build_dag(build(kind=kind, **extra))
