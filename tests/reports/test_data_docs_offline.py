"""The GX data docs as a quality officer on a network without internet access sees them:
the project's rules worded as sentences, every stylesheet, script and font served by the
site itself, and in headless Chromium with the network blocked the pages styled, their
scripts run, and no request for anything but the site's own files.

The site is built once, by govops.quality.results.build_data_docs, from a validation result
made of figures (no Spark run) for a suite that uses every expectation type of the rule
library. Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe),
which reports every request a page makes, file:// ones included."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import html
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from govops.quality import datadocs, results, suites
from govops.quality.expectations import CUSTOM_TYPES
from tests.browser import FLAGS, WINDOW, assert_screenshot_not_blank, chromium


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
    linked = {url for t in templates.glob("*.j2") for url in re.findall(
        r"""<(?:script|link)\b[^>]*?\s(?:src|href)=["'](https?://[^"']+)""", t.read_text(encoding="utf-8"))}
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


# --- Chromium over the DevTools protocol, the network blocked ---

# Nothing resolves and every connection goes to a closed local port: a request that escaped
# the checks below still could not leave the machine.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>"]
PROBE = """(() => {
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
})()"""


@dataclass
class Visit:
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    failed: dict[str, str] = field(default_factory=dict)  # URL -> Chromium's error
    errors: list[str] = field(default_factory=list)  # uncaught script exceptions
    probe: dict[str, Any] = field(default_factory=dict)


class DevTools:
    """One Chromium, driven over --remote-debugging-pipe: Chromium reads commands on fd 3 and
    writes replies and events on fd 4, JSON messages ended by NUL."""

    def __init__(self, *flags: str) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="govops-devtools-"))
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()
        # Out of the way of 3 and 4, which the child's copies take.
        to_chrome, from_chrome = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome))

        def remap() -> None:
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        self._log = (self._work / "chromium.log").open("wb")
        live = [f for f in FLAGS if not f.startswith("--virtual-time-budget")]  # real timers: the page is driven
        self.process = subprocess.Popen(
            [chromium(), *live, f"--user-data-dir={self._work / 'profile'}", "--remote-debugging-pipe", *flags],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=remap, pass_fds=(3, 4),
        )  # fmt: skip
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                log = (self._work / "chromium.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"Chromium did not answer (exit {self.process.poll()}):\n{log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read(deadline))

    def visit(self, url: str, screenshot: Path | None = None) -> Visit:
        """Open ``url`` in a new tab; what it requested, what failed, and the PROBE's findings
        once the page has loaded and its fonts are ready."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            self.call(f"{domain}.enable", session)
        self.call("Emulation.setDeviceMetricsOverride", session, width=WINDOW[0], height=WINDOW[1],
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.events.clear()
        self.call("Page.navigate", session, url=url)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", session, expression="document.fonts.ready.then(() => new Promise("
                  "r => setTimeout(r, 500)))", awaitPromise=True)  # fmt: skip
        probe = self.call("Runtime.evaluate", session, expression=PROBE, returnByValue=True)["result"]["value"]
        if screenshot is not None:
            screenshot.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session)["data"]))
        self.call("Target.closeTarget", targetId=target)
        visit, urls = Visit(probe=probe), {}
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
                visit.requests.append(p["request"]["url"])
            elif e.get("method") == "Network.loadingFailed":
                visit.failed[urls.get(p["requestId"], p["requestId"])] = p.get("blockedReason") or p["errorText"]
            elif e.get("method") == "Runtime.exceptionThrown":
                visit.errors.append(p["exceptionDetails"].get("exception", {}).get("description", str(p)))
        return visit

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # it closes the pipe as it exits
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._in)
        os.close(self._out)
        self._log.close()
        shutil.rmtree(self._work, ignore_errors=True)


@pytest.mark.browser
def test_data_docs_in_chromium_without_network(site: Site, tmp_path: Path) -> None:
    bare = tmp_path / "bare"  # the same site without its vendored files: what an offline viewer got before
    shutil.copytree(site.root, bare, ignore=shutil.ignore_patterns("vendor"))
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css">'
                     '<img src="http://203.0.113.9/pixel.png">', encoding="utf-8")  # fmt: skip
    browser = DevTools(*OFFLINE)
    try:
        visits = {page: browser.visit(page.as_uri(), tmp_path / f"{page.stem}.png")
                  for page in (site.index, site.suite_page, site.result_page)}  # fmt: skip
        unstyled = browser.visit((bare / site.result_page.relative_to(site.root)).as_uri())
        control = browser.visit(leaky.as_uri())
    finally:
        browser.close()

    # The harness sees requests that would leave, and the network is blocked for them.
    remote = sorted(u for u in control.requests if not u.startswith("file://"))
    assert remote == ["http://203.0.113.9/pixel.png",
                      "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"]
    assert sorted(control.failed) == remote, control.failed
    # Without the vendored files the page is unstyled and its scripts are missing.
    assert (unstyled.probe["navbar_display"], unstyled.probe["padding"]) == ("block", "0px")
    assert not unstyled.probe["icon_font_loaded"]
    assert unstyled.probe["scripts"]["jquery"] == "undefined"

    for page, visit in visits.items():
        remote = [u for u in visit.requests if not u.startswith(("file://", "data:"))]
        assert remote == [], f"{page} asked for {remote}"
        assert visit.failed == {} and visit.errors == [], page
        assert any("/static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css" in u for u in visit.requests)
        probe = visit.probe
        assert (probe["navbar_display"], probe["padding"]) == ("flex", "48px"), page  # Bootstrap's .navbar, .pl-5
        assert set(probe["scripts"].values()) == {"function"}, (page, probe["scripts"])
        assert probe["logo_width"] == 366, page  # GX's logo, from the site
        assert_screenshot_not_blank(tmp_path / f"{page.stem}.png")
    result = visits[site.result_page].probe
    # The status icons are Font Awesome's, its webfont loaded from the site.
    assert '"Font Awesome 6 Free"' in result["icon_font"] and result["icon_font_loaded"]
    assert any(u.endswith("/webfonts/fa-solid-900.woff2") for u in visits[site.result_page].requests)
