"""Retention policies of item 21 (历史数据归档及销毁): which partitions of a dataset are kept
live, where the old ones are archived, and when archived ones are due for destruction.

One policy per dataset in ``include/security/retention.yaml`` (``GOVOPS_RETENTION_FILE``
overrides the file)::

    datasets:
      raw/frontdb/government_services/service_events_history:   # <zone>/<dataset path> in the lake
        partition_column: event_date     # Hive-style folders <column>=<value>
        date_format: "%Y-%m-%d"          # how a partition value reads as a date (strptime)
        basis: partition_date            # or age: the newest file's modification time
        keep: 180 days                   # N days | months | years before as_of
        archive_location: archive/...    # a URI, or a path under the lake; default archive/<dataset>
        destroy_after: 3 years           # age in the archive before destruction is due; absent: never due
        key: service_events_history      # the data key to crypto-shred when nothing of the dataset is left
        fingerprint_columns: [event_id]  # values that identify the records (looked for as residue)
        fingerprint_min_length: 6        # shorter values are not distinctive enough to look for

A file that does not read as such is refused with the file and the field that is wrong.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from govops import settings
from govops.errors import CodedError

BASES = ("partition_date", "age")
UNITS = ("days", "months", "years")
ARCHIVE_ZONE = "archive"
_PERIOD = re.compile(r"^\s*(\d+)\s*(day|days|month|months|year|years)\s*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELDS = frozenset({
    "description", "partition_column", "date_format", "basis", "keep", "archive_location", "destroy_after", "key",
    "fingerprint_columns", "fingerprint_min_length",
})  # fmt: skip
_SCAN_FIELDS = frozenset({"log_folders", "full_scan_zones"})


class RetentionConfigError(CodedError, ValueError):
    code = "RETENTION_CONFIG_INVALID"


@dataclass(frozen=True)
class Period:
    amount: int
    unit: str  # days | months | years

    def before(self, day: date) -> date:
        """``day`` minus this period (a month back from 31 March is 28/29 February)."""
        if self.unit == "days":
            return date.fromordinal(day.toordinal() - self.amount)
        months = self.amount * (12 if self.unit == "years" else 1)
        year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
        return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"


@dataclass(frozen=True)
class RetentionPolicy:
    dataset: str  # <zone>/<dataset path>, relative to the lake root
    partition_column: str
    keep: Period
    date_format: str = "%Y-%m-%d"
    basis: str = "partition_date"
    archive_location: str | None = None  # None: <lake>/archive/<dataset>
    destroy_after: Period | None = None
    key: str | None = None
    fingerprint_columns: tuple[str, ...] = ()
    fingerprint_min_length: int = 6
    description: str = ""

    def live_uri(self, lake_root: str) -> str:
        return f"{lake_root.rstrip('/')}/{self.dataset}"

    def archive_uri(self, lake_root: str) -> str:
        loc = self.archive_location
        if loc is None:
            return f"{lake_root.rstrip('/')}/{ARCHIVE_ZONE}/{self.dataset}"
        return loc.rstrip("/") if "://" in loc else f"{lake_root.rstrip('/')}/{loc.strip('/')}"

    def parse_date(self, value: str) -> date | None:
        """The partition value as a date, or None when it does not read with date_format."""
        try:
            return datetime.strptime(value, self.date_format).date()
        except ValueError:
            return None

    def archive_cutoff(self, as_of: date) -> date:
        """Partitions dated (or last written) before this day are due for archiving."""
        return self.keep.before(as_of)

    def destroy_cutoff(self, as_of: date) -> date | None:
        """Archived before this day: due for destruction (None: never due by age)."""
        return self.destroy_after.before(as_of) if self.destroy_after else None


@dataclass(frozen=True)
class RetentionConfig:
    path: Path
    policies: dict[str, RetentionPolicy]
    log_folders: tuple[str, ...] = ()
    full_scan_zones: tuple[str, ...] = ("anomalies", "rejects", "owner")
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def policy(self, dataset: str) -> RetentionPolicy:
        found = self.policies.get(dataset.strip("/"))
        if found is None:
            have = ", ".join(sorted(self.policies)) or "-"
            raise RetentionConfigError(f"{self.path}: datasets.{dataset}: no retention policy (have: {have})")
        return found

    def key_users(self, key: str) -> list[str]:
        """The datasets whose policy names a data key."""
        return sorted(p.dataset for p in self.policies.values() if p.key == key)


def policy_file() -> Path:
    env = os.environ.get("GOVOPS_RETENTION_FILE")
    return Path(env) if env else settings.repo_root() / "include" / "security" / "retention.yaml"


def parse_period(raw: Any, where: str) -> Period:
    match = _PERIOD.match(str(raw)) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    if match is None or int(match.group(1)) <= 0:
        raise RetentionConfigError(f"{where}: expected '<positive number> days|months|years', got {raw!r}")
    unit = match.group(2) if match.group(2).endswith("s") else match.group(2) + "s"
    return Period(int(match.group(1)), unit)


def _string(raw: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RetentionConfigError(f"{where}.{name}: a non-empty string is required, got {value!r}")
    return value.strip()


def parse_policy(dataset: Any, raw: Any, where: str) -> RetentionPolicy:
    if not isinstance(dataset, str) or dataset.strip("/").count("/") < 1 or ".." in dataset.split("/"):
        raise RetentionConfigError(f"{where}: the dataset must be <zone>/<path> in the lake, got {dataset!r}")
    dataset = dataset.strip("/")
    if dataset.split("/", 1)[0] == ARCHIVE_ZONE:
        raise RetentionConfigError(f"{where}: a dataset of the {ARCHIVE_ZONE} zone is not archived again")
    if not isinstance(raw, Mapping):
        raise RetentionConfigError(f"{where}: a mapping of policy fields is required")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise RetentionConfigError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(_FIELDS))})")
    column = _string(raw, "partition_column", where, required=True)
    if not _COLUMN.match(column):
        raise RetentionConfigError(f"{where}.partition_column: not a column name: {column!r}")
    if "keep" not in raw:
        raise RetentionConfigError(f"{where}.keep: required (e.g. '180 days')")
    keep = parse_period(raw["keep"], f"{where}.keep")
    basis = raw.get("basis", "partition_date")
    if basis not in BASES:
        raise RetentionConfigError(f"{where}.basis: {basis!r} is not one of {', '.join(BASES)}")
    date_format = _string(raw, "date_format", where) or "%Y-%m-%d"
    try:
        probe = datetime(2024, 12, 31).strftime(date_format)
        ok = "%" in date_format and datetime.strptime(probe, date_format).date() == date(2024, 12, 31)
    except ValueError:
        ok = False
    if not ok:
        raise RetentionConfigError(f"{where}.date_format: {date_format!r} does not read a day (e.g. '%Y-%m-%d')")
    destroy_after = parse_period(raw["destroy_after"], f"{where}.destroy_after") if "destroy_after" in raw else None
    location = _string(raw, "archive_location", where)
    if location is not None and "://" not in location and ".." in location.split("/"):
        raise RetentionConfigError(f"{where}.archive_location: {location!r} leaves the lake")
    columns = raw.get("fingerprint_columns") or []
    if not isinstance(columns, list) or not all(isinstance(c, str) and _COLUMN.match(c) for c in columns):
        raise RetentionConfigError(f"{where}.fingerprint_columns: a list of column names is required, got {columns!r}")
    if column in columns:
        raise RetentionConfigError(f"{where}.fingerprint_columns: {column!r} is the partition column, not in the files")
    min_length = raw.get("fingerprint_min_length", 6)
    if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 1:
        raise RetentionConfigError(f"{where}.fingerprint_min_length: a positive integer is needed, got {min_length!r}")
    return RetentionPolicy(
        dataset=dataset, partition_column=column, keep=keep, date_format=date_format, basis=basis,
        archive_location=location, destroy_after=destroy_after, key=_string(raw, "key", where),
        fingerprint_columns=tuple(columns), fingerprint_min_length=min_length,
        description=_string(raw, "description", where) or "",
    )  # fmt: skip


def load(path: Path | None = None) -> RetentionConfig:
    """Read and validate the whole file (one bad policy refuses the file: it is one configuration)."""
    import yaml

    path = Path(path) if path else policy_file()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetentionConfigError(f"{path}: no such file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RetentionConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, Mapping):
        raise RetentionConfigError(f"{path}: a mapping with 'datasets' is required")
    unknown = sorted(set(document) - {"version", "scan", "datasets"})
    if unknown:
        raise RetentionConfigError(f"{path}: {unknown[0]}: unknown field (allowed: version, scan, datasets)")
    datasets = document.get("datasets")
    if not isinstance(datasets, Mapping):
        raise RetentionConfigError(f"{path}: datasets: a mapping of dataset -> policy is required")
    policies = {}
    for name, raw in datasets.items():
        policy = parse_policy(name, raw, f"{path}: datasets.{name}")
        policies[policy.dataset] = policy
    scan = document.get("scan") or {}
    if not isinstance(scan, Mapping) or set(scan) - _SCAN_FIELDS:
        raise RetentionConfigError(f"{path}: scan: a mapping with {', '.join(sorted(_SCAN_FIELDS))} is allowed")
    lists = {}
    for name in _SCAN_FIELDS:
        value = scan.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            raise RetentionConfigError(f"{path}: scan.{name}: a list of strings is required, got {value!r}")
        lists[name] = tuple(value) if value is not None else None
    return RetentionConfig(
        path=path, policies=policies, log_folders=lists["log_folders"] or (),
        full_scan_zones=lists["full_scan_zones"] if lists["full_scan_zones"] is not None
        else RetentionConfig.full_scan_zones,
        raw=document,
    )  # fmt: skip
