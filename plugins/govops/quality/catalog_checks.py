"""数据资产目录质量检查 · Catalog quality check (catalog item 11).

Checks every catalog entry (编目) of ``govops.data_catalog`` for completeness and validity
against the rules of ``include/quality_suites/catalog_rules.yaml`` and the departments of
``include/catalog/departments.yaml``: required fields, code formats, code lists (update
frequency, share and open attributes, database type), the share/open consistency, the
classification, the provider department, and the schema (信息项: every column named,
typed and described, no duplicates).

A run stores its findings in ``govops.catalog_quality_issue`` (one row per run, entry,
field and problem: a re-run changes nothing), meters one usage event in the same
transaction, and writes the issue list of each department (XLSX and CSV), the summary and
an HTML page to ``<lake>/reports/catalog_quality/<run>/``.

Metering: what is new. The contract bills item 11 per new catalog entry (新增数据资源目录个数),
so the weekly re-check does not bill the same entries again. The event (item 11, unit
``catalog_entry``, data source ``data_catalog``) has quantity = the entries the run checked
that no earlier metered run billed, records = the entries checked, and ``attributes``
``{"checked": N, "new": M, "new_entry_ids": [[first, last], ...], ...}``: the
``govops.data_catalog`` ids billed, as ranges. What was billed before is read back from
these attributes of the item-11 events of ``govops.usage_event`` (any run, DAG or work
order; a department-filtered run bills only its department's entries, and a later run
does not bill them again). An entry is identified by its id: an entry updated in place is
not new; one deleted and registered again is. Events recorded before this rule have no
``new_entry_ids``; they count as having billed the entries onboarded by then (of their
department, when filtered). A run with nothing new meters quantity 0. A re-run of a run
that has metered (its event found by the event key without the work order) re-records
exactly that event, whatever the catalog holds now; against another work order it is
refused (it would bill the entries twice).

Rectification (整改): an issue is ``open`` until its department says it is ``fixed``
(:func:`mark_fixed`). The next run that checks the entry marks it ``reverified`` if the
problem is gone, or reopens it if it is still there. A run that no longer finds an issue nobody
declared fixed reverifies it too: the catalog was corrected either way.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Connection, text

from govops import settings
from govops.errors import CodedError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from govops.ledger.usage import TaskRef

RULES_FILE = "include/quality_suites/catalog_rules.yaml"
DEPARTMENTS_FILE = "include/catalog/departments.yaml"
SERVICE_ITEM, UNIT, DATA_SOURCE = "11", "catalog_entry", "data_catalog"
REPORTS_DIR = "reports/catalog_quality"
NO_DEPARTMENT = "未填写提供部门"  # where the issues of an entry without a department are listed

# The catalog's text fields, in the order of govops.data_catalog; schema is checked apart.
TEXT_FIELDS: Final = ("dataset", "name", "provider_department", "source_system", "database_type", "source_object",
                      "update_frequency", "share_type", "open_type", "classification")  # fmt: skip
CODED_FIELDS: Final = ("update_frequency", "share_type", "open_type", "database_type")
PROBLEMS: Final = (
    "REQUIRED_MISSING", "INVALID_FORMAT", "NAME_IS_ID", "INVALID_CODE", "INVALID_CLASSIFICATION",
    "SHARE_OPEN_CONFLICT", "UNKNOWN_DEPARTMENT", "SCHEMA_EMPTY", "SCHEMA_INVALID", "COLUMN_NAME_MISSING",
    "COLUMN_TYPE_MISSING", "COLUMN_DESCRIPTION_MISSING", "DUPLICATE_COLUMN",
)  # fmt: skip
STATES_ZH: Final = {"open": "待整改", "fixed": "已整改待复核", "reverified": "复核通过"}
# One check run or state change at a time: the lifecycle updates read what the last one wrote.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('govops.catalog_quality_issue'))"


@contextmanager
def _begin(target: Engine | Connection) -> Iterator[Connection]:
    """A transaction of its own on an Engine; a savepoint inside the caller's on a Connection."""
    if isinstance(target, Connection):
        with target.begin_nested():
            yield target
    else:
        with target.begin() as conn:
            yield conn


class CatalogQualityError(CodedError, ValueError):
    """A request the catalog check refuses (bad filter, unknown issue, invalid transition)."""

    code = "CATALOG_CHECK_REFUSED"


class RulesError(CatalogQualityError):
    """The rules or the department list are invalid; the message names the file and the key."""


# --- the rules ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeList(_Strict):
    codes: list[str] = Field(min_length=1)
    aliases: dict[str, str] = {}  # a value seen in the wild -> the code to use instead

    @model_validator(mode="after")
    def _aliases_name_codes(self) -> CodeList:
        if len(set(self.codes)) != len(self.codes):
            twice = sorted(code for code, n in Counter(self.codes).items() if n > 1)
            raise ValueError(f"codes: listed twice: {', '.join(twice)}")
        wrong = sorted(f"{a} -> {c}" for a, c in self.aliases.items() if c not in self.codes)
        if wrong:
            raise ValueError(f"aliases must map to one of the codes: {', '.join(wrong)}")
        return self

    def explain(self, value: str, label: str) -> str:
        """Why the value is not a code, and the code it probably means."""
        stripped = value.strip()
        folded = {a.casefold(): c for a, c in self.aliases.items()} | {c.casefold(): c for c in self.codes}
        if stripped in self.codes:
            hint = f"去掉首尾空格：{stripped}"
        elif stripped.casefold() in folded:
            hint = f"应为 {folded[stripped.casefold()]}"
        else:
            close = difflib.get_close_matches(stripped, self.codes, n=1, cutoff=0.6)
            hint = f"是否为 {close[0]}" if close else ""
        listed = "/".join(self.codes[:8]) + (f"/…共{len(self.codes)}项" if len(self.codes) > 8 else "")
        return f"{label} {value!r} 不在代码表中（{listed}）" + (f"；{hint}" if hint else "")


class Classification(_Strict):
    separator: str = Field("/", min_length=1)
    categories: dict[str, list[str]] = Field(min_length=1)  # category -> sub-classes ([]: any named one)

    def problem(self, value: str) -> str | None:
        """None if the classification is valid, else what is wrong with it."""
        category, sep, sub = value.partition(self.separator)
        known = "/".join(self.categories)
        if category not in self.categories:
            return f"资源分类 {value!r} 的类别 {category!r} 不在分类目录中（{known}）"
        if not sep or not sub.strip():
            return f"资源分类 {value!r} 缺少子类，应为 {category}{self.separator}<子类>"
        allowed = self.categories[category]
        if allowed and sub not in allowed:
            return f"资源分类 {value!r} 的子类 {sub!r} 不在 {category} 的子类中（{'/'.join(allowed)}）"
        return None


class ShareOpenConflict(_Strict):
    share_type: str
    open_type: str


class Rules(_Strict):
    version: Literal[1]
    labels: dict[str, str]
    required: list[str]
    formats: dict[str, str] = {}
    code_lists: dict[str, CodeList]
    classification: Classification
    share_open_conflicts: list[ShareOpenConflict] = []
    problems: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        fields = {*TEXT_FIELDS, "schema"}
        if set(self.labels) != fields:
            missing, extra = sorted(fields - set(self.labels)), sorted(set(self.labels) - fields)
            raise ValueError(f"labels: give exactly the catalog fields (missing {missing}, unknown {extra})")
        for key, names in (("required", self.required), ("formats", list(self.formats))):
            unknown = sorted(set(names) - set(TEXT_FIELDS))
            if unknown:
                raise ValueError(f"{key}: not text fields of the catalog: {', '.join(unknown)}")
        for name, pattern in self.formats.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"formats.{name}: not a regular expression: {exc}") from None
        if set(self.code_lists) != set(CODED_FIELDS):
            raise ValueError(f"code_lists: give exactly {', '.join(CODED_FIELDS)}")
        for i, pair in enumerate(self.share_open_conflicts):
            for name in ("share_type", "open_type"):
                if getattr(pair, name) not in self.code_lists[name].codes:
                    raise ValueError(f"share_open_conflicts.{i}.{name}: {getattr(pair, name)!r} is not a code")
        if set(self.problems) != set(PROBLEMS):
            missing, extra = sorted(set(PROBLEMS) - set(self.problems)), sorted(set(self.problems) - set(PROBLEMS))
            raise ValueError(f"problems: explain exactly the checker's codes (missing {missing}, unknown {extra})")
        return self


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from exc


def load_rules(path: Path | None = None) -> Rules:
    path = path or settings.repo_root() / RULES_FILE
    data = _yaml(path)
    if not isinstance(data, dict):
        raise RulesError(f"{path}: the rules are a mapping of keys")
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(rules)'}: {e['msg']}" for e in exc.errors())
        raise RulesError(f"{path}: {where}") from exc


def load_departments(path: Path | None = None) -> tuple[str, ...]:
    path = path or settings.repo_root() / DEPARTMENTS_FILE
    data = _yaml(path)
    names = data.get("departments") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names:
        raise RulesError(f"{path}: departments: give a non-empty list of department names")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise RulesError(f"{path}: departments.{i}: {name!r} is not a department name")
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if twice:
        raise RulesError(f"{path}: departments: listed twice: {', '.join(twice)}")
    return tuple(names)


# --- checking entries --------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One row of govops.data_catalog, as stored (any field may hold anything)."""

    dataset: str
    name: Any = None
    provider_department: Any = None
    source_system: Any = None
    database_type: Any = None
    source_object: Any = None
    schema: Any = None
    update_frequency: Any = None
    share_type: Any = None
    open_type: Any = None
    classification: Any = None
    id: int | None = None  # govops.data_catalog.id: what metering counts (None: not from the table)

    @property
    def department(self) -> str:
        return _text(self.provider_department).strip()


@dataclass(frozen=True)
class Finding:
    dataset: str
    department: str  # the entry's provider department, trimmed ('' when blank)
    field: str  # a catalog field, schema.<column> or schema[<position>]
    problem: str  # one of PROBLEMS
    detail: str


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _short(value: Any, limit: int = 60) -> str:
    shown = _text(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def check_entry(entry: Entry, rules: Rules, departments: Collection[str]) -> list[Finding]:
    """Every problem of one entry, at most one per field and problem code. Never raises on
    the entry's content: whatever is stored is a finding, not an error."""
    found: dict[tuple[str, str], Finding] = {}

    def add(field: str, problem: str, detail: str) -> None:
        seen = found.get((field, problem))
        detail = detail if seen is None else f"{seen.detail}；{detail}"
        found[(field, problem)] = Finding(entry.dataset, entry.department, field, problem, detail)

    label = rules.labels
    values = {f: _text(getattr(entry, f)) for f in TEXT_FIELDS}
    blank = {f for f in TEXT_FIELDS if not values[f].strip()}
    for f in rules.required:
        if f in blank:
            add(f, "REQUIRED_MISSING", f"{label[f]}为空")
    for f, pattern in rules.formats.items():
        if f not in blank and not re.fullmatch(pattern, values[f]):
            add(f, "INVALID_FORMAT", f"{label[f]} {values[f]!r} 不符合格式 {pattern}")
    name, dataset = values["name"].strip().casefold(), values["dataset"].strip().casefold()
    if name and dataset and name in {dataset, dataset.rsplit("/", 1)[-1]}:
        add("name", "NAME_IS_ID", f"资源名称 {values['name']!r} 与资源标识相同，应填写资源的中文名称")
    for f, codes in rules.code_lists.items():
        if f not in blank and values[f] not in codes.codes:
            add(f, "INVALID_CODE", codes.explain(values[f], label[f]))
    pair = (values["share_type"], values["open_type"])
    if any((c.share_type, c.open_type) == pair for c in rules.share_open_conflicts):
        add("open_type", "SHARE_OPEN_CONFLICT",
            f"共享属性为{pair[0]}，开放属性不能为{pair[1]}（开放范围不能大于共享范围）")  # fmt: skip
    if "classification" not in blank:
        why = rules.classification.problem(values["classification"])
        if why:
            add("classification", "INVALID_CLASSIFICATION", why)
    department = values["provider_department"]
    if "provider_department" not in blank and department not in departments:
        close = difflib.get_close_matches(department.strip(), list(departments), n=1, cutoff=0.5)
        add("provider_department", "UNKNOWN_DEPARTMENT",
            f"提供部门 {department!r} 不在部门清单中" + (f"；是否为 {close[0]}" if close else ""))  # fmt: skip
    _check_schema(entry.schema, add)
    return list(found.values())


def _check_schema(schema: Any, add: Callable[[str, str, str], None]) -> None:
    if schema is None or schema == []:
        add("schema", "SCHEMA_EMPTY", "没有信息项：应逐项编目字段的名称、类型和描述")
        return
    if not isinstance(schema, list):
        kind = {str: "文本", dict: "对象"}.get(type(schema), type(schema).__name__)
        add("schema", "SCHEMA_INVALID", f"信息项应为列表 [{{name, type, description}}]，实为{kind}：{_short(schema)}")
        return
    positions: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for i, column in enumerate(schema, start=1):
        if not isinstance(column, dict):
            add(f"schema[{i}]", "SCHEMA_INVALID", f"第{i}项不是信息项 {{name, type, description}}：{_short(column)}")
            continue
        name = _text(column.get("name")).strip()
        where = f"schema.{name}" if name else f"schema[{i}]"
        if not name:
            add(where, "COLUMN_NAME_MISSING", f"第{i}项信息项没有名称")
        else:
            positions.setdefault(name.casefold(), []).append(i)
            names.setdefault(name.casefold(), name)
        if not _text(column.get("type")).strip():
            add(where, "COLUMN_TYPE_MISSING", f"第{i}项信息项 {name or '(无名称)'} 没有数据类型")
        if not _text(column.get("description")).strip():
            add(where, "COLUMN_DESCRIPTION_MISSING", f"第{i}项信息项 {name or '(无名称)'} 没有描述（信息项说明）")
    for key, at in positions.items():
        if len(at) > 1:
            add(f"schema.{names[key]}", "DUPLICATE_COLUMN",
                f"信息项 {names[key]} 出现 {len(at)} 次（第{'、'.join(map(str, at))}项）")  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    entries: list[Entry]
    findings: list[Finding]

    def summary(self) -> dict[str, Any]:
        """Entries checked = clean + with issues, overall, per problem and per department."""
        checked = {e.dataset for e in self.entries}
        with_issues = {f.dataset for f in self.findings}
        if not with_issues <= checked:  # every finding belongs to an entry counted as checked
            raise CatalogQualityError(f"findings name entries not checked: {', '.join(sorted(with_issues - checked))}")
        by_department: dict[str, dict[str, int]] = {}
        for e in self.entries:
            d = by_department.setdefault(e.department, {"checked": 0, "clean": 0, "with_issues": 0, "issues": 0})
            d["checked"] += 1
            d["with_issues" if e.dataset in with_issues else "clean"] += 1
        for f in self.findings:
            by_department[f.department]["issues"] += 1
        by_problem: dict[str, dict[str, int]] = {}
        for f in self.findings:
            by_problem.setdefault(f.problem, {"issues": 0, "entries": 0})["issues"] += 1
        for _, problem in {(f.dataset, f.problem) for f in self.findings}:
            by_problem[problem]["entries"] += 1
        return {
            "entries": {"checked": len(checked), "clean": len(checked - with_issues), "with_issues": len(with_issues)},
            "issues": len(self.findings),
            "by_problem": {p: by_problem[p] for p in PROBLEMS if p in by_problem},
            "by_department": dict(sorted(by_department.items())),
        }


def check_entries(entries: Iterable[Entry], rules: Rules, departments: Collection[str]) -> CheckResult:
    listed = list(entries)
    datasets = Counter(e.dataset for e in listed)
    twice = sorted(d for d, n in datasets.items() if n > 1)
    if twice:  # the table's key forbids it; a caller's list might not
        raise CatalogQualityError(f"catalog entries listed twice: {', '.join(twice)}")
    return CheckResult(listed, [f for e in listed for f in check_entry(e, rules, departments)])


def load_entries(conn: Connection, department: str | None = None) -> list[Entry]:
    """The catalog entries, all or one provider department's (compared trimmed)."""
    rows = conn.execute(
        text(
            f"""SELECT id, {", ".join(TEXT_FIELDS)}, schema FROM govops.data_catalog
                 WHERE CAST(:d AS text) IS NULL OR btrim(provider_department) = btrim(CAST(:d AS text))
                 ORDER BY dataset"""
        ),
        {"d": department},
    ).mappings()
    return [Entry(**row) for row in rows]


# --- one run: findings, rectification and metering in one transaction --------------------


def run_check(
    target: Engine | Connection,
    task: TaskRef,
    *,
    work_order_id: str,
    department: str | None = None,
    event_time: datetime,
    rules: Rules | None = None,
    departments: Collection[str] | None = None,
) -> dict[str, Any]:
    """Check the catalog (or one department's part), record the findings, move the
    rectification states of earlier issues, and meter the new entries checked (see the
    module docstring): all or nothing (a transaction of its own, or a savepoint in the
    caller's given a Connection). Returns the run's summary (JSON-serialisable, for XCom
    and the report), with ``metered``: entries checked and new (the quantity metered)."""
    rules = rules or load_rules()
    departments = departments if departments is not None else load_departments()
    with _begin(target) as conn:
        conn.execute(text(_LOCK))
        entries = load_entries(conn, department)
        if department is not None and not entries and department.strip() not in departments:
            raise CatalogQualityError(
                f"department {department!r}: no catalog entry names it and it is not in {DEPARTMENTS_FILE}"
            )
        result = check_entries(entries, rules, departments)
        lifecycle = record(conn, result, task)
        metered = meter(conn, result, task, work_order_id=work_order_id, department=department,
                        event_time=event_time)  # fmt: skip
    return {
        "dag_id": task.dag_id, "run_id": task.run_id, "work_order_id": work_order_id, "department_filter": department,
        "checked_at": event_time.isoformat(), **result.summary(), "lifecycle": lifecycle, "metered": metered,
    }  # fmt: skip


def record(conn: Connection, result: CheckResult, task: TaskRef) -> dict[str, Any]:
    """Store the run's findings (idempotent), reopen the ``fixed`` issues it still finds,
    and reverify the open and fixed issues of the checked entries it no longer finds.
    Runs inside the caller's transaction."""
    if result.findings:
        conn.execute(
            text(
                """INSERT INTO govops.catalog_quality_issue (dag_id, run_id, dataset, department, field, problem,
                       detail)
                   VALUES (:dag, :run, :dataset, :department, :field, :problem, :detail)
                   ON CONFLICT (run_id, dataset, field, problem) DO UPDATE SET detail = EXCLUDED.detail,
                       department = EXCLUDED.department,
                       state = CASE WHEN catalog_quality_issue.state = 'reverified' THEN 'open'
                                    ELSE catalog_quality_issue.state END,
                       resolved_at = CASE WHEN catalog_quality_issue.state = 'reverified' THEN NULL
                                          ELSE catalog_quality_issue.resolved_at END"""
            ),
            [{"dag": task.dag_id, "run": task.run_id, "dataset": f.dataset, "department": f.department,
              "field": f.field, "problem": f.problem, "detail": f.detail} for f in result.findings],
        )  # fmt: skip
    keys = {
        "ds": [f.dataset for f in result.findings],
        "f": [f.field for f in result.findings],
        "p": [f.problem for f in result.findings],
        "checked": [e.dataset for e in result.entries],
    }
    found = "SELECT * FROM unnest(CAST(:ds AS text[]), CAST(:f AS text[]), CAST(:p AS text[]))"
    reopened = conn.execute(
        text(
            f"""UPDATE govops.catalog_quality_issue SET state = 'open', resolved_at = NULL
                 WHERE state = 'fixed' AND (dataset, field, problem) IN ({found}) RETURNING id"""
        ),
        keys,
    ).scalars()
    reopened_ids = sorted(reopened)
    reverified = conn.execute(
        text(
            f"""UPDATE govops.catalog_quality_issue SET state = 'reverified', resolved_at = now()
                 WHERE state IN ('open', 'fixed') AND dataset = ANY(CAST(:checked AS text[]))
                   AND (dataset, field, problem) NOT IN ({found})
             RETURNING id"""
        ),
        keys,
    ).scalars()
    reverified_ids = sorted(reverified)
    return {"reopened": len(reopened_ids), "reverified": len(reverified_ids),
            "reopened_ids": reopened_ids, "reverified_ids": reverified_ids}  # fmt: skip


# --- metering: the entries no earlier run billed --------------------------------------------


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as [first, last] ranges: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def billed_entries(conn: Connection, ids: Collection[int], *, excluding: TaskRef) -> set[int]:
    """Which of these govops.data_catalog ids an item-11 event already billed, the events
    of ``excluding``'s task aside: from the ``new_entry_ids`` ranges of the events, and, for
    events recorded before those were kept, the entries onboarded by then."""
    from bisect import bisect_right

    if not ids:
        return set()
    events = """SELECT u.* FROM govops.usage_event u
                 WHERE u.service_item_code = :item AND u.data_source = :source
                   AND NOT (u.dag_id = :dag AND u.run_id = :run AND u.task_id = :task AND u.map_index = :mi)"""
    params = {"item": SERVICE_ITEM, "source": DATA_SOURCE, "ids": sorted(ids), "dag": excluding.dag_id,
              "run": excluding.run_id, "task": excluding.task_id, "mi": excluding.map_index}  # fmt: skip
    ranges = conn.execute(
        text(f"""SELECT DISTINCT (r->>0)::bigint AS first, (r->>1)::bigint AS last FROM ({events}) u
                  CROSS JOIN LATERAL jsonb_array_elements(u.attributes->'new_entry_ids') r
                 WHERE jsonb_typeof(u.attributes->'new_entry_ids') = 'array' ORDER BY first"""),
        params,
    ).all()
    merged: list[list[int]] = []
    for first, last in ranges:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    starts = [first for first, _ in merged]
    billed = {i for i in ids if (at := bisect_right(starts, i) - 1) >= 0 and i <= merged[at][1]}
    legacy = conn.execute(
        text(f"""SELECT DISTINCT c.id FROM govops.data_catalog c
                   JOIN ({events} AND NOT (u.attributes ? 'new_entry_ids')) u ON c.onboarded_at <= u.recorded_at
                    AND (u.department IS NULL OR btrim(c.provider_department) = btrim(u.department))
                  WHERE c.id = ANY(CAST(:ids AS bigint[]))"""),
        params,
    ).scalars()
    return billed | set(legacy)


def meter(
    conn: Connection,
    result: CheckResult,
    task: TaskRef,
    *,
    work_order_id: str,
    department: str | None,
    event_time: datetime,
) -> dict[str, int]:
    """One usage event for the run: the entries checked that no earlier run billed; a
    re-run re-records what the run metered first. Runs inside the caller's transaction
    (which holds the check's lock). Returns checked and new (the quantity metered)."""
    from govops.ledger.usage import UsageEvent, record_usage, recorded_event

    unknown = sorted(e.dataset for e in result.entries if e.id is None)
    if unknown:
        raise CatalogQualityError(f"entries without their govops.data_catalog id cannot be metered: {unknown[:5]}")
    summary = result.summary()
    checked = summary["entries"]["checked"]
    earlier = recorded_event(conn, task, SERVICE_ITEM, DATA_SOURCE, work_order_id, "new catalog entries")
    if earlier is not None:  # a re-run: exactly the measures of the first time
        quantity, records, attributes = earlier.quantity, earlier.records, earlier.attributes
    else:
        ids = {e.id for e in result.entries}
        new = sorted(ids - billed_entries(conn, ids, excluding=task))
        quantity, records = len(new), checked
        attributes = {"checked": checked, "new": quantity, "new_entry_ids": id_ranges(new),
                      "clean": summary["entries"]["clean"], "with_issues": summary["entries"]["with_issues"],
                      "issues": summary["issues"]}  # fmt: skip
    record_usage(
        conn,
        [UsageEvent(task=task, service_item_code=SERVICE_ITEM, quantity=quantity, unit=UNIT, event_time=event_time,
                    work_order_id=work_order_id, data_source=DATA_SOURCE, records=records, department=department,
                    attributes=attributes)],
    )  # fmt: skip
    return {"checked": checked, "new": quantity}


# --- rectification ------------------------------------------------------------------------


def mark_fixed(target: Engine | Connection, issue_ids: Sequence[int]) -> int:
    """The department says these issues are fixed: open -> fixed, for the issue (entry,
    field, problem) in every run that listed it. All or nothing; returns the rows changed.
    The next check run reverifies or reopens them."""
    ids = sorted(set(issue_ids))
    if not ids:
        raise CatalogQualityError("name the catalog quality issue(s) to mark fixed")
    with _begin(target) as conn:
        conn.execute(text(_LOCK))
        rows = conn.execute(
            text("""SELECT id, dataset, field, problem, state FROM govops.catalog_quality_issue
                     WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id"""),
            {"ids": ids},
        ).all()  # fmt: skip
        errors = [f"no catalog quality issue #{i}" for i in sorted(set(ids) - {r.id for r in rows})]
        for r in rows:
            if r.state != "open":
                after = "a later check run reverifies or reopens it" if r.state == "fixed" else "it is closed"
                errors.append(f"issue #{r.id} ({r.dataset} {r.field} {r.problem}) is {r.state}, not open: {after}")
        if errors:
            raise CatalogQualityError("; ".join(errors))
        return conn.execute(
            text(
                """UPDATE govops.catalog_quality_issue SET state = 'fixed', resolved_at = now()
                    WHERE state = 'open' AND (dataset, field, problem) IN (
                        SELECT dataset, field, problem FROM govops.catalog_quality_issue
                         WHERE id = ANY(CAST(:ids AS bigint[])))"""
            ),
            {"ids": ids},
        ).rowcount


def outstanding(conn: Connection, department: str | None = None) -> list[dict[str, Any]]:
    """The issues not yet reverified, each as its latest run listed it."""
    return [
        dict(r)
        for r in conn.execute(
            text(
                """SELECT * FROM (
                       SELECT DISTINCT ON (dataset, field, problem) id, run_id, dataset, department, field, problem,
                              detail, state, found_at
                         FROM govops.catalog_quality_issue ORDER BY dataset, field, problem, id DESC) latest
                    WHERE state <> 'reverified' AND (CAST(:d AS text) IS NULL OR department = CAST(:d AS text))
                    ORDER BY department, dataset, field, problem"""
            ),
            {"d": department},
        ).mappings()
    ]


# --- the issue lists, summary and page -----------------------------------------------------

COLUMNS: Final = ("问题编号 issue", "资源标识 dataset", "资源名称 name", "提供部门 department", "编目要素 field",
                  "问题代码 problem", "问题 description", "说明 detail", "状态 state")  # fmt: skip


def _file_name(department: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "_", department or NO_DEPARTMENT).strip("._") or "department"


def issue_rows(conn: Connection, run_id: str, rules: Rules) -> list[tuple[Any, ...]]:
    """The run's issues as the lists sent back show them, by department, entry and field."""
    rows = conn.execute(
        text(
            """SELECT i.id, i.dataset, c.name, i.department, i.field, i.problem, i.detail, i.state
                 FROM govops.catalog_quality_issue i LEFT JOIN govops.data_catalog c ON c.dataset = i.dataset
                WHERE i.run_id = :run ORDER BY i.department, i.dataset, i.field, i.problem"""
        ),
        {"run": run_id},
    ).all()
    out = []
    for r in rows:
        base = r.field.split(".", 1)[0].split("[", 1)[0]
        label = rules.labels.get(base, base)
        suffix = r.field[len(base) :]
        part = f" 第{suffix[1:-1]}项" if suffix.startswith("[") else f" {suffix[1:]}" if suffix else ""
        out.append((r.id, r.dataset, r.name, r.department or NO_DEPARTMENT, f"{label}{part} ({r.field})", r.problem,
                    rules.problems[r.problem], r.detail, STATES_ZH[r.state]))  # fmt: skip
    return out


def _write_xlsx(path: Path, rows: list[tuple[Any, ...]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "目录质量问题清单"
    sheet.append(COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEFGHI", (10, 40, 24, 16, 30, 26, 30, 60, 14), strict=True):
        sheet.column_dimensions[letter].width = width
    book.save(path)


def _write_csv(path: Path, rows: list[tuple[Any, ...]]) -> None:
    import csv

    with path.open("w", encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: Excel opens it as UTF-8
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def render(summary: dict[str, Any], rules: Rules, files: dict[str, str]) -> str:
    import html
    from urllib.parse import quote

    e = html.escape
    counts = summary["entries"]
    life = summary["lifecycle"]
    departments = "".join(
        f"<tr><td>{e(d or NO_DEPARTMENT)}</td><td class=n>{v['checked']:,}</td><td class=n>{v['clean']:,}</td>"
        f"<td class=n>{v['with_issues']:,}</td><td class=n>{v['issues']:,}</td>"
        f"<td><a href=\"{quote(files[d])}.xlsx\">XLSX</a> · <a href=\"{quote(files[d])}.csv\">CSV</a></td></tr>"
        for d, v in summary["by_department"].items()
    )
    problems = "".join(
        f"<tr><td>{e(p)}</td><td>{e(rules.problems[p])}</td><td class=n>{v['issues']:,}</td>"
        f"<td class=n>{v['entries']:,}</td></tr>"
        for p, v in sorted(summary["by_problem"].items(), key=lambda kv: -kv[1]["issues"])
    )
    scope = f"提供部门 {summary['department_filter']}" if summary.get("department_filter") else "全部编目"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>数据资产目录质量检查 {e(summary['run_id'])}</title>
<style>body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#f3f3f3}} td.n{{text-align:right}}</style></head><body>
<h1>数据资产目录质量检查 · Catalog quality check</h1>
<p>Run {e(summary['run_id'])} of {e(summary['dag_id'])} at {e(summary['checked_at'])}; {e(scope)};
work order {e(summary['work_order_id'])}.</p>
<table><tr><th>catalog entries 编目</th><th>count</th></tr>
<tr><td>checked 已检查</td><td class=n id=checked>{counts['checked']:,}</td></tr>
<tr><td>clean 无问题</td><td class=n id=clean>{counts['clean']:,}</td></tr>
<tr><td>with issues 有问题</td><td class=n id=with_issues>{counts['with_issues']:,}</td></tr>
<tr><td>new, metered 新增（计量）</td><td class=n id=new>{summary.get("metered", {}).get("new", 0):,}</td></tr>
<tr><td>issues 问题数</td><td class=n id=issues>{summary['issues']:,}</td></tr>
<tr><td>earlier issues reverified 整改复核通过</td><td class=n id=reverified>{life['reverified']:,}</td></tr>
<tr><td>fixed issues reopened 整改未通过（重新打开）</td><td class=n id=reopened>{life['reopened']:,}</td></tr>
</table>
<h2>Per department 按提供部门</h2>
<table><tr><th>department</th><th>checked</th><th>clean</th><th>with issues</th><th>issues</th><th>issue list</th></tr>
{departments}</table>
<h2>Per problem 按问题</h2>
<table><tr><th>code</th><th>问题</th><th>issues</th><th>entries</th></tr>{problems}</table>
</body></html>
"""


def publish(
    target: Engine | Connection, summary: dict[str, Any], lake_root: str, rules: Rules | None = None
) -> dict[str, str]:
    """Write the run's issue list per department (XLSX and CSV, a header-only list for a
    department whose entries are clean), summary.json and report.html to
    <lake>/reports/catalog_quality/<run>/, replacing what an earlier attempt wrote."""
    import tempfile

    from pyarrow import fs as pafs

    from govops.spark.manifest import _safe

    rules = rules or load_rules()
    if isinstance(target, Connection):
        rows = issue_rows(target, summary["run_id"], rules)
    else:
        with target.connect() as conn:
            rows = issue_rows(conn, summary["run_id"], rules)
    per_department: dict[str, list[tuple[Any, ...]]] = {d: [] for d in summary["by_department"]}
    for row in rows:
        per_department.setdefault("" if row[3] == NO_DEPARTMENT else row[3], []).append(row)
    files: dict[str, str] = {}
    for department in per_department:
        name, n = _file_name(department), 2
        while name in files.values():  # two departments that differ only in unsafe characters
            name, n = f"{_file_name(department)}_{n}", n + 1
        files[department] = name
    folder = f"{lake_root.rstrip('/')}/{REPORTS_DIR}/{_safe(summary['run_id'])}"
    target, base = pafs.FileSystem.from_uri(folder)
    target.create_dir(base, recursive=True)
    target.delete_dir_contents(base)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        for department, issues in per_department.items():
            _write_xlsx(local / f"{files[department]}.xlsx", issues)
            _write_csv(local / f"{files[department]}.csv", issues)
        (local / "summary.json").write_text(
            json.dumps({**summary, "files": files}, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        (local / "report.html").write_text(render(summary, rules, files), encoding="utf-8")
        for item in sorted(local.iterdir()):
            pafs.copy_files(str(item), f"{base}/{item.name}", destination_filesystem=target)
            written[item.name] = f"{folder}/{item.name}"
    return written


# --- command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """python -m govops.quality.catalog_checks fixed ID... | outstanding [--department D]"""
    import argparse
    import sys

    from sqlalchemy import create_engine

    parser = argparse.ArgumentParser(prog="python -m govops.quality.catalog_checks", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fixed = commands.add_parser("fixed", help="a department says these issues are fixed (open -> fixed)")
    fixed.add_argument("issue_ids", nargs="+", type=int)
    listing = commands.add_parser("outstanding", help="the issues not yet reverified, latest run first")
    listing.add_argument("--department")
    args = parser.parse_args(argv)
    engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
    try:
        if args.command == "fixed":
            print(f"{mark_fixed(engine, args.issue_ids)} issue row(s) marked fixed; the next check run verifies them")
        else:
            with engine.connect() as conn:
                for r in outstanding(conn, args.department):
                    print("\t".join(str(r[k]) for k in ("id", "state", "department", "dataset", "field", "problem")))
    except CatalogQualityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
