"""A set's OpenAPI document and its interface documentation page (接口文档).

The routes of a set and their OpenAPI parameters are declared here once (:func:`add_routes`):
the server adds them with its handler, :func:`openapi_document` with none, so what is
documented is what the server serves. The
page is rendered here, on the server, from that document: plain HTML with an inline style,
no script, nothing loaded from elsewhere (served with a ``Content-Security-Policy`` that
forbids it), listing per interface the protocol, method, address and parameters (name,
type, format, value range, description), as seed 000 asks of the interface documentation.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from govops.sharing.spec import ApiSetSpec

APP_TITLE = "govops 数据共享/开放接口"
INTERFACES = {  # (resource, format) -> interface name in the call records
    ("sample", "json"): "sample_json", ("sample", "xml"): "sample_xml",
    ("rows", "json"): "query_json", ("rows", "xml"): "query_xml",
    ("rows", "csv"): "export_csv", ("rows", "ndjson"): "stream_ndjson",
}  # fmt: skip
_TYPES = {"integer": ("integer", None), "number": ("number", None), "string": ("string", None),
          "date": ("string", "date"), "timestamp": ("string", "date-time"), "boolean": ("boolean", None)}  # fmt: skip
Handler = Callable[[Any, str, str, str], Any]  # async (request, set, resource, format) -> Response

# No script, no remote anything: the page is readable offline and in a locked-down browser.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
TYPE_ZH = {"integer": "整数", "number": "数值", "string": "字符串", "boolean": "布尔"}
FORMAT_ZH = {"date": "日期 YYYY-MM-DD", "date-time": "时间 ISO 8601"}
INTERFACE_ZH = {
    "sample.json": "样例数据 (JSON)", "sample.xml": "样例数据 (XML)", "rows.json": "查询 (JSON, 分页)",
    "rows.xml": "查询 (XML, 分页)", "rows.csv": "导出 (CSV)", "rows.ndjson": "流式 (NDJSON)",
}  # fmt: skip


def parameters(spec: ApiSetSpec, resource: str, fmt: str) -> list[dict[str, Any]]:
    """The OpenAPI parameters of one interface, from the spec."""
    if resource == "sample":
        return []
    sortable = ", ".join(sorted({spec.key, *spec.sort}))
    limit: dict[str, Any] = {"type": "integer", "minimum": 1}
    if fmt in ("json", "xml"):
        limit["maximum"] = spec.max_page_size
    out: list[dict[str, Any]] = [
        {"name": "fields", "in": "query", "schema": {"type": "string"},
         "description": f"comma-separated, of: {', '.join(spec.fields)}"},
        {"name": "sort", "in": "query", "schema": {"type": "string"},
         "description": f"comma-separated, -field descending: {sortable}"},
        {"name": "limit", "in": "query", "schema": limit},
        {"name": "cursor", "in": "query", "schema": {"type": "string"},
         "description": "next_cursor of the page before"},
    ]  # fmt: skip
    if fmt in ("json", "xml"):
        out.append({"name": "total", "in": "query", "schema": {"type": "boolean"}})
    if fmt == "csv":
        out.append({"name": "bom", "in": "query", "schema": {"type": "boolean"}, "description": "UTF-8 BOM for Excel"})
    for name, ops in spec.filters.items():
        kind, fmt_ = _TYPES[spec.fields[name].type]
        for op in ops:
            schema: dict[str, Any] = {"type": "boolean"} if op == "null" else {"type": "string" if op == "in" else kind}
            if fmt_ and op not in ("null", "in"):
                schema["format"] = fmt_
            if schema["type"] == "string" and op != "in" and "format" not in schema:
                schema["maxLength"] = 1000
            out.append({"name": name if op == "eq" else f"{name}__{op}", "in": "query", "schema": schema,
                        "description": f"{spec.fields[name].description} ({op})".strip()})  # fmt: skip
    return out


def add_routes(app: Any, handler: Handler | None, spec: ApiSetSpec) -> None:
    """The set's six interfaces on ``app`` (a FastAPI app); ``handler`` None: documentation only."""

    def make(resource: str, fmt: str) -> Any:
        async def route(request: Request) -> Response:
            if handler is None:
                return Response(status_code=501)
            return await handler(request, spec.set, resource, fmt)  # type: ignore[no-any-return]

        route.__name__ = f"{spec.set}_{resource}_{fmt}"
        return route

    for resource, fmt in INTERFACES:
        app.add_api_route(
            f"/api/sets/{spec.set}/{resource}.{fmt}", make(resource, fmt), methods=["GET"], tags=[spec.set],
            summary=f"{spec.title} {INTERFACES[(resource, fmt)]}", response_class=Response,
            openapi_extra={"parameters": parameters(spec, resource, fmt)},
        )  # fmt: skip


def openapi_document(specs: list[ApiSetSpec]) -> dict[str, Any]:
    """The OpenAPI document of ``specs``' interfaces, as the server publishes them at /openapi.json."""
    from fastapi import FastAPI

    app = FastAPI(title=APP_TITLE, version="1", docs_url=None, redoc_url=None)
    for spec in specs:
        add_routes(app, None, spec)
    return app.openapi()


def set_paths(document: dict[str, Any], set_name: str) -> dict[str, Any]:
    """The paths of one set in an OpenAPI document."""
    prefix = f"/api/sets/{set_name}/"
    return {p: v for p, v in document.get("paths", {}).items() if p.startswith(prefix)}


def document_sha256(paths: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(paths, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def value_range(schema: dict[str, Any], description: str = "") -> str:
    """A parameter's allowed values in words (the test report's 取值范围 too)."""
    parts = []
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"{schema.get('minimum', '')} .. {schema.get('maximum', '')}".strip())
    if schema.get("type") == "boolean":
        parts.append("true | false")
    if "maxLength" in schema:
        parts.append(f"最长 {schema['maxLength']} 字符")
    if "enum" in schema:
        parts.append(" | ".join(str(v) for v in schema["enum"]))
    if description.endswith("(in)"):
        parts.append("逗号分隔, 最多 500 个")
    return "; ".join(parts)


def _type(schema: dict[str, Any]) -> str:
    kind = TYPE_ZH.get(schema.get("type", ""), schema.get("type", ""))
    return f"{kind} ({FORMAT_ZH[schema['format']]})" if schema.get("format") in FORMAT_ZH else kind


def render_page(document: dict[str, Any], specs: list[ApiSetSpec], base_url: str = "") -> str:
    """The interface documentation of ``specs`` as one self-contained HTML page."""
    e = html.escape
    sections = []
    for spec in specs:
        rows = []
        for path, item in set_paths(document, spec.set).items():
            op = item["get"]
            params = "".join(
                f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td><td>{e(_type(p['schema']))}</td>"
                f"<td>{e(value_range(p['schema'], p.get('description', '')))}</td>"
                f"<td>{e(p.get('description', ''))}</td></tr>"
                for p in op.get("parameters", [])
            )  # fmt: skip
            table = (
                f"<table><tr><th>参数名</th><th>位置</th><th>类型</th><th>取值范围</th><th>说明</th></tr>{params}</table>"
                if params
                else "<p>无参数。</p>"
            )
            name = path.rsplit("/", 1)[1]
            rows.append(
                f"<h3>{e(INTERFACE_ZH.get(name, name))}</h3><p>协议 HTTP(S) · 方法 <b>GET</b> · 地址 "
                f"<code>{e(base_url)}{e(path)}</code></p>{table}"
            )
        fields = "".join(
            f"<tr><td><code>{e(n)}</code></td><td>{e(f.type)}</td><td>{e(f.description)}</td>"
            f"<td>{e(', '.join(spec.filters.get(n, [])))}</td>"
            f"<td>{'脱敏 (' + e(str(spec.masking[n].rule.get('rule'))) + ')' if n in spec.masking else ''}</td></tr>"
            for n, f in spec.fields.items()
        )  # fmt: skip
        sla = spec.sla
        sections.append(
            f'<section id="{e(spec.set)}"><h2>{e(spec.title)} <code>{e(spec.set)}</code></h2>'
            f"<p>{e(spec.description)}</p><p>开放属性 {e(spec.open_type)} · 每页最多 {spec.max_page_size} 条 · "
            f"限流 {sla.rate_per_second:g} 次/秒 · 月配额 {sla.quota_per_month} 次</p>"
            f"<h3>信息项</h3><table><tr><th>字段</th><th>类型</th><th>说明</th><th>可用筛选</th><th>敏感</th></tr>"
            f"{fields}</table>{''.join(rows)}</section>"
        )
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>接口文档 · {e(document["info"]["title"])}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #bbb;padding:4px 8px;text-align:left;font-size:14px}}th{{background:#eef2f7}}
code{{background:#f4f4f4;padding:0 3px}}section{{border-top:2px solid #3b7dd8;margin-top:2em}}</style></head>
<body><h1>接口文档 · {e(document["info"]["title"])}</h1>
<p>认证: <code>Authorization: Bearer &lt;key&gt;</code>, 或 <code>X-App-Key</code> + <code>X-Timestamp</code> +
<code>X-Signature</code> (HMAC-SHA256)。错误为 problem+json, <code>parameter</code> 指明出错的参数。
分页: 以上一页的 <code>next_cursor</code> 作为 <code>cursor</code>。OpenAPI: <code>/openapi.json</code>。</p>
{"".join(sections)}</body></html>
"""
