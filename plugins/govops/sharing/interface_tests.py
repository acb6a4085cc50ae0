"""The interface tests of a set (接口测试) and their report: real HTTP calls to the running server.

The cases come from the set's OpenAPI document (every parameter of every interface: a valid
value, the boundaries of its range and a value of the wrong type) and from the spec (its
``examples``, a second page through ``next_cursor``, and a masked field the test caller may
not filter on). Each case says which status it expects; a refusal must be a problem-details
body naming the parameter, with nothing of the server's internals. The report
(``report.html``, ``report.xlsx``) lists per case the parameter's name, type and value range,
the value sent, the expected and actual status, and the result.

No ``schemathesis``: its property-based runs take minutes per set and it would add a
dependency; these cases are few, cover every parameter and know the right answer.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from govops.sharing.docs import set_paths, value_range
from govops.sharing.spec import ApiSetSpec

# Words that would mean an error body leaks the server's internals.
INTERNALS = ("Traceback", "duckdb", "SELECT ", "sqlalchemy", "psycopg", 'File "')
_VALID = {"integer": "1", "number": "1.5", "string": "x", "boolean": "true"}
_VALID_FORMAT = {"date": "2020-01-01", "date-time": "2020-01-01T00:00:00+08:00"}
_INVALID = {"integer": "abc", "number": "abc", "boolean": "maybe"}
_INVALID_FORMAT = {"date": "2020-13-45", "date-time": "not-a-time"}


@dataclass
class Case:
    interface: str  # the path
    parameter: str  # "" for a call without parameters
    location: str
    type: str
    value_range: str
    kind: str  # 有效值 / 边界值 / 无效值 / 脱敏 / 示例 / 翻页 / 无参数
    params: dict[str, str]
    expected: int
    status: int = 0
    passed: bool = False
    detail: str = ""
    latency_ms: float = 0.0


def _type(schema: dict[str, Any]) -> str:
    return schema.get("type", "") + (f" ({schema['format']})" if "format" in schema else "")


def _values(p: dict[str, Any], spec: ApiSetSpec) -> Iterator[tuple[str, str, int]]:
    """(kind, value, expected status) for one parameter."""
    name, schema = p["name"], p["schema"]
    kind = schema.get("type", "string")
    if name == "limit":
        yield "边界值", "1", 200
        yield "无效值", "0", 400
        if "maximum" in schema:
            yield "边界值", str(schema["maximum"]), 200
            yield "无效值", str(schema["maximum"] + 1), 400
        return
    if name == "fields":
        yield "有效值", next(iter(spec.fields)), 200
        yield "无效值", "no_such_field", 400
        return
    if name == "sort":
        yield "有效值", f"-{spec.key}", 200
        yield "无效值", "no_such_field", 400
        return
    if name == "cursor":
        yield "无效值", "bogus.cursor", 400
        return
    field, _, op = name.partition("__")
    if field in spec.masking:  # the test caller has no role: a masked field cannot be filtered on
        yield "脱敏", _VALID_FORMAT.get(schema.get("format", ""), _VALID.get(kind, "x")), 403
        return
    if op == "in":
        element = spec.fields[field].type
        yield "有效值", "1,2" if element == "integer" else "a,b", 200
        yield "无效值", "1,x" if element == "integer" else ",".join(["a"] * 501), 400
        return
    if "format" in schema:
        yield "有效值", _VALID_FORMAT[schema["format"]], 200
        yield "无效值", _INVALID_FORMAT[schema["format"]], 400
        return
    yield "有效值", _VALID.get(kind, "x"), 200
    if "maxLength" in schema:
        yield "边界值", "x" * schema["maxLength"], 200
        yield "无效值", "x" * (schema["maxLength"] + 1), 400
    else:
        yield "无效值", _INVALID.get(kind, "abc"), 400


def cases(document: dict[str, Any], spec: ApiSetSpec) -> list[Case]:
    """Every case of one set, from its OpenAPI document and its spec."""
    out: list[Case] = []
    paths = set_paths(document, spec.set)
    for path, item in paths.items():
        parameters = item["get"].get("parameters", [])
        export = path.endswith((".csv", ".ndjson"))
        base = {"limit": "5"} if export else {}  # an export without a limit sends the whole set
        out.append(Case(path, "", "", "", "", "无参数", dict(base), 200))
        for p in parameters:
            # Filters, fields, sort and cursor behave alike on every rows.* interface: checked
            # on the JSON page; each interface gets its own limit, total and bom.
            if not path.endswith("rows.json") and p["name"] not in ("limit", "total", "bom"):
                continue
            for kind, value, expected in _values(p, spec):
                params = {**base, p["name"]: value}
                scope = value_range(p["schema"], p.get("description", ""))
                out.append(Case(path, p["name"], p["in"], _type(p["schema"]), scope, kind, params, expected))
        if parameters:
            out.append(Case(path, "no_such_parameter", "query", "", "", "无效值", {**base, "no_such_parameter": "1"},
                            400))  # fmt: skip
    rows = f"/api/sets/{spec.set}/rows.json"
    for example in spec.examples:
        out.append(Case(rows, ",".join(example), "query", "", "", "示例", dict(example), 200))
    out.append(Case(rows, "cursor", "query", "string", "上一页的 next_cursor", "翻页", {"limit": "1"}, 200))
    return out


def run(base_url: str, key: str, case_list: list[Case], *, timeout: float = 60) -> list[Case]:
    """Call every case; a 429 (the set's rate limit) waits its Retry-After and tries again."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
        for case in case_list:
            if case.kind == "翻页":
                _page_two(client, case)
                continue
            response = _get(client, case)
            _judge(case, response)
    return case_list


def _get(client: Any, case: Case, params: dict[str, str] | None = None) -> Any:
    for _ in range(20):
        started = time.perf_counter()
        response = client.get(case.interface, params=params or case.params)
        case.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def _judge(case: Case, response: Any) -> None:
    case.status = response.status_code
    problems = []
    if case.status != case.expected:
        problems.append(f"expected {case.expected}")
    if case.status >= 400:
        body = response.text
        if any(word in body for word in INTERNALS):
            problems.append("the error body shows the server's internals")
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if case.parameter and case.kind != "示例" and problem.get("parameter") != case.parameter:
            problems.append(f"the refusal names parameter {problem.get('parameter')!r}")
        case.detail = str(problem.get("detail", ""))[:200]
    elif "X-Request-Id" not in response.headers:
        problems.append("no X-Request-Id")
    else:
        case.detail = f"{len(response.content)} bytes, version {response.headers.get('X-Dataset-Version', '')}"
    if case.parameter == "bom" and case.status == 200 and not response.content.startswith(b"\xef\xbb\xbf"):
        problems.append("bom=true gave no BOM")
    if problems:
        case.detail = "; ".join(problems) + (f" ({case.detail})" if case.detail else "")
    case.passed = not problems


def _page_two(client: Any, case: Case) -> None:
    first = _get(client, case)
    cursor = first.json().get("next_cursor") if first.status_code == 200 else None
    if cursor is None:
        case.status, case.passed = first.status_code, first.status_code == 200
        case.detail = "one page only: nothing to follow" if case.passed else "the first page failed"
        return
    second = _get(client, case, {"limit": "1", "cursor": cursor})
    _judge(case, second)
    if case.passed and second.json()["rows"] == first.json()["rows"]:
        case.passed, case.detail = False, "the second page repeats the first"
    case.params = {"limit": "1", "cursor": cursor[:24] + "…"}


# --- the report ---

HEADERS = {
    "interface": "接口地址", "parameter": "参数名", "location": "参数位置", "type": "参数类型",
    "value_range": "取值范围", "kind": "用例类型", "params": "请求参数", "expected": "预期状态码",
    "status": "实际状态码", "passed": "结果", "detail": "说明", "latency_ms": "耗时(ms)",
}  # fmt: skip


def _cells(case: Case) -> list[Any]:
    row = asdict(case)
    row["params"] = "&".join(f"{k}={v if len(v) <= 40 else v[:37] + '…'}" for k, v in case.params.items())
    row["passed"] = "通过" if case.passed else "不通过"
    return [row[k] for k in HEADERS]


def summary(case_list: list[Case]) -> dict[str, Any]:
    passed = sum(c.passed for c in case_list)
    return {"total": len(case_list), "passed": passed, "failed": len(case_list) - passed,
            "parameters": len({(c.interface, c.parameter) for c in case_list if c.parameter})}  # fmt: skip


def render_html(spec: ApiSetSpec, case_list: list[Case], meta: dict[str, Any]) -> str:
    e = html.escape
    s = summary(case_list)
    head = "".join(f"<th>{e(h)}</th>" for h in HEADERS.values())
    body = "".join(
        f'<tr class="{"ok" if c.passed else "ko"}">' + "".join(f"<td>{e(str(v))}</td>" for v in _cells(c)) + "</tr>"
        for c in case_list
    )
    facts = " · ".join(f"{e(k)} <code>{e(str(v))}</code>" for k, v in meta.items())
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>接口测试报告 · {e(spec.title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #bbb;padding:3px 6px;font-size:13px;text-align:left}}th{{background:#eef2f7}}
tr.ko td{{background:#fde2e2}}</style></head>
<body><h1>接口测试报告 · {e(spec.title)} (<code>{e(spec.set)}</code>)</h1><p>{facts}</p>
<p>用例 {s["total"]} 个, 通过 {s["passed"]} 个, 不通过 {s["failed"]} 个; 覆盖参数 {s["parameters"]} 个。</p>
<table><tr>{head}</tr>{body}</table></body></html>
"""


def write_xlsx(path: Path, spec: ApiSetSpec, case_list: list[Case], meta: dict[str, Any]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "接口测试"
    sheet.append(list(HEADERS.values()))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for case in case_list:
        sheet.append(_cells(case))
    sheet.freeze_panes = "A2"
    info = book.create_sheet("概要")
    for key, value in {"接口集": spec.set, "名称": spec.title, **meta, **summary(case_list)}.items():
        info.append([key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value])
    book.save(path)
