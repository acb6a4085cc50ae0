"""The interface-set spec: one YAML file per set in ``include/apis/<set>.yaml`` (items 12/13).

Validated with pydantic like the pipeline specs, so an error names the file and the field
(``SPEC_INVALID: include/apis/x.yaml: fields.id.type: Input should be 'integer', …``). The
masking rules are the security services' (``govops.security.masking.parse_rule``); the
server applies the ones that need no key (``partial``, ``generalize`` to year / month /
bucket, ``nullify``): keyed rules belong in the masked copy of the zone (item 20).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Engine

from govops import settings, specs
from govops.specs import SpecError

APIS_DIR = "include/apis"
ZONES = ("sharing", "open")
OPEN_TYPES = ("无条件开放", "有条件开放", "共享")
FieldType = Literal["integer", "number", "string", "date", "timestamp", "boolean"]
# Operators per field type; `in` takes a comma-separated list, `null` takes true / false.
OPERATORS: dict[str, tuple[str, ...]] = {
    "integer": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "null"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "null"),
    "string": ("eq", "ne", "in", "prefix", "contains", "null"),
    "date": ("eq", "ne", "gt", "gte", "lt", "lte", "null"),
    "timestamp": ("eq", "ne", "gt", "gte", "lt", "lte", "null"),
    "boolean": ("eq", "null"),
}
SERVER_RULES = ("partial", "generalize", "nullify")  # the masking rules the server applies itself
_NAME = re.compile(r"[a-z][a-z0-9_]{1,62}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    type: FieldType
    description: str = ""


class MaskSpec(_Strict):
    """A sensitive field: ``rule`` (a masking rule of include/security/masking.yaml) for every
    role that is not in ``clear_for``."""

    rule: dict[str, Any]
    clear_for: list[str] = []


class Sla(_Strict):
    rate_per_second: Annotated[float, Field(gt=0)]
    burst: Annotated[int, Field(ge=1)] | None = None  # default: the rate, at least 1
    quota_per_month: Annotated[int, Field(ge=1)]


class SlaSpec(Sla):
    by_role: dict[str, Sla] = {}  # a caller with one of these roles gets that tier (the highest quota)


class ApiSetSpec(_Strict):
    set: str
    title: str
    description: str = ""
    dataset: str  # <zone>/<path> in the lake, zone sharing or open
    catalog: str  # the catalog entry (govops.data_catalog.dataset) the set publishes
    open_type: Literal["无条件开放", "有条件开放", "共享"]
    key: str  # a unique, never-null field: the last sort key of every query
    fields: dict[str, FieldSpec]
    filters: dict[str, list[str]] = {}  # field -> operators allowed
    sort: list[str] = []  # fields a caller may sort by (the key always)
    default_sort: list[str] = []  # default: the key
    max_page_size: Annotated[int, Field(ge=1, le=10_000)] = 1000
    default_page_size: Annotated[int, Field(ge=1)] = 100
    sample_rows: Annotated[int, Field(ge=1, le=100)] = 10
    masking: dict[str, MaskSpec] = {}
    sla: SlaSpec
    work_order: str | None = None  # the work order publishing meters item 12 against
    examples: list[dict[str, str]] = []  # query strings the interface tests call, e.g. {uscc: "9131…"}
    cascade: list[str] = []  # upstream platforms (include/catalog/cascade.yaml) its registration is reported to

    @field_validator("set")
    @classmethod
    def _set_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a lower-case name (a-z, 0-9, _)")
        return value

    @field_validator("dataset")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone, _, rest = value.partition("/")
        if zone not in ZONES or not rest or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be a dataset of the {' or '.join(ZONES)} zone (<zone>/<path>)")
        return value.strip("/")

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a lower-case field name (a-z, 0-9, _)")
        if not value:
            raise ValueError("a set exposes at least one field")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ApiSetSpec:
        from govops.security.masking import PolicyError, parse_rule

        if self.dataset.startswith("sharing/") and self.open_type != "共享":
            raise ValueError(f"open_type: {self.open_type} needs a dataset of the open zone (the sharing zone "
                             "serves departments only: 共享)")  # fmt: skip

        def known(where: str, names: list[str]) -> None:
            for name in names:
                if name not in self.fields:
                    raise ValueError(f"{where}: {name!r} is not one of the fields ({', '.join(self.fields)})")

        known("key", [self.key])
        known("filters", list(self.filters))
        known("sort", self.sort)
        known("default_sort", self.default_sort)
        known("masking", list(self.masking))
        for name, ops in self.filters.items():
            allowed = OPERATORS[self.fields[name].type]
            for op in ops:
                if op not in allowed:
                    raise ValueError(f"filters.{name}: {op!r} is not an operator of a {self.fields[name].type} "
                                     f"field ({', '.join(allowed)})")  # fmt: skip
        for name in [*self.sort, *self.default_sort, self.key]:
            if name in self.masking:  # a cursor carries the sort values, and order leaks the clear value
                raise ValueError(f"sort: {name} is sensitive (masking) and cannot be a sort key")
        for name in self.default_sort:
            if name not in self.sort and name != self.key:
                raise ValueError(f"default_sort: {name} is not in sort")
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size: larger than max_page_size")
        for name, mask in self.masking.items():
            try:
                rule = parse_rule(name, mask.rule, f"masking.{name}.rule")
            except PolicyError as exc:
                raise ValueError(str(exc).split(": ", 1)[1]) from None
            if rule.rule not in SERVER_RULES:
                raise ValueError(
                    f"masking.{name}.rule: {rule.rule} is not applied by the server (one of "
                    f"{', '.join(SERVER_RULES)}; keyed rules belong in the zone's masked copy)"
                )
            if rule.rule == "generalize" and rule.params["to"] == "district":
                raise ValueError(f"masking.{name}.rule: generalize to district runs in the masking job only")
        return self


@dataclass(frozen=True)
class LoadedSet:
    spec: ApiSetSpec
    path: Path
    sha256: str


def apis_dir() -> Path:
    """GOVOPS_APIS_DIR (tests, deployments), else include/apis."""
    return Path(os.environ.get("GOVOPS_APIS_DIR") or settings.repo_root() / APIS_DIR)


def load_set(path: Path) -> LoadedSet:
    raw = path.read_bytes()
    spec = specs.load(path, ApiSetSpec, "set", raw, checks_name_their_field=True)
    return LoadedSet(spec, path, hashlib.sha256(raw).hexdigest())


def check_catalog(engine: Engine, loaded: LoadedSet) -> None:
    """SPEC_INVALID naming the file and ``catalog`` when the entry is not in govops.data_catalog
    (the data catalog the collection pipelines keep; a set publishes a cataloged dataset)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM govops.data_catalog WHERE dataset = :d"),
                             {"d": loaded.spec.catalog}).first()  # fmt: skip
    if found is None:
        raise SpecError(f"{loaded.path}: catalog: {loaded.spec.catalog!r} is not an entry of the data catalog "
                        "(govops.data_catalog.dataset)")  # fmt: skip


def load_all(folder: Path | None = None) -> tuple[dict[str, LoadedSet], list[str]]:
    """Every valid set of the folder, and one error per refused file (the others still serve)."""
    sets: dict[str, LoadedSet] = {}
    errors: list[str] = []
    for path in sorted((folder or apis_dir()).glob("*.yaml")):
        try:
            loaded = load_set(path)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        sets[loaded.spec.set] = loaded
    return sets, errors
