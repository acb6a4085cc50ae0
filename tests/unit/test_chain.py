"""The governance chain's declarations (the suites' meta.govops) and how a run of the chain
reads its asset events: the newest event acts, an undeclared dataset is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govops import chain
from govops.chain import ChainError, Event, Link
from govops.quality.suites import SUITES_DIR

LAKE = "file:///lake"
RAW = "raw/frontdb/public_security/persons"


def _suite(folder: Path, name: str, dataset: str, side: str = "ingestion", **govops: object) -> None:
    document = {"name": name, "meta": {"govops": {"dataset": dataset, "side": side, **govops}}, "expectations": []}
    (folder / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")


def _event(dataset: str, minute: int, version: str = "v1", asset: str | None = None) -> Event:
    return Event(asset or chain.asset_uri(dataset, LAKE), {"dataset": dataset, "version": version},
                 datetime(2026, 9, 1, 0, minute, tzinfo=UTC), "pipeline_x/run")  # fmt: skip


def test_the_bundled_suites_declare_the_persons_chain() -> None:
    [link] = chain.links(SUITES_DIR)
    assert (link.suite, link.raw, link.policies) == ("public_security_persons.ingestion", RAW,
                                                      ("public_security_persons",))  # fmt: skip
    assert (link.clean, link.labels) == ("clean/frontdb/public_security/persons",
                                         "labels/clean/frontdb/public_security/persons")  # fmt: skip
    assert chain.asset_uri(link.labels, LAKE + "/") == f"{LAKE}/reports/security/labeling/{link.clean}"
    chain.check_policies(link)  # the policy reads the suite's dataset
    assert chain.dag_id("quality_check", link.suite) == "quality_check__public_security_persons_ingestion"


def test_declarations_that_the_chain_cannot_follow_name_the_file(tmp_path: Path) -> None:
    _suite(tmp_path, "a.ingestion", RAW)
    _suite(tmp_path, "b.ingestion", RAW)
    with pytest.raises(ChainError, match=r"b\.ingestion\.json: meta\.govops\.dataset: .* already gated by .*a\."):
        chain.links(tmp_path)
    (tmp_path / "b.ingestion.json").unlink()
    _suite(tmp_path, "c.application", "clean/x/y", side="application", masking_policies=["p"])
    with pytest.raises(ChainError, match=r"c\.application\.json: meta\.govops\.masking_policies"):
        chain.links(tmp_path)
    (tmp_path / "c.application.json").unlink()
    _suite(tmp_path, "d.ingestion", "raw/other/table", masking_policies=["public_security_persons"])
    link = next(link for link in chain.links(tmp_path) if link.suite == "d.ingestion")
    with pytest.raises(ChainError, match=rf"reads {RAW}, not raw/other/table"):
        chain.check_policies(link)


def test_a_run_acts_on_the_newest_event_of_its_dataset_and_refuses_any_other() -> None:
    persons, other = Link("p.ingestion", RAW), Link("o.ingestion", "raw/frontdb/market/legal_persons")
    declared = [persons, other]
    newest = chain.resolve("quality", persons, [_event(RAW, 1, "v1"), _event(RAW, 2, "v2")], declared, LAKE)
    assert (newest.dataset, newest.version) == (RAW, "v2")
    with pytest.raises(ChainError, match="raw/frontdb/unknown, which no ingestion suite declares for quality"):
        chain.resolve("quality", persons, [_event("raw/frontdb/unknown", 1)], declared, LAKE)
    with pytest.raises(ChainError, match="which no ingestion suite declares"):  # extra names a dataset of another asset
        chain.resolve("quality", persons, [_event(RAW, 1, asset=f"{LAKE}/raw/elsewhere")], declared, LAKE)
    with pytest.raises(ChainError, match="not raw/frontdb/public_security/persons that this DAG serves"):
        chain.resolve("quality", persons, [_event(other.raw, 1)], declared, LAKE)
    with pytest.raises(ChainError, match="for labeling"):  # a raw dataset does not start labeling
        chain.resolve("labeling", persons, [_event(RAW, 1)], declared, LAKE)
    assert chain.resolve("masking", persons, [_event(persons.labels, 3)], declared, LAKE).dataset == persons.labels
    assert chain.find("masking", "x", [Link("s", RAW, ("x",))]).raw == RAW
    with pytest.raises(ChainError, match="no longer declared"):
        chain.find("quality", "gone.ingestion", declared)
