"""Analytics specs (include/analytics): validation naming the file and field, a bad spec not
hiding the others, and the difficulty and quantities the contract gives, from the spec."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from govops.analytics import difficulty as dif
from govops.analytics.spec import EVALUATION_COLUMNS, AnalyticsSpec, SpecError, load_spec, load_specs

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
    s = AnalyticsSpec.model_validate(fusion(domains, kind) if kind.endswith("_model") else spec(kind, domains))
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
        ([{"name": "大屏", "size": "big", "theme_domains": {"政务服务": ["out"], "人口": ["out"]}}], None,
         [(2, "1")], "2"),
        # a theme domain on two big screens counts once
        ([{"name": "A", "size": "big", "theme_domains": {"政务服务": ["out"], "人口": ["out"]}},
          {"name": "B", "size": "big", "theme_domains": {"人口": ["out"], "法人": ["out"]}}], None, [(3, "1")], "3"),
        ([{"name": "大屏", "size": "big", "theme_domains": {"政务服务": ["out"]}},
          {"name": "中屏", "size": "medium", "modules": {"趋势": "out", "排名": "out"}},
          {"name": "H5", "size": "small", "modules": {"概览": "out"}}], "0.15", [(1, "1"), (3, "0.15")], "1.45"),
        ([{"name": "小屏", "size": "small", "modules": {"趋势": "out", "排名": "out"}}], "0.1", [(2, "0.1")], "0.2"),
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
        ({"kind": "dashboard", "screens": [{"name": "s", "size": "small", "modules": {"m": "out"}}]}, "(spec)",
         "module_factor"),
        ({"kind": "dashboard", "screens": [{"name": "s", "size": "small", "modules": {"m": "out"}}],
          "module_factor": "0.3", "module_work_order": "WO-M"}, "module_factor", "less than or equal to 0.2"),
        ({"kind": "dashboard", "screens": [{"name": "s", "size": "big", "theme_domains": {"人口": ["nope"]}}]},
         "(spec)", "screens show outputs ['nope']"),
        ({"kind": "fusion_model"}, "(spec)", "a fusion_model declares its model"),
        ({"model": {"table": "out", "key": "n", "label": "n"}}, "(spec)", "model is only used by kinds fusion_model"),
        ({"parameters": {"Bad-Name": 1}}, "parameters", "lower-case identifiers"),
        ({"kind": "report", "library": "人口库"}, "(spec)", "library is only used by kind analysis"),
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


def test_an_analysis_library_is_its_own_or_its_first_inputs_domain() -> None:
    assert build(domains=3).library_name == "政务服务"
    assert build(domains=3, library="人口库").library_name == "人口库"
    assert dif.PROGRAM_CAP == 20


def test_the_bundled_specs_load_with_their_difficulty() -> None:
    specs, errors = load_specs(REPO / "include/analytics")
    assert errors == []
    got = {s.name: [(line.service_item, line.quantity, line.difficulty) for line in dif.delivery_lines(s)]
           for s in specs}  # fmt: skip
    assert got == {
        "service_events_monthly": [("14", 1, Decimal(1))],
        "service_events_report": [("15", 1, Decimal(2))],
        "enterprise_risk_fusion": [("16", 1, Decimal(3))],  # 法人, 市场监管, 税务, 社保: 4 domains, capped at 3
        "enterprise_risk_mining": [("17", 1, Decimal(3))],  # 税务, 社保, 市场监管
        "district_services_dashboard": [("18", 2, Decimal(1)), ("18", 2, Decimal("0.15"))],
    }


def fusion(domains: int = 1, kind: str = "fusion_model", **model: Any) -> dict[str, Any]:
    """A model spec: a fusion model, or with kind mining_model a logistic regression."""
    columns = {"k": "主体", "a": "指标A", "b": "指标B", "y": "标签"}
    result = {"k": "主体", "score": "分值", "level": "等级", "reasons": "原因", "alert": "预警", "split": "划分"}
    if kind == "mining_model":
        del result["level"], result["reasons"]
        declared = {
            "algorithm": "logistic_regression",
            "features": {c: {"title": c, "definition": c, "department": "区税务局"} for c in "ab"},
        }
    else:
        declared = {
            "levels": {"高": 50, "低": 0},
            "alert_levels": ["高"],
            "indicators": {
                "a": {
                    "title": "A",
                    "definition": "甲",
                    "department": "区税务局",
                    "weight": 0.7,
                    "threshold": 2,
                    "unit": "次",
                },
                "b": {"title": "B", "definition": "乙", "department": "区人社局", "weight": 0.3, "threshold": 0.5},
            },
        }
    return spec(kind=kind, domains=domains, outputs={
        "table": {"title": "宽表", "sql": "SELECT 1", "columns": columns},
        "result": {"title": "结果", "columns": result},
        "evaluation": {"title": "测试", "columns": {c: c for c in EVALUATION_COLUMNS}},
    }, model={"table": "table", "key": "k", "label": "y", **declared, **model})  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indicators": {"a": {"title": "A", "definition": "甲", "department": "d", "weight": 0.5, "threshold": 1}}},
         "the weights add up to 1"),
        ({"levels": {"低": 0, "高": 50}}, "from the highest score down"),
        ({"levels": {"高": 50, "低": 10}}, "the last from 0"),
        ({"alert_levels": ["红"]}, "levels ['红'] are not declared"),
        ({"label": "missing"}, "columns ['missing'] are not columns of output table"),
        ({"result": "evaluation", "evaluation": "result"}, "outputs.evaluation: the model writes it"),
        ({"algorithm": "random_forest"}, "features and algorithm are for mining models"),
    ],
)  # fmt: skip
def test_a_bad_model_is_refused_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AnalyticsSpec.model_validate(fusion(**change))


def test_the_fusion_models_formula_and_design_document_come_from_the_spec() -> None:
    from govops.analytics.documents import design_document
    from govops.analytics.models import fusion_expressions

    s = AnalyticsSpec.model_validate(fusion(rules=[{"title": "规则一", "when": "a >= 3", "level": "高"}]))
    e = fusion_expressions(s.model)
    assert e["score"] == (
        "round(100 * (0.7 * least(greatest(coalesce(CAST(`a` AS DOUBLE), 0D), 0D) / 2, 1D) + "
        "0.3 * least(greatest(coalesce(CAST(`b` AS DOUBLE), 0D), 0D) / 0.5, 1D)), 2)"
    )
    assert e["level"] == "CASE WHEN a >= 3 THEN '高' WHEN score >= 50 THEN '高' WHEN score >= 0 THEN '低' END"
    page = design_document(s)
    for shown in ("<td>a</td><td>A</td><td>甲</td><td>区税务局</td><td>0.7</td><td>2次</td>",
                  "<td>b</td><td>B</td><td>乙</td><td>区人社局</td><td>0.3</td><td>0.5</td>",
                  "<td>规则一</td><td>a &gt;= 3</td><td>高</td>", "<td>高</td><td>50</td><td>是</td>",
                  "难度系数 1（1 data domain(s)", "留出 30%"):  # fmt: skip
        assert shown in page, shown


def test_the_factory_builds_every_kind_and_refreshes_on_any_input_asset() -> None:
    from airflow.sdk import AssetAny

    from govops.analytics.dags import build_dag, schedule_of

    dag = build_dag(build(kind="report", domains=2, refresh={"mode": "automatic", "on_inputs": True}))
    assert sorted(dag.task_ids) == ["analyze", "commit", "prepare", "report"]
    assert dag.get_task("commit").upstream_task_ids == {"analyze", "prepare", "report"}
    schedule = schedule_of(build(kind="report", domains=2, refresh={"mode": "automatic", "on_inputs": True}))
    assert isinstance(schedule, AssetAny)  # any input's new version, not all of them
    assert [a.name.rsplit("/", 3)[1:] for a in schedule.objects] == [["raw", "x", "d0"], ["raw", "x", "d1"]]
    assert schedule_of(build(refresh={"mode": "automatic", "schedule": "@monthly"})) == "@monthly"
    assert "item:14" in build_dag(build()).tags
    assert sorted(build_dag(build()).task_ids) == ["analyze", "commit", "prepare"]
    screens = [{"name": "大屏", "size": "big", "theme_domains": {"政务服务": ["out"]}}]
    assert "pages" in build_dag(build(kind="dashboard", screens=screens)).task_ids
    assert "documents" in build_dag(AnalyticsSpec.model_validate(fusion())).task_ids


def test_a_refresh_on_inputs_waits_for_the_assets_the_pipelines_publish(monkeypatch, tmp_path: Path) -> None:
    """The report's schedule names the Asset the persons pipeline's commit emits, in this lake."""
    from govops.analytics.dags import build_dag, output_assets
    from govops.pipelines.factory import build_dag as build_pipeline
    from govops.pipelines.spec import load_spec as load_pipeline

    monkeypatch.setenv("GOVOPS_LAKE_ROOT", tmp_path.as_uri())
    pipeline_path = REPO / "include/pipelines/frontdb_persons.yaml"
    pipeline = build_pipeline(load_pipeline(pipeline_path), load_pipeline(pipeline_path).model_dump_json())
    published = pipeline.get_task("commit").outlets
    report = load_spec(REPO / "include/analytics/service_events_report.yaml")
    raw = report.model_dump()
    raw["refresh"] = {"mode": "automatic", "on_inputs": True}
    dag = build_dag(AnalyticsSpec.model_validate(raw))
    [persons] = published
    assert persons.uri == f"{tmp_path.as_uri()}/raw/frontdb/public_security/persons"
    assert persons in dag.timetable.asset_condition.objects
    assert {a.uri for a in dag.timetable.asset_condition.objects} == {
        f"{tmp_path.as_uri()}/{i.dataset}" for i in report.inputs.values()}  # fmt: skip
    # and its outputs are Assets named the same way, which the commit task emits
    assert dag.get_task("commit").outlets == list(output_assets(report).values())
    assert dag.get_task("commit").outlets[0].uri == f"{tmp_path.as_uri()}/analytics/{report.name}/by_month_department"
