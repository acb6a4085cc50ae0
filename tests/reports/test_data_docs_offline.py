"""The GX data docs as a quality officer on a network without internet access sees them:
the project's rules worded as sentences, every stylesheet, script and font served by the
site itself, and in headless Chromium with the network blocked the pages styled, their
scripts run, and no request for anything but the site's own files.

The site is built once, by govops.quality.results.build_data_docs, from a validation result
made of figures (no Spark run) for a suite that uses every expectation type of the rule
library. Chromium is driven with Playwright (tests/browser.py), which reports every request
a page makes, file:// ones included, and refuses those that would leave the machine."""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from govops.quality import datadocs, results, suites
from govops.quality.expectations import CUSTOM_TYPES
from tests.browser import Traffic, assert_screenshot_not_blank, in_browser

if TYPE_CHECKING:
    from playwright.sync_api import Page


def _rule(kind: str, dimension: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"dimension": dimension}, "severity": "critical"}


SUITE = {
    "name": "offline.ingestion",
    "meta": {"govops": {"dataset": "raw/frontdb/public_security/persons", "side": "ingestion",
                        "thresholds": {"pass": 99, "warn": 90}}},
    "expectations": [
        _rule("expect_column_values_to_not_be_null", "completeness", column="id_number"),
        _rule("expect_column_values_to_be_valid_resident_id", "conformity", column="id_number"),
        _rule("expect_column_values_to_be_valid_uscc", "conformity", column="employer_uscc", mostly=0.95),
        _rule("expect_column_values_to_be_valid_mobile", "conformity", column="phone"),
        _rule("expect_column_values_to_be_valid_landline", "conformity", column="landline"),
        _rule("expect_column_values_to_not_be_in_future", "reasonableness", column="registered_on",
              date_format="yyyyMMdd"),
        _rule("expect_column_values_to_be_in_code_table", "conformity", column="gender", code_table="gender"),
        _rule("expect_column_pair_values_to_be_coordinates_in_range", "accuracy", column_A="lon", column_B="lat"),
        _rule("expect_column_pair_values_birth_date_to_match_resident_id", "consistency", column_A="birth_date",
              column_B="id_number"),
    ],
}  # fmt: skip

# What each type says in the data docs (in a column's section: without the column's name).
SENTENCES = {
    "expect_column_values_to_be_valid_resident_id":
        "values must be valid resident ID numbers (GB 11643). 值须为有效的公民身份号码（GB 11643）。",
    "expect_column_values_to_be_valid_uscc":
        "values must be valid unified social credit codes (GB 32100), at least 95 % of the time. "
        "值须为有效的统一社会信用代码（GB 32100），比例不低于 95 %。",
    "expect_column_values_to_be_valid_mobile":
        "values must be valid mobile phone numbers (11 digits starting 13-19). "
        "值须为有效的手机号码（11 位，以 13-19 开头）。",
    "expect_column_values_to_be_valid_landline": "values must be valid landline numbers (7-8 digits, optional area "
        "code and extension). 值须为有效的固定电话号码（7-8 位，可带区号和分机号）。",
    "expect_column_values_to_not_be_in_future": "values must be dates no later than today (text dates as yyyyMMdd). "
        "值须为不晚于今天的日期（文本日期格式 yyyyMMdd）。",
    "expect_column_values_to_be_in_code_table":
        "values must be codes of the code table gender. 值须为代码表 gender 中的代码。",
    "expect_column_pair_values_to_be_coordinates_in_range": "longitude lon and latitude lat must be numbers within "
        "longitude 73.5-135.1 and latitude 3.8-53.6 (China's extent). 经度 lon 和纬度 lat 须为数值，且在经度 "
        "73.5-135.1、纬度 3.8-53.6 范围内（中国范围）。",
    "expect_column_pair_values_birth_date_to_match_resident_id": "birth date birth_date must equal the birth date in "
        "the resident ID number id_number. 出生日期 birth_date 须与公民身份号码 id_number 中的出生日期一致。",
}  # fmt: skip


@dataclass(frozen=True)
class Site:
    root: Path
    index: Path
    suite_page: Path
    result_page: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    work = tmp_path_factory.mktemp("data-docs")
    (work / "offline.ingestion.json").write_text(json.dumps(SUITE), encoding="utf-8")
    suite = suites.load(work / "offline.ingestion.json")
    figures = [{"rule": r.name, "dimension": r.dimension, "severity": r.severity, "success": i % 2 == 0,
                "element_count": 1000, "missing_count": 0, "unexpected_count": 0 if i % 2 == 0 else 7,
                "partial_unexpected_list": [] if i % 2 == 0 else ["110105194912310021", "2999-01-01"],
                "observed_value": None, "evaluated_by": "single-pass"}
               for i, r in enumerate(suite.rules)]  # fmt: skip
    result = results.validation_result(suite, figures, run_name="manual__2026-08-01T00:00:00+00:00",
                                       run_time=datetime(2026, 8, 1, tzinfo=UTC), batch=suite.dataset)  # fmt: skip
    root = work / "site"
    page = results.build_data_docs(work / "gx", root, suite, result)
    return Site(root, root / "index.html", root / "expectations" / "offline" / "ingestion.html", page)


def _text(page: Path) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_the_rule_library_reads_as_sentences_in_the_data_docs(site: Site) -> None:
    assert set(SENTENCES) == set(CUSTOM_TYPES)
    for page in (site.result_page, site.suite_page):
        # GX puts a space between a parameter and the text after it.
        shown = re.sub(r" ([.。，,)）、])", r"\1", _text(page))
        for kind, sentence in SENTENCES.items():
            assert sentence in shown, (page, kind)
            assert f"{kind}(" not in shown, (page, kind)  # not GX's fallback: the type and its kwargs
        assert "(**" not in shown and "values must never be null" in shown  # GX's own wording is kept


_LOADS = re.compile(r"""\s(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""", re.I)


def test_every_page_loads_only_files_of_the_site(site: Site) -> None:
    pages = sorted(site.root.rglob("*.html"))
    assert len(pages) == 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r"""<(?:script|link|img)\b[^>]*?\s(?:src|href)=["']?((?:https?:)?//[^"'\s>]+)""", text)
        assert remote == [] and "url(http" not in text and "dataContextId" not in text, page
        local = [a or b for a, b in _LOADS.findall(text) if not re.match(r"(?:https?:|data:|#|mailto:)", a or b)]
        assert len([u for u in local if "static/vendor/" in u]) == len(datadocs.CDN) - 1, page  # one CSS per page kind
        for link in local:  # every link resolves to a file of the site
            assert (page.parent / link.split("?")[0]).resolve().is_file(), f"{page}: {link}"
    # Font Awesome's webfonts are there for its CSS.
    css = site.root / "static/vendor/@fortawesome/fontawesome-free@6.6.0/css/all.min.css"
    for font in set(re.findall(r"url\((\.\./webfonts/[^)]+)\)", css.read_text(encoding="utf-8"))):
        assert (css.parent / font).resolve().is_file(), font


def test_the_cdn_table_covers_gx_templates_and_the_files_are_the_ones_gx_pins() -> None:
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render/view/templates"
    loads = r"""<(?:script|link)\b[^>]*?\s(?:src|href)=["'](https?://[^"']+)"""
    linked = {url for t in templates.glob("*.j2") for url in re.findall(loads, t.read_text(encoding="utf-8"))}
    assert linked == set(datadocs.CDN)
    pinned = 0
    for t in templates.glob("*.j2"):
        for url, integrity in re.findall(r"""src="(https://[^"]+)" integrity="([^"]+)\"""", t.read_text()):
            algorithm = integrity.split("-", 1)[0]
            assert datadocs._sri(datadocs.vendored(*datadocs.CDN[url]), algorithm) == integrity, url
            pinned += 1
    assert pinned == 2  # popper.js and bootstrap.min.js
    total = sum(f.stat().st_size for f in datadocs.ASSETS_DIR.rglob("*") if f.is_file())
    assert total < 4_000_000
    for package, version in datadocs.files():
        assert (datadocs.ASSETS_DIR / f"{package}@{version}" / "LICENSE").is_file(), package


def test_a_page_that_would_still_load_from_another_host_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    with pytest.raises(datadocs.RemoteAssetError, match=rf"{page}: still loads https://cdn.example.org/x.js"):
        datadocs.localize_page('<script src="https://cdn.example.org/x.js"></script>', "static", page)
    with pytest.raises(datadocs.RemoteAssetError, match=r"//fonts\.googleapis\.com/css"):
        datadocs.localize_page("<style>@import '//fonts.googleapis.com/css';</style>", "static", page)
    with pytest.raises(datadocs.RemoteAssetError, match="a GX image with no local copy"):
        datadocs.localize_page('<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/new.png">',
                               "static", page)  # fmt: skip
    # Links a person follows are not loads.
    assert datadocs.localize_page('<a href="https://greatexpectations.io">GX</a>', "static", page).count("https") == 1


# --- Chromium (Playwright), the network blocked ---

PROBE = """() => {
  const style = (sel, prop) => { const e = document.querySelector(sel); return e ? getComputedStyle(e)[prop] : null; };
  const icon = document.querySelector('.fas, .far, .fa');
  const logo = document.querySelector('.navbar-brand img');
  return {
    navbar_display: style('nav.navbar', 'display'),
    padding: style('.container-fluid.pl-5', 'paddingLeft'),
    icon_font: icon ? getComputedStyle(icon, '::before').fontFamily : null,
    icon_font_loaded: [...document.fonts].some(f => f.family.includes('Font Awesome 6 Free') && f.status === 'loaded'),
    logo_width: logo ? logo.naturalWidth : null,
    scripts: {jquery: typeof window.jQuery, popper: typeof window.Popper, vega: typeof (window.vega && vega.View),
              vega_lite: typeof (window.vegaLite && vegaLite.compile), vega_embed: typeof window.vegaEmbed,
              bootstrap: typeof (window.jQuery && jQuery.fn.modal),
              bootstrap_table: typeof (window.jQuery && jQuery.fn.bootstrapTable),
              datepicker: typeof (window.jQuery && jQuery.fn.datepicker)},
  };
}"""


@dataclass
class Visit:
    traffic: Traffic  # every URL the page asked for, what was blocked and failed, script errors
    probe: dict[str, Any] = field(default_factory=dict)


def visit(url: str, screenshot: Path | None = None) -> Visit:
    """Open ``url``; what it requested, and the PROBE's findings once the page has loaded and
    its fonts are ready."""

    def steps(page: Page, traffic: Traffic) -> Visit:
        page.goto(url)
        page.evaluate("document.fonts.ready.then(() => new Promise(r => setTimeout(r, 500)))")
        probe = page.evaluate(PROBE)
        if screenshot is not None:
            page.screenshot(path=screenshot)
        return Visit(traffic, probe)

    return in_browser(steps)


@pytest.mark.browser
def test_data_docs_in_chromium_without_network(site: Site, tmp_path: Path) -> None:
    bare = tmp_path / "bare"  # the same site without its vendored files: what an offline viewer got before
    shutil.copytree(site.root, bare, ignore=shutil.ignore_patterns("vendor"))
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css">'
                     '<img src="http://203.0.113.9/pixel.png">', encoding="utf-8")  # fmt: skip
    visits = {page: visit(page.as_uri(), tmp_path / f"{page.stem}.png")
              for page in (site.index, site.suite_page, site.result_page)}  # fmt: skip
    unstyled = visit((bare / site.result_page.relative_to(site.root)).as_uri())
    control = visit(leaky.as_uri()).traffic

    # The harness sees requests that would leave, and refuses them.
    remote = sorted(u for u in control.requests if not u.startswith("file://"))
    assert remote == ["http://203.0.113.9/pixel.png",
                      "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"]  # fmt: skip
    assert sorted(control.blocked) == remote and sorted(control.failed) == remote, control.failed
    # Without the vendored files the page is unstyled and its scripts are missing.
    assert (unstyled.probe["navbar_display"], unstyled.probe["padding"]) == ("block", "0px")
    assert not unstyled.probe["icon_font_loaded"]
    assert unstyled.probe["scripts"]["jquery"] == "undefined"

    for page, seen in visits.items():
        traffic, probe = seen.traffic, seen.probe
        remote = [u for u in traffic.requests if not u.startswith(("file://", "data:"))]
        assert remote == [] and traffic.blocked == [], f"{page} asked for {remote}"
        assert traffic.failed == {} and traffic.errors == [], page
        assert any("/static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css" in u for u in traffic.requests)
        assert (probe["navbar_display"], probe["padding"]) == ("flex", "48px"), page  # Bootstrap's .navbar, .pl-5
        assert set(probe["scripts"].values()) == {"function"}, (page, probe["scripts"])
        assert probe["logo_width"] == 366, page  # GX's logo, from the site
        assert_screenshot_not_blank(tmp_path / f"{page.stem}.png")
    result = visits[site.result_page].probe
    # The status icons are Font Awesome's, its webfont loaded from the site.
    assert '"Font Awesome 6 Free"' in result["icon_font"] and result["icon_font_loaded"]
    assert any(u.endswith("/webfonts/fa-solid-900.woff2") for u in visits[site.result_page].traffic.requests)
