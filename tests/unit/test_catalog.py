"""The versioned catalog: every item present, versions by date, errors that name the entry."""

import copy
from datetime import date
from decimal import Decimal

import pytest
import yaml

from govops.service_items import SERVICE_ITEMS
from govops.settings import repo_root
from govops.settlement.catalog import CATALOG_FILE, CatalogError, load_catalog, parse_catalog

RAW = yaml.safe_load((repo_root() / CATALOG_FILE).read_text(encoding="utf-8"))


def test_the_bundled_catalog_has_every_item_in_every_version() -> None:
    catalog = load_catalog()
    for version in catalog.versions:
        assert set(version.items) == set(SERVICE_ITEMS)
    item = catalog.versions[0].items["07"]
    assert set(item.meters) == {"record", "table"}
    assert item.meters["record"].unit_size == 10_000 and item.meters["record"].billing_unit == "万条"


def test_the_version_in_force_prices_the_order() -> None:
    catalog = load_catalog()
    assert catalog.in_force(date(2025, 6, 30)).version == "2024.1"
    assert catalog.in_force(date(2025, 7, 1)).version == "2025.1"
    assert catalog.in_force(date(2025, 7, 1)).items["04"].meters["table"].bands[0].price == Decimal("450.00")
    assert catalog.in_force(date(2025, 7, 1)).items["02"] == catalog.in_force(date(2024, 1, 1)).items["02"]
    with pytest.raises(CatalogError, match="no catalog version is in force on 2023-12-31"):
        catalog.in_force(date(2023, 12, 31))


def broken(path: list, value) -> dict:
    data = copy.deepcopy(RAW)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


BANDS_01 = ["versions", 0, "items", 0, "meters", 0, "bands"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["versions", 0, "items", 0, "meters", 0, "unit"], "parsec", "item 01 meter 'parsec': unknown unit"),
        ([*BANDS_01, 1, "from"], 60, "item 01 meter 'record' band 2: gap: starts at 60"),
        ([*BANDS_01, 1, "from"], 40, "band 2: overlap: starts at 40"),
        ([*BANDS_01, 0, "price"], "-1", "band 1 price: must not be negative, got -1"),
        ([*BANDS_01, 2, "up_to"], 500, "the last band must have no upper bound"),
        (["versions", 0, "items", 0, "difficulty"], [1.5, 1], "item 01: difficulty range [1.5, 1]"),
        (["versions", 0, "items", 0, "cap"], "-5", "item 01 cap: must not be negative"),
        (["versions", 0, "items", 0, "name_zh"], None, "item 01: missing 'name_zh'"),
        (["versions", 0, "items", 3, "meters", 0, "unit"], "record", "item 04 meter 'record': item 04 is not metered"),
    ],
)
def test_invalid_entries_are_named(path, value, message: str) -> None:
    with pytest.raises(CatalogError) as err:
        parse_catalog(broken(path, value), "catalog.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("CATALOG_INVALID: catalog.yaml: version 2024.1")


def test_a_missing_item_is_reported() -> None:
    data = copy.deepcopy(RAW)
    del data["versions"][0]["items"][5]
    with pytest.raises(CatalogError, match=r"version 2024\.1: items 06 are missing"):
        parse_catalog(data)
