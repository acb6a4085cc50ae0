"""Catalog quality check (item 11) on crafted catalog entries in the real test database:
every problem code, the counts that reconcile, idempotent storage, metering once and only
the entries no earlier run billed, the rectification lifecycle, the issue lists per
department, and clear errors.

Each test works inside one transaction on the session database and rolls it back, so the
catalog entries other tests register neither disturb nor see these."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import Connection, Engine, text

from govops.ledger.usage import IdempotencyConflict, TaskRef
from govops.quality import catalog_checks as cc
from govops.settlement.workorders import ensure_demo_work_order

WHEN = datetime(2026, 8, 3, 1, 0, tzinfo=UTC)
COLUMNS = [{"name": "id", "type": "bigint", "description": "编号"},
           {"name": "name", "type": "string", "description": "名称"}]  # fmt: skip
CLEAN = {"name": "测试资源", "provider_department": "区公安分局", "source_system": "测试系统",
         "database_type": "PostgreSQL", "source_object": "public_security.persons", "schema": COLUMNS,
         "update_frequency": "每日", "share_type": "有条件共享", "open_type": "不予开放",
         "classification": "基础库/人口"}  # fmt: skip

# dataset -> (overrides of CLEAN, expected findings as (field, problem))
CASES: dict[str, tuple[dict[str, Any], set[tuple[str, str]]]] = {
    "raw/t/clean": ({}, set()),
    "raw/t/required": ({"source_system": " ", "provider_department": ""},
                       {("source_system", "REQUIRED_MISSING"), ("provider_department", "REQUIRED_MISSING")}),
    "Raw/T-Format": ({}, {("dataset", "INVALID_FORMAT")}),
    "raw/t/persons_x": ({"name": "persons_x", "provider_department": "区市场监管局"}, {("name", "NAME_IS_ID")}),
    "raw/t/codes": ({"update_frequency": "daily", "share_type": "共享", "database_type": "postgres",
                     "provider_department": "区市场监管局"},
                    {("update_frequency", "INVALID_CODE"), ("share_type", "INVALID_CODE"),
                     ("database_type", "INVALID_CODE")}),
    "raw/t/conflict": ({"share_type": "不予共享", "open_type": "有条件开放", "provider_department": "区规划资源局"},
                       {("open_type", "SHARE_OPEN_CONFLICT")}),
    "raw/t/class": ({"classification": "人口库", "provider_department": "区规划资源局"},
                    {("classification", "INVALID_CLASSIFICATION")}),
    "raw/t/class_sub": ({"classification": "基础库/地址"}, {("classification", "INVALID_CLASSIFICATION")}),
    "raw/t/dept": ({"provider_department": "区公安局"}, {("provider_department", "UNKNOWN_DEPARTMENT")}),
    "raw/t/schema_empty": ({"schema": []}, {("schema", "SCHEMA_EMPTY")}),
    "raw/t/schema_text": ({"schema": "id,name"}, {("schema", "SCHEMA_INVALID")}),
    "raw/t/columns": ({"schema": [*COLUMNS, {"name": "", "type": "string", "description": "x"},
                                  {"name": "phone", "type": "", "description": " "},
                                  {"name": "ID", "type": "bigint", "description": "编号"}, 5]},
                      {("schema[3]", "COLUMN_NAME_MISSING"), ("schema.phone", "COLUMN_TYPE_MISSING"),
                       ("schema.phone", "COLUMN_DESCRIPTION_MISSING"), ("schema.id", "DUPLICATE_COLUMN"),
                       ("schema[6]", "SCHEMA_INVALID")}),
}  # fmt: skip


@pytest.fixture
def conn(ledger: Engine) -> Iterator[Connection]:
    """One transaction, rolled back: an empty catalog and issue table of the test's own."""
    with ledger.connect() as c:
        tx = c.begin()
        c.execute(text("DELETE FROM govops.catalog_quality_issue"))
        c.execute(text("DELETE FROM govops.data_catalog"))
        for wo in ("WO-T-CATALOG", "WO-T-OTHER"):  # usage needs its work order (item 11)
            ensure_demo_work_order(c, wo, "11", on=date(2026, 8, 1))
        yield c
        tx.rollback()


def put(conn: Connection, dataset: str, **overrides: Any) -> None:
    entry = {**CLEAN, **overrides}
    entry["schema"] = json.dumps(entry["schema"], ensure_ascii=False)
    conn.execute(
        text(
            """INSERT INTO govops.data_catalog (dataset, name, provider_department, source_system, database_type,
                   source_object, schema, update_frequency, share_type, open_type, classification, pipeline,
                   first_run_id)
               VALUES (:dataset, :name, :provider_department, :source_system, :database_type, :source_object,
                   CAST(:schema AS jsonb), :update_frequency, :share_type, :open_type, :classification, 'test', 'r0')
               ON CONFLICT (dataset) DO UPDATE SET name = EXCLUDED.name, schema = EXCLUDED.schema,
                   provider_department = EXCLUDED.provider_department, source_system = EXCLUDED.source_system,
                   database_type = EXCLUDED.database_type, update_frequency = EXCLUDED.update_frequency,
                   share_type = EXCLUDED.share_type, open_type = EXCLUDED.open_type,
                   classification = EXCLUDED.classification"""
        ),
        {"dataset": dataset, **entry},
    )


def run(conn: Connection, run_id: str, department: str | None = None, wo: str = "WO-T-CATALOG") -> dict[str, Any]:
    task = TaskRef("catalog_quality_check", run_id, "check", try_number=1)
    return cc.run_check(conn, task, work_order_id=wo, department=department, event_time=WHEN)


def issues(conn: Connection, run_id: str | None = None) -> set[tuple[str, str, str, str]]:
    sql = "SELECT dataset, field, problem, state FROM govops.catalog_quality_issue"
    return {tuple(r) for r in conn.execute(text(sql + (" WHERE run_id = :r" if run_id else "")), {"r": run_id})}


def issue_id(conn: Connection, run_id: str, dataset: str, problem: str) -> int:
    return conn.execute(text("SELECT id FROM govops.catalog_quality_issue WHERE run_id = :r AND dataset = :d "
                             "AND problem = :p"), {"r": run_id, "d": dataset, "p": problem}).scalar_one()  # fmt: skip


def test_every_problem_code_on_crafted_entries(conn: Connection) -> None:
    for dataset, (overrides, _) in CASES.items():
        put(conn, dataset, **overrides)
    summary = run(conn, "r1")

    expected = {(d, f, p, "open") for d, (_, found) in CASES.items() for f, p in found}
    assert issues(conn, "r1") == expected
    assert {p for _, _, p, _ in expected} == set(cc.PROBLEMS)  # every code is exercised
    assert summary["entries"] == {"checked": 12, "clean": 1, "with_issues": 11}
    assert summary["issues"] == len(expected) == 18
    assert summary["by_problem"]["INVALID_CODE"] == {"issues": 3, "entries": 1}
    assert summary["by_department"] == {
        "": {"checked": 1, "clean": 0, "with_issues": 1, "issues": 2},
        "区公安分局": {"checked": 6, "clean": 1, "with_issues": 5, "issues": 9},
        "区公安局": {"checked": 1, "clean": 0, "with_issues": 1, "issues": 1},
        "区市场监管局": {"checked": 2, "clean": 0, "with_issues": 2, "issues": 4},
        "区规划资源局": {"checked": 2, "clean": 0, "with_issues": 2, "issues": 2},
    }
    per_department = dict(conn.execute(text(
        "SELECT department, count(*) FROM govops.catalog_quality_issue GROUP BY department")).all())  # fmt: skip
    assert per_department == {d: v["issues"] for d, v in summary["by_department"].items() if v["issues"]}
    details = dict(conn.execute(text("SELECT field, detail FROM govops.catalog_quality_issue "
                                     "WHERE dataset IN ('raw/t/codes', 'raw/t/dept')")).all())  # fmt: skip
    assert details["update_frequency"].endswith("应为 每日") and details["database_type"].endswith("应为 PostgreSQL")
    assert details["provider_department"] == "提供部门 '区公安局' 不在部门清单中；是否为 区公安分局"


def test_rules_agree_with_the_bundled_specs_and_sample_departments() -> None:
    from govops.pipelines.factory import catalog_dataset, inventory_source
    from govops.pipelines.spec import load_spec, spec_files
    from govops.sample_data.vocab import DEPARTMENTS

    rules, departments = cc.load_rules(), cc.load_departments()
    assert set(DEPARTMENTS) <= set(departments)
    specs = [load_spec(p) for p in spec_files()]
    assert {s.department for s in specs} <= set(departments)
    assert {inventory_source(s)[0] for s in specs} <= set(rules.code_lists["database_type"].codes)
    catalogued = [s for s in specs if s.catalog]
    assert catalogued
    for spec in catalogued:  # the entry collection registers is clean
        columns = getattr(spec.source, "columns", None) or {}
        entry = cc.Entry(
            dataset=catalog_dataset(spec), name=spec.catalog.name, provider_department=spec.department,
            source_system=spec.catalog.source_system, database_type=inventory_source(spec)[0],
            source_object=inventory_source(spec)[2], update_frequency=spec.catalog.update_frequency,
            share_type=spec.catalog.share_type, open_type=spec.catalog.open_type,
            classification=spec.catalog.classification,
            schema=[{"name": c, "type": t, "description": spec.catalog.columns.get(c, "")} for c, t in columns.items()],
        )  # fmt: skip
        assert cc.check_entry(entry, rules, departments) == [], spec.pipeline


USAGE = ("SELECT run_id, quantity, records, attributes->'checked', attributes->'new', attributes->'new_entry_ids' "
         "FROM govops.usage_event WHERE dag_id = 'catalog_quality_check' AND service_item_code = '11' ORDER BY id")


def ids(conn: Connection, *datasets: str) -> list[int]:
    found = conn.execute(text("SELECT id FROM govops.data_catalog WHERE dataset = ANY(:d) ORDER BY id"),
                         {"d": list(datasets)}).scalars()  # fmt: skip
    return list(found)


def test_run_is_idempotent_and_metered_once(conn: Connection) -> None:
    put(conn, "raw/t/a", schema=[])
    put(conn, "raw/t/b")
    usage = ("SELECT service_item_code, unit, quantity, records, work_order_id, data_source FROM govops.usage_event "
             "WHERE dag_id = 'catalog_quality_check' AND run_id = 'r1'")  # fmt: skip
    first = run(conn, "r1")
    again = run(conn, "r1")  # a retry or a re-run of the same run
    assert first["entries"] == again["entries"] == {"checked": 2, "clean": 1, "with_issues": 1}
    assert first["metered"] == again["metered"] == {"checked": 2, "new": 2}
    assert issues(conn) == {("raw/t/a", "schema", "SCHEMA_EMPTY", "open")}
    assert conn.execute(text(usage)).all() == [("11", "catalog_entry", 2, 2, "WO-T-CATALOG", "data_catalog")]

    # Re-running it against another work order would bill the entries twice: refused, nothing kept.
    with pytest.raises(IdempotencyConflict, match="already metered 2 new catalog entries to work order"):
        run(conn, "r1", wo="WO-T-OTHER")
    assert conn.execute(text(usage)).all() == [("11", "catalog_entry", 2, 2, "WO-T-CATALOG", "data_catalog")]


def test_only_new_entries_are_metered(conn: Connection) -> None:
    put(conn, "raw/t/a", schema=[])
    put(conn, "raw/t/b")
    a, b = ids(conn, "raw/t/a", "raw/t/b")
    run(conn, "r1")
    # The weekly re-check of the same entries, one of them corrected in place: nothing new.
    put(conn, "raw/t/a")
    assert run(conn, "r2")["metered"] == {"checked": 2, "new": 0}
    # One entry registered: exactly it is new.
    put(conn, "raw/t/c", classification="")
    (c,) = ids(conn, "raw/t/c")
    third = run(conn, "r3")
    assert third["metered"] == {"checked": 3, "new": 1} and third["entries"]["with_issues"] == 1
    # Re-running the first run (the catalog has changed, later runs have metered): its own
    # quantity again, no conflict, and raw/t/c, which it now checks too, is not billed twice.
    assert run(conn, "r1")["metered"] == {"checked": 3, "new": 2}
    assert issues(conn, "r1") == {("raw/t/a", "schema", "SCHEMA_EMPTY", "reverified"),
                                  ("raw/t/c", "classification", "REQUIRED_MISSING", "open")}  # fmt: skip
    assert conn.execute(text(USAGE)).all() == [
        ("r1", 2, 2, 2, 2, [[a, b]] if b == a + 1 else [[a, a], [b, b]]),
        ("r2", 0, 2, 2, 0, []),
        ("r3", 1, 3, 3, 1, [[c, c]]),
    ]
    assert run(conn, "r4")["metered"] == {"checked": 3, "new": 0}


def test_department_runs_bill_each_entry_once(conn: Connection) -> None:
    put(conn, "raw/t/p1")
    put(conn, "raw/t/p2")
    put(conn, "raw/t/m1", provider_department="区市场监管局")
    assert run(conn, "r1", department="区公安分局")["metered"] == {"checked": 2, "new": 2}
    assert run(conn, "r2")["metered"] == {"checked": 3, "new": 1}  # only the market entry
    assert run(conn, "r3", department="区市场监管局")["metered"] == {"checked": 1, "new": 0}
    put(conn, "raw/t/m2", provider_department="区市场监管局")
    assert run(conn, "r4", department="区公安分局")["metered"] == {"checked": 2, "new": 0}
    assert run(conn, "r5", department="区市场监管局")["metered"] == {"checked": 2, "new": 1}
    total = "SELECT sum(quantity) FROM govops.usage_event WHERE service_item_code = '11' AND run_id LIKE 'r_'"
    assert conn.execute(text(total)).scalar_one() == 4  # four entries, each billed once


def test_events_without_entry_ids_count_what_was_onboarded_by_then(conn: Connection) -> None:
    """An event recorded before the billed ids were kept billed the entries it checked."""
    from govops.ledger.usage import UsageEvent, record_usage

    put(conn, "raw/t/a")
    put(conn, "raw/t/m", provider_department="区市场监管局")
    legacy = TaskRef("catalog_quality_check", "legacy", "check")
    record_usage(conn, [UsageEvent(task=legacy, service_item_code="11", quantity=1, unit="catalog_entry",
                                   event_time=WHEN, work_order_id="WO-T-CATALOG", data_source="data_catalog",
                                   records=1, department=" 区公安分局", attributes={"clean": 1})])  # fmt: skip
    assert run(conn, "r1")["metered"] == {"checked": 2, "new": 1}  # the market entry only


def test_id_ranges() -> None:
    assert cc.id_ranges([]) == []
    assert cc.id_ranges([7, 1, 3, 2, 2, 9, 8]) == [[1, 3], [7, 9]]


def test_rectification_lifecycle_and_invalid_transitions(conn: Connection) -> None:
    put(conn, "raw/t/a", schema=[])
    put(conn, "raw/t/b", update_frequency="weekly")
    put(conn, "raw/t/c", classification="主题库")
    put(conn, "raw/t/m", provider_department="区市场监管局", name="m")
    run(conn, "r1")
    a, b = issue_id(conn, "r1", "raw/t/a", "SCHEMA_EMPTY"), issue_id(conn, "r1", "raw/t/b", "INVALID_CODE")
    assert cc.mark_fixed(conn, [a, b]) == 2

    with pytest.raises(cc.CatalogQualityError, match=rf"issue #{a} \(raw/t/a schema SCHEMA_EMPTY\) is fixed, not open"):
        cc.mark_fixed(conn, [a])
    with pytest.raises(cc.CatalogQualityError, match=r"no catalog quality issue #999999999") as error:
        cc.mark_fixed(conn, [999_999_999, b])
    assert f"issue #{b}" in str(error.value)  # every problem of the request at once
    with pytest.raises(cc.CatalogQualityError, match="name the catalog quality issue"):
        cc.mark_fixed(conn, [])

    # a is fixed for real, b only said to be; c is fixed without anyone saying so.
    put(conn, "raw/t/a", schema=COLUMNS)
    put(conn, "raw/t/c", classification="主题库/一网通办")
    second = run(conn, "r2", department="区公安分局")
    assert issues(conn, "r1") == {
        ("raw/t/a", "schema", "SCHEMA_EMPTY", "reverified"), ("raw/t/b", "update_frequency", "INVALID_CODE", "open"),
        ("raw/t/c", "classification", "INVALID_CLASSIFICATION", "reverified"),
        ("raw/t/m", "name", "NAME_IS_ID", "open"),  # another department's entry: not checked by r2
    }  # fmt: skip
    assert issues(conn, "r2") == {("raw/t/b", "update_frequency", "INVALID_CODE", "open")}
    assert (second["lifecycle"]["reverified"], second["lifecycle"]["reopened"]) == (2, 1)
    with pytest.raises(cc.CatalogQualityError, match="is reverified, not open: it is closed"):
        cc.mark_fixed(conn, [a])

    # Marking the issue fixed marks it in every run that listed it; the next run closes both.
    assert cc.mark_fixed(conn, [issue_id(conn, "r2", "raw/t/b", "INVALID_CODE")]) == 2
    put(conn, "raw/t/b", update_frequency="每周")
    third = run(conn, "r3")
    assert third["lifecycle"]["reverified"] == 2 and issues(conn, "r3") == {("raw/t/m", "name", "NAME_IS_ID", "open")}
    left = cc.outstanding(conn)
    assert [(r["run_id"], r["dataset"], r["problem"]) for r in left] == [("r3", "raw/t/m", "NAME_IS_ID")]


def test_department_filter(conn: Connection) -> None:
    put(conn, "raw/t/a", provider_department="区人社局 ")
    assert run(conn, "r1", department="区人社局")["entries"]["checked"] == 1  # compared trimmed
    assert run(conn, "r2", department="区大数据中心")["entries"] == {"checked": 0, "clean": 0, "with_issues": 0}
    with pytest.raises(cc.CatalogQualityError, match="department '区财政局': no catalog entry names it"):
        run(conn, "r3", department="区财政局")


def test_issue_lists_per_department(conn: Connection, tmp_path: Path) -> None:
    for dataset, (overrides, _) in CASES.items():
        put(conn, dataset, **overrides)
    summary = run(conn, "scheduled__2026-08-03T01:00:00+00:00")
    files = cc.publish(conn, summary, (tmp_path / "lake").as_uri())
    folder = tmp_path / "lake/reports/catalog_quality/scheduled__2026-08-03T01_00_00_00_00"
    departments = ("区公安分局", "区公安局", "区市场监管局", "区规划资源局", "未填写提供部门")
    expected = [f"{d}.{x}" for d in departments for x in ("xlsx", "csv")] + ["summary.json", "report.html"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(files) == sorted(expected)
    sheet = list(openpyxl.load_workbook(folder / "区市场监管局.xlsx").active.iter_rows(values_only=True))
    assert sheet[0] == cc.COLUMNS and len(sheet) == 1 + 4
    assert {(r[1], r[5]) for r in sheet[1:]} == {("raw/t/persons_x", "NAME_IS_ID"), ("raw/t/codes", "INVALID_CODE")}
    assert sheet[1][8] == "待整改" and all(isinstance(r[0], int) for r in sheet[1:])
    with (folder / "区公安分局.csv").open(encoding="utf-8-sig") as handle:
        assert len(list(csv.reader(handle))) == 1 + 9
    written = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    entries = written["entries"]
    assert entries["checked"] == entries["clean"] + entries["with_issues"] == 12
    assert sum(d["checked"] for d in written["by_department"].values()) == 12
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<td class=n id=checked>12</td>" in page and "<td class=n id=issues>18</td>" in page
    assert written["metered"] == {"checked": 12, "new": 12} and "<td class=n id=new>12</td>" in page

    # A retry replaces the run's files rather than adding to them.
    (folder / "stale.csv").write_text("from an earlier attempt", encoding="utf-8")
    assert cc.publish(conn, summary, (tmp_path / "lake").as_uri()) == files
    assert not (folder / "stale.csv").exists()


def test_bad_rules_and_departments_name_the_file_and_key(tmp_path: Path) -> None:
    import yaml

    rules = yaml.safe_load((cc.settings.repo_root() / cc.RULES_FILE).read_text(encoding="utf-8"))
    rules["code_lists"]["share_type"]["aliases"] = {"shared": "共享"}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with pytest.raises(cc.RulesError) as error:
        cc.load_rules(path)
    assert str(error.value).startswith(f"CATALOG_CHECK_REFUSED: {path}: code_lists.share_type: Value error, "
                                       "aliases must map to one of the codes: shared -> 共享")  # fmt: skip
    rules["code_lists"]["share_type"]["aliases"] = {}
    del rules["problems"]["DUPLICATE_COLUMN"]
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with pytest.raises(cc.RulesError, match=r"problems: explain exactly the checker's codes \(missing \['DUPLICATE_C"):
        cc.load_rules(path)

    path.write_text("departments: [区公安分局, 区公安分局, ' 区人社局']\n", encoding="utf-8")
    with pytest.raises(cc.RulesError, match=r"departments\.2: ' 区人社局' is not a department name"):
        cc.load_departments(path)
    path.write_text("departments: [\n", encoding="utf-8")
    with pytest.raises(cc.RulesError, match="not valid YAML"):
        cc.load_departments(path)


def test_command_line_refuses_an_unknown_issue(isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cc.main(["fixed", "999999999"]) == 2
    assert "error: CATALOG_CHECK_REFUSED: no catalog quality issue #999999999" in capsys.readouterr().err
