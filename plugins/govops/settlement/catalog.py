"""Load and validate the versioned service catalog and the contract terms (include/catalog)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from govops import settings
from govops.errors import CodedError
from govops.service_items import SERVICE_ITEMS, UNITS

CATALOG_FILE = "include/catalog/service_catalog.yaml"
CONTRACT_FILE = "include/catalog/contract.yaml"
TIER_MODES = ("graduated", "volume")
ROUNDINGS = ("exact", "ceil")


class CatalogError(CodedError, ValueError):
    """The catalog or contract file is invalid; the message names the entry at fault."""

    code = "CATALOG_INVALID"


@dataclass(frozen=True)
class Band:
    lower: Decimal  # exclusive, in billing units
    upper: Decimal | None  # inclusive; None = no upper bound
    price: Decimal  # per billing unit


@dataclass(frozen=True)
class Meter:
    unit: str
    billing_unit: str
    unit_size: int
    bands: tuple[Band, ...]
    tier_mode: str = "graduated"
    rounding: str = "exact"


@dataclass(frozen=True)
class CatalogItem:
    code: str
    service_class: str
    subclass: str
    name_zh: str
    name_en: str
    metered_quantity: str
    difficulty_min: Decimal
    difficulty_max: Decimal
    cap: Decimal | None
    meters: dict[str, Meter]
    notes: str = ""


@dataclass(frozen=True)
class CatalogVersion:
    version: str
    effective_from: date
    items: dict[str, CatalogItem]


@dataclass(frozen=True)
class Catalog:
    name: str
    currency: str
    versions: tuple[CatalogVersion, ...]  # by effective date

    def in_force(self, on: date) -> CatalogVersion:
        """The version whose effective date is the latest on or before ``on``."""
        candidates = [v for v in self.versions if v.effective_from <= on]
        if not candidates:
            raise CatalogError(f"no catalog version is in force on {on} (first: {self.versions[0].effective_from})")
        return candidates[-1]

    def version(self, name: str) -> CatalogVersion:
        for v in self.versions:
            if v.version == name:
                return v
        raise CatalogError(f"no catalog version {name!r}")


def _money(value: Any, where: str, *, allow_none: bool = False) -> Decimal | None:
    if value is None and allow_none:
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise CatalogError(f"{where}: {value!r} is not a number") from exc
    if not amount.is_finite():
        raise CatalogError(f"{where}: {value!r} is not a finite number")
    if amount < 0:
        raise CatalogError(f"{where}: must not be negative, got {value}")
    return amount


def _required(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise CatalogError(f"{where}: missing {key!r}")
    return entry[key]


def _meter(raw: dict[str, Any], where: str, item_code: str) -> Meter:
    unit = _required(raw, "unit", where)
    where = f"{where} meter {unit!r}"
    if unit not in UNITS:
        raise CatalogError(f"{where}: unknown unit {unit!r} (known: {', '.join(UNITS)})")
    if unit not in SERVICE_ITEMS[item_code].units:
        raise CatalogError(f"{where}: item {item_code} is not metered in {unit!r}")
    unit_size = int(_required(raw, "unit_size", where))
    if unit_size != UNITS[unit].unit_size:
        raise CatalogError(f"{where}: unit_size {unit_size} but {unit!r} is {UNITS[unit].unit_size} per billing unit")
    mode = raw.get("tier_mode", "graduated")
    if mode not in TIER_MODES:
        raise CatalogError(f"{where}: tier_mode {mode!r} is not one of {TIER_MODES}")
    rounding = raw.get("rounding", "exact")
    if rounding not in ROUNDINGS:
        raise CatalogError(f"{where}: rounding {rounding!r} is not one of {ROUNDINGS}")
    bands: list[Band] = []
    for i, b in enumerate(_required(raw, "bands", where)):
        bw = f"{where} band {i + 1}"
        if "from" not in b:
            raise CatalogError(f"{bw}: missing 'from'")
        lower = _money(b["from"], f"{bw} from")
        upper = _money(b.get("up_to"), f"{bw} up_to", allow_none=True)
        price = _money(_required(b, "price", bw), f"{bw} price")
        expected = bands[-1].upper if bands else Decimal(0)
        if expected is None:
            raise CatalogError(f"{bw}: follows a band without an upper bound")
        if lower > expected:
            raise CatalogError(f"{bw}: gap: starts at {lower} but the previous band ends at {expected}")
        if lower < expected:
            raise CatalogError(f"{bw}: overlap: starts at {lower} but the previous band ends at {expected}")
        if upper is not None and upper <= lower:
            raise CatalogError(f"{bw}: up_to {upper} is not above from {lower}")
        assert lower is not None and price is not None
        bands.append(Band(lower=lower, upper=upper, price=price))
    if not bands:
        raise CatalogError(f"{where}: no bands")
    if bands[-1].upper is not None:
        raise CatalogError(f"{where}: the last band must have no upper bound (up_to: null)")
    return Meter(unit, raw.get("billing_unit", UNITS[unit].billing_name), unit_size, tuple(bands), mode, rounding)


def _item(raw: dict[str, Any], where: str) -> CatalogItem:
    code = str(_required(raw, "code", where))
    where = f"{where} item {code}"
    if code not in SERVICE_ITEMS:
        raise CatalogError(f"{where}: unknown service item code")
    low, high = _required(raw, "difficulty", where)
    d_min, d_max = _money(low, f"{where} difficulty"), _money(high, f"{where} difficulty")
    assert d_min is not None and d_max is not None
    if d_min <= 0 or d_min > d_max:
        raise CatalogError(f"{where}: difficulty range [{low}, {high}] must be positive and ordered")
    meters = {m.unit: m for m in (_meter(r, where, code) for r in _required(raw, "meters", where))}
    return CatalogItem(
        code=code,
        service_class=_required(raw, "class", where),
        subclass=raw.get("subclass", ""),
        name_zh=_required(raw, "name_zh", where),
        name_en=_required(raw, "name_en", where),
        metered_quantity=raw.get("metered_quantity", ""),
        difficulty_min=d_min,
        difficulty_max=d_max,
        cap=_money(raw.get("cap"), f"{where} cap", allow_none=True),
        meters=meters,
        notes=(raw.get("notes") or "").strip(),
    )


def parse_catalog(data: dict[str, Any], source: str = CATALOG_FILE) -> Catalog:
    versions: dict[str, CatalogVersion] = {}
    for raw in _required(data, "versions", source):
        name = str(_required(raw, "version", source))
        where = f"{source}: version {name}"
        if name in versions:
            raise CatalogError(f"{where}: defined twice")
        items: dict[str, CatalogItem] = {}
        if raw.get("inherits"):
            if raw["inherits"] not in versions:
                raise CatalogError(f"{where}: inherits unknown (or later) version {raw['inherits']!r}")
            items.update(versions[raw["inherits"]].items)
        for item_raw in raw.get("items") or []:
            item = _item(item_raw, where)
            items[item.code] = item
        missing = sorted(set(SERVICE_ITEMS) - set(items))
        if missing:
            raise CatalogError(f"{where}: items {', '.join(missing)} are missing")
        effective = date.fromisoformat(str(_required(raw, "effective_from", where)))
        versions[name] = CatalogVersion(version=name, effective_from=effective, items=items)
    ordered = sorted(versions.values(), key=lambda v: v.effective_from)
    dates = [v.effective_from for v in ordered]
    if len(set(dates)) != len(dates):
        raise CatalogError(f"{source}: two versions take effect on the same date")
    return Catalog(name=data.get("catalog", ""), currency=data.get("currency", "CNY"), versions=tuple(ordered))


def read_yaml(path: Path) -> dict[str, Any]:
    """A catalog or contract file as a mapping; a refusal names the file (and the line)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"{path}: YAML syntax error{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping of terms, found {type(data).__name__}")
    return data


def load_catalog(path: Path | None = None) -> Catalog:
    path = path or settings.repo_root() / CATALOG_FILE
    return parse_catalog(read_yaml(path), str(path))


@dataclass(frozen=True)
class ScoreBand:
    min_score: Decimal
    value: Decimal


@dataclass(frozen=True)
class Contract:
    name: str
    total: Decimal
    prepayment_rate: Decimal
    retention_rate: Decimal
    quality_weight: Decimal
    satisfaction_weight: Decimal
    deductions: tuple[ScoreBand, ...]  # descending min_score
    coefficients: tuple[ScoreBand, ...]
    rework_pass_score: Decimal
    rework_pass_coefficient: Decimal
    rework_fail_coefficient: Decimal
    penalties: dict[str, Decimal]


def parse_contract(data: dict[str, Any], source: str = CONTRACT_FILE) -> Contract:
    def money(key: str, value: Any) -> Decimal:
        amount = _money(value, f"{source}: {key}")
        assert amount is not None
        return amount

    def bands(key: str, raw: Any, value_key: str) -> tuple[ScoreBand, ...]:
        if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
            raise CatalogError(f"{source}: {key} must be a list of bands")
        out = sorted(
            (ScoreBand(money(f"{key} min_score", _required(b, "min_score", f"{source}: {key} band {i + 1}")),
                       money(f"{key} {value_key}", _required(b, value_key, f"{source}: {key} band {i + 1}")))
             for i, b in enumerate(raw)),
            key=lambda b: b.min_score,
            reverse=True,
        )  # fmt: skip
        if not out:
            raise CatalogError(f"{source}: {key} is empty")
        return tuple(out)

    def section(key: str) -> dict[str, Any]:
        found = _required(data, key, source)
        if not isinstance(found, dict):
            raise CatalogError(f"{source}: {key} must be a mapping")
        return found

    assessment = section("assessment")
    deductions = bands("assessment deductions", _required(assessment, "deductions", f"{source}: assessment"), "rate")
    if deductions[-1].min_score != 0:
        raise CatalogError(f"{source}: assessment deductions must cover scores down to 0")
    coefficients = bands("quality_coefficients", _required(data, "quality_coefficients", source), "coefficient")
    rework = section("rework")

    def weight(key: str) -> Decimal:
        return money(f"assessment {key}", _required(assessment, key, f"{source}: assessment"))

    def rework_term(key: str) -> Decimal:
        return money(f"rework {key}", _required(rework, key, f"{source}: rework"))
    return Contract(
        name=data.get("contract", ""),
        total=money("contract_total", _required(data, "contract_total", source)),
        prepayment_rate=money("prepayment_rate", _required(data, "prepayment_rate", source)),
        retention_rate=money("retention_rate", _required(data, "retention_rate", source)),
        quality_weight=weight("service_quality_weight"),
        satisfaction_weight=weight("satisfaction_weight"),
        deductions=deductions,
        coefficients=coefficients,
        rework_pass_score=rework_term("pass_score"),
        rework_pass_coefficient=rework_term("pass_coefficient"),
        rework_fail_coefficient=rework_term("fail_coefficient"),
        penalties={k: money(f"penalties {k}", v) for k, v in (data.get("penalties") or {}).items()},
    )


def load_contract(path: Path | None = None) -> Contract:
    path = path or settings.repo_root() / CONTRACT_FILE
    return parse_contract(read_yaml(path), str(path))
