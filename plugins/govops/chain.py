"""The governance chain, run by data: which lake datasets trigger which services.

Every lake dataset a service publishes is an Airflow Asset: its URI, and its name, is the
dataset's lake URI (``<lake root>/raw/frontdb/public_security/persons``), its group the zone.
Airflow keeps one active asset per name, and a task whose outlet is not active fails: a name
without the lake root would let one lake's assets (the demo's, a test's) block another's.
The chain is declared in one place, the ingestion suites' ``meta.govops`` (include/quality_suites/):

* ``dataset`` (already the suite's dataset): a new version of that raw dataset triggers the
  suite's check (one DAG ``quality_check__<suite>`` per ingestion suite, scheduled on it);
* a batch that passes the gate is promoted to ``clean/<path>``; that publication triggers
  its labeling (``security_labeling__<path>``), whose labels (``labels/clean/<path>``, the
  labeling reports' folder) trigger masking;
* ``masking_policies``: the policies of include/security/masking.yaml that publish the
  promoted batch (``security_masking__<policy>``), each reading the promoted copy of its
  ``source``, which must be the suite's dataset.

An asset event carries in ``extra`` the dataset it names and its version (the digest of the
dataset's commit marker, ``govops.quality.promotion.version``). A run of the chain refuses an
event whose dataset no suite declares (``CHAIN_UNDECLARED``), and skips an event whose
version is no longer the dataset's current one (a newer version has its own event).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govops.errors import CodedError

if TYPE_CHECKING:
    from airflow.sdk import Asset

LABELS = "labels"  # the asset of a dataset's labels: labels/<dataset>
STAGES = ("quality", "labeling", "masking")


class ChainError(CodedError, ValueError):
    """An asset event or a declaration the chain cannot follow; names the dataset and file."""

    code = "CHAIN_UNDECLARED"


@dataclass(frozen=True)
class Link:
    """One raw dataset's way through the chain, as its ingestion suite declares it."""

    suite: str  # the ingestion suite that gates the dataset
    raw: str  # raw/<path>
    policies: tuple[str, ...] = ()  # masking policies that publish the promoted batch
    path: Path = field(default=Path(), compare=False)  # the suite file that declares it

    @property
    def clean(self) -> str:
        return "clean/" + self.raw.split("/", 1)[1]

    @property
    def labels(self) -> str:
        return f"{LABELS}/{self.clean}"

    def trigger(self, stage: str) -> str:
        """The dataset whose new version starts ``stage`` for this link."""
        return {"quality": self.raw, "labeling": self.clean, "masking": self.labels}[stage]


@dataclass(frozen=True)
class Event:
    """An asset event as a run of the chain sees it."""

    asset: str  # the asset's URI
    extra: Mapping[str, Any]
    timestamp: datetime
    source: str = ""  # dag_id/run_id of the run that published it

    @property
    def dataset(self) -> str:
        return str(self.extra.get("dataset") or "")

    @property
    def version(self) -> str | None:
        value = self.extra.get("version")
        return None if value is None else str(value)


def links(folder: Path | None = None) -> list[Link]:
    """The chain as the ingestion suites declare it; a ChainError names the file at fault.

    Reads only each suite's ``meta.govops`` (cheap enough for DAG parsing); the check itself
    loads and validates the whole suite."""
    from govops.quality.suites import suites_dir

    found: dict[str, Link] = {}
    for path in sorted((folder or suites_dir()).glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            settings = document["meta"]["govops"]
            name, dataset, side = document["name"], settings["dataset"], settings["side"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ChainError(f"{path}: cannot read meta.govops ({type(exc).__name__}: {exc})") from None
        policies = settings.get("masking_policies") or []
        if side != "ingestion":
            if policies:
                raise ChainError(f"{path}: meta.govops.masking_policies: only ingestion suites gate publication")
            continue
        if not isinstance(dataset, str) or not dataset.startswith("raw/") or dataset.count("/") < 1:
            raise ChainError(f"{path}: meta.govops.dataset: {dataset!r} is not a raw dataset raw/<path>")
        if not isinstance(policies, list) or not all(isinstance(p, str) and p for p in policies):
            raise ChainError(f"{path}: meta.govops.masking_policies: a list of policy names of "
                             "include/security/masking.yaml")  # fmt: skip
        if dataset in found:
            raise ChainError(f"{path}: meta.govops.dataset: {dataset} is already gated by {found[dataset].path} "
                             "(one ingestion gate per dataset)")  # fmt: skip
        found[dataset] = Link(suite=name, raw=dataset, policies=tuple(policies), path=path)
    return list(found.values())


class ChainWarning(UserWarning):
    """The chain's DAGs were not built: a declaration does not validate."""


def declared_links() -> list[Link]:
    """``links()`` for DAG files: a declaration that does not validate is a warning naming the
    file and field, and the chain's DAGs are left out while the manual services still load.
    (The masking policies are checked when a run starts: ``check_policies``.)"""
    import warnings

    try:
        return links()
    except ChainError as exc:
        warnings.warn(str(exc), ChainWarning, stacklevel=2)
        return []


def check_policies(link: Link) -> None:
    """Each declared masking policy exists and reads the suite's dataset (its promoted copy
    is what the chain masks). A PolicyError or ChainError names the file and field."""
    from govops.security.masking import load

    for name in link.policies:
        policy = load(name)
        if policy.source not in (link.raw, link.clean):
            raise ChainError(f"{link.path}: meta.govops.masking_policies: {name} reads {policy.source}, "
                             f"not {link.raw}")  # fmt: skip


def dag_id(service: str, key: str) -> str:
    """The chain DAG of ``service`` for one suite, dataset or policy: ``quality_check__<key>``."""
    return f"{service}__{re.sub(r'[^A-Za-z0-9_]+', '_', key).strip('_')}"


def asset_uri(dataset: str, lake_root: str) -> str:
    """A dataset's lake URI; the labels of a dataset are its labeling reports' folder."""
    root = lake_root.rstrip("/")
    if dataset.startswith(f"{LABELS}/"):
        return f"{root}/reports/security/labeling/{dataset.split('/', 1)[1]}"
    return f"{root}/{dataset}"


def asset(dataset: str, lake_root: str | None = None) -> Asset:
    """The Airflow Asset of a lake dataset: named by its lake URI, the zone as group."""
    from airflow.sdk import Asset

    from govops import settings

    uri = asset_uri(dataset, lake_root or settings.lake_root())
    return Asset(name=uri, uri=uri, group=dataset.split("/", 1)[0])


def publication(dataset: str, lake_root: str, **more: Any) -> dict[str, Any]:
    """An asset event's ``extra``: the dataset, its version (None without a commit marker)
    and what the publishing run adds (rows, suite, policy…)."""
    from govops.quality.promotion import version

    target = dataset.split("/", 1)[1] if dataset.startswith(f"{LABELS}/") else dataset
    return {"dataset": dataset, "version": version(lake_root, target), **more}


def events(triggering: Any) -> list[Event]:
    """The run's triggering asset events (Airflow's ``triggering_asset_events``), oldest first;
    an event seen through an alias is counted once."""
    seen: dict[tuple[str, str], Event] = {}
    for key in triggering or ():
        for ref in triggering[key]:
            stamp = ref.timestamp
            source = f"{ref.source_dag_id}/{ref.source_run_id}" if ref.source_dag_id else ""
            seen[(ref.asset.uri, stamp.isoformat())] = Event(ref.asset.uri, dict(ref.extra or {}), stamp, source)
    return sorted(seen.values(), key=lambda e: e.timestamp)


def resolve(stage: str, expected: Link, found: Iterable[Event], declared: Iterable[Link], lake_root: str) -> Event:
    """The event a run of ``stage`` for ``expected`` acts on: the newest. Refuses (ChainError)
    an event whose dataset no suite declares for this stage, that is not on that dataset's
    asset in this lake, or that is not this link's."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    triggers = {link.trigger(stage): link for link in declared}
    ordered = list(found)
    if not ordered:
        raise ChainError(f"{stage}: no triggering asset event")
    for event in ordered:
        link = triggers.get(event.dataset)
        if link is None or event.asset != asset_uri(event.dataset, lake_root):
            raise ChainError(f"{stage}: asset event on {event.asset} (from {event.source or 'outside a run'}) names "
                             f"dataset {event.dataset}, which no ingestion suite declares for {stage}")  # fmt: skip
        if link != expected:
            raise ChainError(f"{stage}: asset event for {event.dataset}, not {expected.trigger(stage)} "
                             f"that this DAG serves")  # fmt: skip
    return ordered[-1]


def find(stage: str, key: str, declared: Iterable[Link]) -> Link:
    """The declared link a chain DAG serves (by suite, clean dataset or policy), at run time:
    the declaration may have changed since the DAG was parsed."""
    for link in declared:
        if key in {"quality": (link.suite,), "labeling": (link.clean,), "masking": link.policies}[stage]:
            return link
    raise ChainError(f"{stage}: {key} is no longer declared by an ingestion suite's meta.govops")
