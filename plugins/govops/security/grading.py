"""The classification and grading table (数据分类分级, ``include/security/grading.yaml``):
levels L1..Ln, each a grade of GB/T 43697-2024 (core 核心数据 / important 重要数据 /
general 一般数据, the general grade sub-graded by level) with a default masking rule, the
business categories, and for every data type the detectors find its category, level and
optionally its own masking rule.

A malformed file is refused with the file and the field (``grading.yaml:
data_types.mobile.level: unknown level 'L7' (levels: L1, L2, L3, L4, L5)``), so a typo
never grades a column silently.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govops import settings
from govops.errors import CodedError
from govops.security.detectors import DATA_TYPES

GRADES = ("general", "important", "core")  # least to most sensitive (GB/T 43697-2024)
GRADES_ZH = {"general": "一般数据", "important": "重要数据", "core": "核心数据"}
RULES = ("keep", "partial", "generalize", "hmac", "ff1", "encrypt", "nullify")
DEFAULT_PATH = "include/security/grading.yaml"


class GradingError(CodedError, ValueError):
    code = "INVALID_GRADING"


@dataclass(frozen=True)
class Level:
    name: str  # L1..
    grade: str
    name_zh: str
    description: str
    default_rule: Mapping[str, Any] | None
    sensitive: bool  # counted as a sensitive column in the labeling log (default: not general)


@dataclass(frozen=True)
class DataTypeGrade:
    data_type: str
    category: str
    level: str
    default_rule: Mapping[str, Any] | None


@dataclass(frozen=True)
class Grading:
    path: Path
    sha256: str
    levels: Mapping[str, Level]
    categories: Mapping[str, str]  # key -> Chinese name
    data_types: Mapping[str, DataTypeGrade]
    unlabeled: tuple[str, str]  # (category, level) of a column no detector qualified for

    def grade_of(self, level: str) -> str:
        if level not in self.levels:
            raise GradingError(f"{self.path}: unknown level {level!r} (levels: {', '.join(self.levels)})")
        return self.levels[level].grade

    def label_for(self, data_type: str | None) -> tuple[str, str, str]:
        """(category, grade, level) of a data type; None: the ``unlabeled`` entry."""
        if data_type is None:
            category, level = self.unlabeled
        elif data_type in self.data_types:
            category, level = self.data_types[data_type].category, self.data_types[data_type].level
        else:
            raise GradingError(f"{self.path}: data type {data_type!r} is not graded (data_types: "
                               f"{', '.join(self.data_types)})")  # fmt: skip
        return category, self.levels[level].grade, level

    def default_rule(self, data_type: str | None) -> dict[str, Any] | None:
        """The masking rule of a data type: its own, else its level's; None if neither has one."""
        return self.rule_for(data_type, self.label_for(data_type)[2])

    def rule_for(self, data_type: str | None, level: str) -> dict[str, Any] | None:
        """The masking rule of a label (data type and level, e.g. after a person's override):
        the data type's own rule while the label keeps the level the table gives that type,
        else the rule of the label's level (an override to L4 is masked like L4)."""
        self.grade_of(level)
        graded = self.data_types.get(data_type) if data_type is not None else None
        own = graded.default_rule if graded is not None and graded.level == level else None
        rule = own or self.levels[level].default_rule
        return dict(rule) if rule else None

    def rule_for_level(self, level: str) -> dict[str, Any] | None:
        self.grade_of(level)
        rule = self.levels[level].default_rule
        return dict(rule) if rule else None

    def is_sensitive(self, level: str) -> bool:
        self.grade_of(level)
        return self.levels[level].sensitive


def _fail(path: Path, where: str, problem: str) -> GradingError:
    return GradingError(f"{path}: {where}: {problem}")


def _mapping(path: Path, where: str, value: Any, *, allowed: tuple[str, ...] | None = None,
             required: tuple[str, ...] = ()) -> Mapping[str, Any]:  # fmt: skip
    if not isinstance(value, Mapping) or not value:
        raise _fail(path, where, f"must be a non-empty mapping, got {type(value).__name__} {value!r}"[:200])
    missing = [k for k in required if k not in value]
    if missing:
        raise _fail(path, where, f"missing field(s) {', '.join(missing)}")
    if allowed is not None:
        extra = [str(k) for k in value if k not in allowed]
        if extra:
            raise _fail(path, f"{where}.{extra[0]}", f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _text(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, f"must be a non-empty string, got {value!r}")
    return value


def _rule(path: Path, where: str, value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    rule = _mapping(path, where, value, required=("rule",))
    if rule["rule"] not in RULES:
        raise _fail(path, f"{where}.rule", f"unknown rule {rule['rule']!r} (rules: {', '.join(RULES)})")
    for key in ("keep_first", "keep_last", "decimals"):
        if key in rule and (not isinstance(rule[key], int) or isinstance(rule[key], bool) or rule[key] < 0):
            raise _fail(path, f"{where}.{key}", f"must be a non-negative integer, got {rule[key]!r}")
    if rule["rule"] == "partial" and not ({"keep_first", "keep_last"} & set(rule)):
        raise _fail(path, where, "a partial rule needs keep_first and/or keep_last")
    try:  # the masking engine's own check of the rule's parameters, when it is installed
        from govops.security.masking import parse_rule
    except ImportError:
        return dict(rule)
    try:
        parse_rule("-", dict(rule), where)
    except ValueError as exc:
        raise GradingError(f"{path}: {str(exc).split(': ', 1)[-1]}") from None
    return dict(rule)


def parse(document: Any, path: Path, sha256: str = "") -> Grading:
    top = _mapping(path, "the file", document, allowed=("version", "standard", "levels", "categories", "data_types",
                                                         "unlabeled"),
                   required=("levels", "categories", "data_types", "unlabeled"))  # fmt: skip
    levels: dict[str, Level] = {}
    raw_levels = _mapping(path, "levels", top["levels"])
    for name, spec in raw_levels.items():
        where = f"levels.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"L[1-9]", name):
            raise _fail(path, where, "a level is named L1 .. L9")
        spec = _mapping(path, where, spec, allowed=("grade", "name_zh", "description", "sensitive", "default_rule"),
                        required=("grade", "name_zh"))  # fmt: skip
        if spec["grade"] not in GRADES:
            raise _fail(path, f"{where}.grade", f"unknown grade {spec['grade']!r} (GB/T 43697-2024 grades: "
                                                f"{', '.join(GRADES)})")  # fmt: skip
        sensitive = spec.get("sensitive", spec["grade"] != "general")
        if not isinstance(sensitive, bool):
            raise _fail(path, f"{where}.sensitive", f"must be true or false, got {sensitive!r}")
        levels[name] = Level(name, spec["grade"], _text(path, f"{where}.name_zh", spec["name_zh"]),
                             str(spec.get("description") or ""),
                             _rule(path, f"{where}.default_rule", spec.get("default_rule")), sensitive)
    expected = [f"L{i}" for i in range(1, len(levels) + 1)]
    if sorted(levels) != expected:
        raise _fail(path, "levels", f"must be {', '.join(expected)} without gaps, got {', '.join(sorted(levels))}")
    ordered = [levels[n] for n in expected]
    for low, high in itertools.pairwise(ordered):
        if GRADES.index(high.grade) < GRADES.index(low.grade):
            raise _fail(path, f"levels.{high.name}.grade", f"{high.grade} is below {low.name}'s {low.grade}: a "
                                                           "higher level never has a lower grade")  # fmt: skip
    categories = {}
    for key, name_zh in _mapping(path, "categories", top["categories"]).items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z_]*", key):
            raise _fail(path, f"categories.{key}", "a category key is lower-case English (e.g. identity)")
        categories[key] = _text(path, f"categories.{key}", name_zh)

    def category_and_level(where: str, spec: Mapping[str, Any]) -> tuple[str, str]:
        if spec["category"] not in categories:
            raise _fail(path, f"{where}.category", f"unknown category {spec['category']!r} (categories: "
                                                   f"{', '.join(categories)})")  # fmt: skip
        if spec["level"] not in levels:
            raise _fail(path, f"{where}.level", f"unknown level {spec['level']!r} (levels: {', '.join(expected)})")
        return spec["category"], spec["level"]

    data_types = {}
    for data_type, spec in _mapping(path, "data_types", top["data_types"]).items():
        where = f"data_types.{data_type}"
        if data_type not in DATA_TYPES:
            raise _fail(path, where, f"unknown data type (detectors: {', '.join(DATA_TYPES)})")
        spec = _mapping(path, where, spec, allowed=("category", "level", "default_rule"),
                        required=("category", "level"))  # fmt: skip
        category, level = category_and_level(where, spec)
        data_types[data_type] = DataTypeGrade(data_type, category, level,
                                              _rule(path, f"{where}.default_rule", spec.get("default_rule")))
    ungraded = [t for t in DATA_TYPES if t not in data_types]
    if ungraded:
        raise _fail(path, "data_types", f"no grade for {', '.join(ungraded)} (every detector's type needs one)")
    unlabeled = _mapping(path, "unlabeled", top["unlabeled"], allowed=("category", "level"),
                         required=("category", "level"))  # fmt: skip
    return Grading(path, sha256, levels, categories, data_types, category_and_level("unlabeled", unlabeled))


def load(path: Path | str | None = None) -> Grading:
    """The grading table (default ``include/security/grading.yaml`` of the checkout)."""
    import yaml

    file = Path(path) if path is not None else settings.repo_root() / DEFAULT_PATH
    try:
        raw = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise GradingError(f"{file}: cannot read the grading table: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the file"
        raise GradingError(f"{file}: {at}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    return parse(document, file, hashlib.sha256(raw.encode()).hexdigest())
