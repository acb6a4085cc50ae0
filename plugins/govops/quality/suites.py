"""Quality suites: Great Expectations 1.x suite files under ``include/quality_suites/``,
one per dataset and side, named ``<suite name>.json``.

A suite file is GX's own JSON (``name``, ``expectations`` with ``type``, ``kwargs``,
``meta``, ``severity``) with two project conventions, checked on load:

* the suite's ``meta.govops``: ``dataset`` (the lake dataset, ``<zone>/<path>``), ``side``
  (``ingestion`` 归集端 or ``application`` 应用端), ``service_item`` (07 or 08, implied by
  the side), ``thresholds`` (``pass`` and ``warn`` scores, 0-100), an optional ``key``
  (the columns that identify a record in the anomaly list), an optional ``owner`` (the data
  owner's department, whose zone holds the full anomaly list; default: the dataset's folder
  above the table, ``raw/frontdb/<owner>/<table>``) and an optional ``sensitive``
  (``{column: masking rule}``, the security services' ``partial``, ``generalize`` or
  ``nullify`` rules, applied to the report's masked view of the anomaly list); an ingestion
  suite's optional ``masking_policies`` (policies of include/security/masking.yaml) publish
  the batches it passes to the sharing or open zone (the governance chain, ``govops.chain``);
* each expectation's ``meta.dimension``: one of the seven quality dimensions, and GX's
  ``severity``: ``critical`` (a failure fails the check: "fail") or ``warning`` ("warn").
  ``meta.rule`` names the rule in the check log; by default, the type and its columns.

``${lake}`` in any string is replaced by the lake root, so cross-table rules
(``unexpected_rows_expectation`` queries) can name other datasets of the lake.
A malformed suite raises :class:`SuiteError` naming the file and the field at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govops.errors import CodedError

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

SUITES_DIR = Path(__file__).resolve().parents[3] / "include" / "quality_suites"  # the bundled suites
SUITES_DIR_ENV = "GOVOPS_QUALITY_SUITES_DIR"
DIMENSIONS = {
    "conformity": "规范性",
    "completeness": "完整性",
    "accuracy": "准确性",
    "consistency": "一致性",
    "timeliness": "及时性",
    "reasonableness": "合理性",
    "reliability": "可靠性",
}
SIDES = {"ingestion": "07", "application": "08"}
SEVERITIES = {"critical": "fail", "warning": "warn"}


class SuiteError(CodedError, ValueError):
    """A suite file that cannot be used, with the file and the field at fault."""

    code = "SUITE_INVALID"


@dataclass(frozen=True)
class Rule:
    name: str  # unique in the suite: the check log's rule
    type: str
    kwargs: dict[str, Any]
    dimension: str
    severity: str  # fail / warn
    description: str = ""

    @property
    def columns(self) -> list[str]:
        k = self.kwargs
        if "column" in k:
            return [k["column"]]
        if "column_A" in k:
            return [k["column_A"], k["column_B"]]
        return list(k.get("column_list") or [])


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    sha256: str
    dataset: str
    side: str
    thresholds: dict[str, float]
    rules: list[Rule]
    key: list[str] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)  # the GX suite JSON, ${lake} resolved
    owner: str = ""
    sensitive: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> masking rule

    @property
    def service_item(self) -> str:
        return SIDES[self.side]

    def gx_suite(self) -> ExpectationSuite:
        """The suite as a GX object (the rule library registered), for plain GX and data docs."""
        import great_expectations as gx

        import govops.quality.expectations  # noqa: F401  (registers the library's types)

        return gx.ExpectationSuite(**{k: v for k, v in self.document.items() if k != "notes"})


def suites_dir() -> Path:
    """The one folder of suites and of their code tables (``code_tables/``): the bundled
    ``include/quality_suites`` unless ``GOVOPS_QUALITY_SUITES_DIR`` names another."""
    return Path(os.environ.get(SUITES_DIR_ENV) or SUITES_DIR).resolve()


def suite_path(name: str) -> Path:
    return suites_dir() / f"{name}.json"


def load(path: Path | str, lake_root: str = "", *, check_kwargs: bool = True) -> Suite:
    """Read and check a suite file (a path, or a name under include/quality_suites/).

    ``check_kwargs`` has GX validate every expectation's arguments too; the Spark job skips
    it, since the DAG's first task already did."""
    path = Path(path)
    if path.suffix != ".json" and len(path.parts) == 1:
        path = suite_path(str(path))
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read the suite: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: byte {exc.start}: not UTF-8 text ({exc.reason}); save the suite as UTF-8") from None
    try:
        document = json.loads(raw.replace("${lake}", lake_root.rstrip("/")))
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}") from exc
    return parse(document, path, hashlib.sha256(raw.encode()).hexdigest(), check_kwargs=check_kwargs)


def parse(document: Any, path: Path, sha256: str = "", *, check_kwargs: bool = True) -> Suite:
    def fail(where: str, problem: str) -> SuiteError:
        return SuiteError(f"{path}: {where}: {problem}")

    if not isinstance(document, dict):
        raise fail("the file", "must be a JSON object (a GX expectation suite)")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise fail("name", "missing: every suite needs a name")
    settings = (document.get("meta") or {}).get("govops")
    if not isinstance(settings, dict):
        raise fail("meta.govops", "missing: needs dataset, side and thresholds")
    dataset, side = settings.get("dataset"), settings.get("side")
    if not isinstance(dataset, str) or "/" not in dataset:
        raise fail("meta.govops.dataset", f"{dataset!r} is not a lake dataset <zone>/<path>")
    if side not in SIDES:
        raise fail("meta.govops.side", f"{side!r} is not one of {', '.join(SIDES)}")
    thresholds = settings.get("thresholds") or {}
    try:
        passing, warning = float(thresholds["pass"]), float(thresholds["warn"])
    except (KeyError, TypeError, ValueError):
        raise fail("meta.govops.thresholds", "needs numbers 'pass' and 'warn' (scores 0-100)") from None
    if not 0 <= warning <= passing <= 100:
        raise fail("meta.govops.thresholds", f"need 0 <= warn ({warning}) <= pass ({passing}) <= 100")
    key = settings.get("key") or []
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        raise fail("meta.govops.key", "must be a list of column names")
    owner = settings.get("owner") or dataset.rstrip("/").split("/")[-2]
    if not isinstance(owner, str) or "/" in owner:
        raise fail("meta.govops.owner", f"{owner!r} is not a department name")
    sensitive = _sensitive(settings.get("sensitive") or {}, fail)
    expectations = document.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise fail("expectations", "must be a non-empty list")

    rules: list[Rule] = []
    for i, item in enumerate(expectations):
        rules.append(_rule(item, f"expectations[{i}]", fail))
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            raise fail(f"expectations[{i}].meta.rule", f"{rule.name!r} names two rules; give one a meta.rule")
        seen.add(rule.name)
    if check_kwargs:
        _check_with_gx(document, fail)
    return Suite(
        name=name, path=path, sha256=sha256, dataset=dataset, side=side,
        thresholds={"pass": passing, "warn": warning}, rules=rules, key=key, document=document, owner=owner,
        sensitive=sensitive,
    )  # fmt: skip


def _sensitive(declared: Any, fail: Any) -> dict[str, dict[str, Any]]:
    """``meta.govops.sensitive``, each rule checked by the security services' own parser; only
    the rules that need no key (the report cannot hold one) and change the value."""
    from govops.security.masking import PolicyError, parse_rule

    if not isinstance(declared, dict):
        raise fail("meta.govops.sensitive", "must be a mapping {column: masking rule}")
    found = {}
    for column, raw in declared.items():
        where = f"meta.govops.sensitive.{column}"
        try:
            rule = parse_rule(column, raw, where)
        except PolicyError as exc:
            raise fail(where, str(exc).removeprefix(f"{where}: ")) from None
        if rule.rule not in ("partial", "generalize", "nullify"):
            raise fail(where, f"{rule.rule!r}: the report's view takes partial, generalize or nullify")
        found[column] = {"rule": rule.rule, **rule.params}
    return found


def _rule(item: Any, where: str, fail: Any) -> Rule:
    if not isinstance(item, dict):
        raise fail(where, "must be an object with type, kwargs and meta")
    kind = item.get("type")
    if not isinstance(kind, str):
        raise fail(f"{where}.type", "missing")
    kwargs = item.get("kwargs")
    if not isinstance(kwargs, dict):
        raise fail(f"{where}.kwargs", "missing: an object of the expectation's arguments")
    meta = item.get("meta") or {}
    dimension = meta.get("dimension")
    if dimension not in DIMENSIONS:
        raise fail(f"{where}.meta.dimension", f"{dimension!r} is not one of {', '.join(DIMENSIONS)}")
    severity = item.get("severity", "critical")
    if severity not in SEVERITIES:
        raise fail(f"{where}.severity", f"{severity!r} is not one of {', '.join(SEVERITIES)} (fail / warn)")
    columns = kwargs.get("column") or ",".join(
        str(c) for c in ([kwargs.get("column_A"), kwargs.get("column_B")] if "column_A" in kwargs
                         else kwargs.get("column_list") or []))  # fmt: skip
    name = meta.get("rule") or (f"{kind}({columns})" if columns else kind)
    return Rule(name=name, type=kind, kwargs=kwargs, dimension=dimension, severity=SEVERITIES[severity],
                description=str(meta.get("description", "")))  # fmt: skip


def _check_with_gx(document: dict[str, Any], fail: Any) -> None:
    """GX's own validation of every expectation: a known type, known and valid arguments."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import get_expectation_impl

    import govops.quality.expectations  # noqa: F401  (registers the library's types)

    for i, item in enumerate(document["expectations"]):
        try:
            get_expectation_impl(item["type"])
        except Exception:
            problem = f"{item['type']!r} is not a Great Expectations expectation type"
            raise fail(f"expectations[{i}].type", problem) from None
        try:
            ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"], meta=item.get("meta"),
                                     severity=item.get("severity", "critical")).to_domain_obj()  # fmt: skip
        except Exception as exc:  # pydantic and GX errors alike: say which expectation
            detail = " ".join(str(exc).split())[:400]
            raise fail(f"expectations[{i}].kwargs", f"{item['type']}: {detail}") from None


def available() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.json"))
