"""The console's tier slices of a statement line (R2 shown band by band): from the catalog a
statement stored, they add up to the line's tiered amount, in both tier modes."""

from __future__ import annotations

import copy
from decimal import Decimal as D

import pytest

from govops.console.queries import tier_slices
from govops.settings import repo_root
from govops.settlement import rules
from govops.settlement.catalog import CATALOG_FILE, parse_catalog, read_yaml


@pytest.mark.parametrize("mode", ["graduated", "volume"])
@pytest.mark.parametrize("raw", [0, 10_000, 500_000, 500_001, 1_234_567, 1_500_000, 2_750_000])
def test_slices_add_up_to_the_tiered_amount(mode: str, raw: int) -> None:
    raw_catalog = copy.deepcopy(read_yaml(repo_root() / CATALOG_FILE))
    raw_catalog["versions"][0]["items"][0]["meters"][0]["tier_mode"] = mode  # item 01, record
    version = parse_catalog(raw_catalog).versions[0]
    meter = version.items["01"].meters["record"]
    quantity = rules.billing_quantity(raw, meter)
    wo = {"catalog_version": version.version, "service_item_code": "01", "unit": "record",
          "billing_quantity": str(quantity)}  # fmt: skip
    slices = tier_slices(parse_catalog(raw_catalog, "statement inputs"), wo)
    assert sum((s["amount"] for s in slices), D(0)) == rules.tiered(quantity, meter.bands, mode)
    assert sum((s["quantity"] for s in slices), D(0)) == quantity
    if mode == "volume" and raw:
        assert len(slices) == 1
    if mode == "graduated" and raw == 1_234_567:  # 123.4567 万条: 50 at 120, 73.4567 at 100
        assert [(s["quantity"], s["price"]) for s in slices] == [(D(50), D("120.00")), (D("73.4567"), D("100.00"))]
