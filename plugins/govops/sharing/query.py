"""A caller's query, typed and checked against its set's spec, and its SQL for DuckDB.

Parameters (every other name is refused, naming it):

- ``<field>`` or ``<field>__<op>``: a filter on a whitelisted field; ``op`` one of the
  spec's operators for it (``in`` takes a comma-separated list, ``null`` true / false);
  the value is parsed as the field's type and bound, never spliced into SQL.
- ``fields``: a comma-separated selection; ``sort``: comma-separated sort fields,
  ``-field`` descending (the set's key is always the last sort key, so the order is total).
- ``limit`` (pages: up to the set's max_page_size), ``cursor`` (the ``next_cursor`` of the
  page before), ``total=true`` (count the matching rows too).

Pages are keyset pages: the cursor holds the last row's sort values, the dataset version
and a hash of the filters and sort, signed (HMAC-SHA256), so a changed cursor is refused
and page 10,000 is one range scan like page 1. Sensitive fields come out through their
masking rule unless one of the caller's roles is in ``clear_for``; they can be filtered on
only by those roles (a filter on a masked value would answer yes / no about the clear one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from govops.sharing.spec import ApiSetSpec
from govops.sharing.versions import Version

RESERVED = ("fields", "sort", "limit", "cursor", "total", "bom")
_INT = re.compile(r"-?\d{1,18}")
_MAX_TEXT = 1000
_MAX_IN = 500


class ApiError(Exception):
    """A refusal with its HTTP status; ``parameter`` names the query parameter at fault."""

    def __init__(self, status: int, code: str, detail: str, parameter: str | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(detail)
        self.status, self.code, self.detail, self.parameter = status, code, detail, parameter
        self.headers = headers or {}


def bad(parameter: str, detail: str) -> ApiError:
    return ApiError(400, "BAD_PARAMETER", f"parameter {parameter!r}: {detail}", parameter)


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: Any


@dataclass
class Query:
    fields: list[str]
    filters: list[Filter]
    sort: list[tuple[str, bool]]  # (field, descending); the key last
    limit: int | None
    after: list[Any] | None = None  # the cursor's sort values
    total: bool = False
    bom: bool = False
    masked: set[str] = field(default_factory=set)

    def binding(self, set_name: str) -> str:
        """What a cursor belongs to: the set, its filters and its sort."""
        body = json.dumps([set_name, [[f.field, f.op, _jsonable(f.value)] for f in self.filters], self.sort],
                          sort_keys=True, ensure_ascii=False)  # fmt: skip
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def parse_value(kind: str, raw: str, parameter: str) -> Any:
    """A parameter's text as the field's type; 400 naming the parameter when it is not one."""
    if kind == "integer":
        if not _INT.fullmatch(raw):
            raise bad(parameter, f"{raw[:40]!r} is not an integer")
        return int(raw)
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise bad(parameter, f"{raw[:40]!r} is not a number") from None
        if not math.isfinite(number):
            raise bad(parameter, "not a finite number")
        return number
    if kind == "date":
        try:
            return date.fromisoformat(raw) if len(raw) == 10 else _fail()
        except ValueError:
            raise bad(parameter, f"{raw[:40]!r} is not a date (YYYY-MM-DD)") from None
    if kind == "timestamp":
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise bad(parameter, f"{raw[:40]!r} is not a timestamp (ISO 8601)") from None
        if moment.tzinfo is None:
            from govops.ledger.usage import contract_timezone

            moment = moment.replace(tzinfo=contract_timezone())
        return moment.astimezone(UTC)
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise bad(parameter, f"{raw[:40]!r} is not true or false")
        return raw == "true"
    if len(raw) > _MAX_TEXT:
        raise bad(parameter, f"longer than {_MAX_TEXT} characters")
    return raw


def _fail() -> Any:
    raise ValueError


class CursorCodec:
    """Opaque, tamper-evident cursors: base64url(JSON) '.' base64url(HMAC-SHA256[:16])."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, version: str, binding: str, values: list[Any]) -> str:
        body = json.dumps([version, binding, _jsonable(values)], separators=(",", ":"), ensure_ascii=False).encode()
        b64 = base64.urlsafe_b64encode
        return f"{b64(body).decode().rstrip('=')}.{b64(self._tag(body)).decode().rstrip('=')}"

    def decode(self, cursor: str) -> tuple[str, str, list[Any]]:
        try:
            head, _, tag = cursor.partition(".")
            body = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
            given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
        except (ValueError, TypeError):
            raise bad("cursor", "not a cursor of this server") from None
        if len(cursor) > 4096 or not hmac.compare_digest(given, self._tag(body)):
            raise bad("cursor", "not a cursor of this server (altered or from another query)")
        version, binding, values = json.loads(body)
        return version, binding, values


def parse(spec: ApiSetSpec, params: list[tuple[str, str]], roles: set[str], *, page: bool,
          codec: CursorCodec, version: Version | None = None) -> Query:  # fmt: skip
    """The query of ``params`` (in order, repeated names refused); ``page``: a paged
    interface (limit up to the max), else an export (no limit by default)."""
    seen: set[str] = set()
    for name, _ in params:
        if name in seen:
            raise bad(name, "given more than once")
        seen.add(name)
    given = dict(params)
    masked = {f for f, m in spec.masking.items() if not roles & set(m.clear_for)}

    fields = list(spec.fields)
    if "fields" in given:
        fields = [f.strip() for f in given["fields"].split(",") if f.strip()]
        for f in fields:
            if f not in spec.fields:
                raise bad("fields", f"{f[:40]!r} is not a field of set {spec.set}")
        if not fields or len(set(fields)) != len(fields):
            raise bad("fields", "a comma-separated list of distinct fields")

    sortable = {spec.key, *spec.sort}
    sort: list[tuple[str, bool]] = []
    for item in given["sort"].split(",") if "sort" in given else spec.default_sort:
        item = item.strip()
        desc = item.startswith("-")
        name = item[1:] if desc else item
        if name not in sortable:
            raise bad("sort", f"{name[:40]!r} is not a sort field of set {spec.set} ({', '.join(sorted(sortable))})")
        if any(name == s for s, _ in sort):
            raise bad("sort", f"{name} given twice")
        sort.append((name, desc))
    if not any(s == spec.key for s, _ in sort):
        sort.append((spec.key, False))
    while sort[-1][0] != spec.key:  # the key is unique: what follows it never decides
        sort.pop()

    limit: int | None = spec.default_page_size if page else None
    if "limit" in given:
        if not _INT.fullmatch(given["limit"]) or int(given["limit"]) < 1:
            raise bad("limit", "a whole number >= 1")
        limit = int(given["limit"])
        if page and limit > spec.max_page_size:
            raise bad("limit", f"{limit} is above the maximum page size {spec.max_page_size}")

    total = False
    if "total" in given:
        if given["total"] not in ("true", "false"):
            raise bad("total", "true or false")
        total = given["total"] == "true"
    bom = False
    if "bom" in given:
        if given["bom"] not in ("true", "false"):
            raise bad("bom", "true or false")
        bom = given["bom"] == "true"

    filters = []
    for name, raw in params:
        if name in RESERVED:
            continue
        fname, _, op = name.partition("__")
        op = op or "eq"
        if fname not in spec.fields:
            raise bad(name, f"unknown parameter or field of set {spec.set}")
        if fname not in spec.filters:
            raise bad(name, f"{fname} is not a filter of set {spec.set} (filters: {', '.join(spec.filters) or 'none'})")
        if op not in spec.filters[fname]:
            raise bad(name, f"operator {op[:20]!r} is not allowed on {fname} ({', '.join(spec.filters[fname])})")
        if fname in masked:
            raise ApiError(403, "FIELD_MASKED", f"parameter {name!r}: {fname} is masked for your roles and cannot "
                                                f"be filtered on", name)  # fmt: skip
        kind = spec.fields[fname].type
        if op == "null":
            value: Any = parse_value("boolean", raw, name)
        elif op == "in":
            parts = raw.split(",")
            if len(parts) > _MAX_IN:
                raise bad(name, f"more than {_MAX_IN} values")
            value = [parse_value(kind, p, name) for p in parts]
        else:
            value = parse_value(kind, raw, name)
        filters.append(Filter(fname, op, value))

    query = Query(fields, filters, sort, limit, total=total, bom=bom, masked=masked)
    if "cursor" in given:
        cursor_version, binding, values = codec.decode(given["cursor"])
        if binding != query.binding(spec.set) or len(values) != len(sort):
            raise bad("cursor", "belongs to another query (other filters or sort)")
        if version is not None and cursor_version != version.version_id:
            raise ApiError(409, "CURSOR_STALE", "parameter 'cursor': the dataset was republished since this cursor "
                                                "was issued; start again without a cursor", "cursor")  # fmt: skip
        query.after = [_from_cursor(spec.fields[f].type, v) for (f, _), v in zip(sort, values, strict=True)]
    return query


def _from_cursor(kind: str, value: Any) -> Any:
    if value is None or kind in ("boolean", "integer", "string") or (kind == "number" and isinstance(value, float)):
        return value
    return parse_value(kind, str(value), "cursor")


# --- SQL ---


def q(name: str) -> str:
    """A whitelisted field name as an SQL identifier (names are [a-z][a-z0-9_]*: no quoting issue)."""
    return f'"{name}"'


def mask_sql(column: str, rule: dict[str, Any], kind: str) -> str:
    """The masking rule of the security services as a DuckDB expression (text out)."""
    from govops.security.masking import parse_rule

    r = parse_rule(column, rule, column)
    c, text = q(column), f"CAST({q(column)} AS VARCHAR)"
    if r.rule == "nullify":
        return "CAST(NULL AS VARCHAR)"
    if r.rule == "partial":
        first, last = int(r.params["keep_first"]), int(r.params["keep_last"])
        mask = str(r.params["mask_char"]).replace("'", "''")
        n = f"length({text})"
        # A value no longer than what is kept is masked whole (as the masking job does).
        return (f"CASE WHEN {n} > {first + last} THEN concat(left({text}, {first}), repeat('{mask}', {n} - "
                f"{first + last}), right({text}, {last})) ELSE repeat('{mask}', {n}) END")  # fmt: skip
    to = r.params["to"]
    as_date = c if kind in ("date", "timestamp") else f"TRY_CAST({text} AS DATE)"
    if to == "year":
        return f"CAST(year({as_date}) AS VARCHAR)"
    if to == "month":
        return f"strftime({as_date}, '%Y-%m')"
    size = int(r.params["size"])
    low = f"CAST(floor(TRY_CAST({c} AS DOUBLE) / {size}) * {size} AS BIGINT)"
    return f"concat(CAST({low} AS VARCHAR), '-', CAST({low} + {size - 1} AS VARCHAR))"


def _filter_sql(f: Filter, params: list[Any]) -> str:
    c = q(f.field)
    if f.op == "null":
        return f"{c} IS {'' if f.value else 'NOT '}NULL"
    if f.op == "in":  # a list of markers, not list_contains(?, c): an index on c can answer it
        params.extend(f.value)
        return f"{c} IN ({', '.join('?' * len(f.value))})"
    if f.op == "prefix":
        params.append(f.value)
        return f"starts_with({c}, ?)"
    if f.op == "contains":
        params.append(f.value)
        return f"contains({c}, ?)"
    params.append(f.value)
    return f"{c} {dict(eq='=', ne='<>', gt='>', gte='>=', lt='<', lte='<=')[f.op]} ?"


def _keyset_sql(sort: list[tuple[str, bool]], after: list[Any], key: str, params: list[Any]) -> str:
    """Rows strictly after ``after`` in the order of ``sort`` (NULLs last in every column)."""
    components: list[tuple[str, bool, Any]] = []  # (expression, descending, value)
    for (name, desc), value in zip(sort, after, strict=True):
        if name != key:
            components.append((f"({q(name)} IS NULL)", False, value is None))
        if value is not None or name == key:
            components.append((q(name), desc, value))
    ors = []
    for i, (expr, desc, value) in enumerate(components):
        if value is None:
            continue
        parts = []
        for e, _, v in components[:i]:
            parts.append(f"{e} = ?")
            params.append(v)
        if isinstance(value, bool) and expr.endswith("IS NULL)"):
            parts.append(f"{expr} > ?" if not value else "FALSE")  # nothing sorts after NULL
        else:
            parts.append(f"{expr} {'<' if desc else '>'} ?")
        if parts[-1] != "FALSE":
            params.append(value)
        ors.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(ors or ["FALSE"]) + ")"


def order_sql(sort: list[tuple[str, bool]], key: str) -> str:
    parts = []
    for name, desc in sort:
        if name != key:
            parts.append(f"({q(name)} IS NULL)")
        parts.append(f"{q(name)}{' DESC' if desc else ''}")
    return ", ".join(parts)


def select_sql(spec: ApiSetSpec, query: Query, source: str, *, ordered: bool = True) -> tuple[str, list[Any], int]:
    """(SQL, its parameters after the source's, number of output fields before the sort values);
    ``ordered`` False: no ORDER BY (the caller orders the rows itself)."""
    cols = [mask_sql(f, spec.masking[f].rule, spec.fields[f].type) + f" AS {q(f)}" if f in query.masked else q(f)
            for f in query.fields]  # fmt: skip
    cols += [f'{q(name)} AS "__sort{i}"' for i, (name, _) in enumerate(query.sort)]
    params: list[Any] = []
    where = [_filter_sql(f, params) for f in query.filters]
    if query.after is not None:
        where.append(_keyset_sql(query.sort, query.after, spec.key, params))
    sql = f"SELECT {', '.join(cols)} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if ordered:
        sql += " ORDER BY " + order_sql(query.sort, spec.key)
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit + 1)  # one more: is there a next page
    return sql, params, len(query.fields)


def count_sql(query: Query, source: str) -> tuple[str, list[Any]]:
    params: list[Any] = []
    where = [_filter_sql(f, params) for f in query.filters]
    return f"SELECT count(*) FROM {source}" + (" WHERE " + " AND ".join(where) if where else ""), params
