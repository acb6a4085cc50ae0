"""Pages in a real headless Chromium, driven with Playwright for Python: an HTML report's
DOM after its scripts ran, a screenshot and what the browser made of its images
(``render``), or any steps on a page (``in_browser``).

Chromium is ``GOVOPS_CHROMIUM`` or ``chromium`` on PATH (Playwright downloads no browser);
``./dev test`` installs Debian's package when there is none
(govops.runtime.bootstrap.ensure_chromium). One browser serves a whole test process; each
call gets a fresh context (no cookies, cache or storage from another call). Every request
for anything but this machine (127.0.0.1, localhost, file://) is refused and recorded.
"""

from __future__ import annotations

import atexit
import html.parser
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route, WebSocketRoute

T = TypeVar("T")
WINDOW = (1280, 2000)
TIMEOUT_S = 60
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    # Behind the routes below: whatever Chromium itself would fetch from outside goes to a
    # closed local port (loopback is never proxied).
    "--proxy-server=http://127.0.0.1:9",
]  # fmt: skip
# Any URL but this machine's (file:, data:, blob:, 127.0.0.1, localhost, [::1]). A pattern, not
# a Python function, so Playwright matches it itself and local requests never wait on Python.
REMOTE = re.compile(r"^(?!(?:file|data|blob):|[a-z]+://(?:127\.0\.0\.1|localhost|\[::1\])(?:[:/?#]|$))", re.I)
# After load, every <img> records the size it decoded to and every top-level <svg> the width
# it laid out at, as attributes the DOM dump keeps.
PROBE = """() => {
  for (const img of document.images) {
    img.setAttribute("data-natural-width", img.naturalWidth);
    img.setAttribute("data-natural-height", img.naturalHeight);
  }
  for (const svg of document.querySelectorAll("svg:not(svg svg)")) {
    svg.setAttribute("data-rendered-width", Math.round(svg.getBoundingClientRect().width));
  }
}"""
# Web fonts loaded and the layout of the next frame done.
SETTLED = "() => document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(null))))"


def chromium() -> str:
    """The browser binary; fails the test (not skips it) when there is none."""
    configured = os.environ.get("GOVOPS_CHROMIUM")
    found = shutil.which(configured) if configured else shutil.which("chromium") or shutil.which("chromium-browser")
    if configured and not found:
        pytest.fail(f"GOVOPS_CHROMIUM={configured} is not an executable Chromium")
    if not found:
        pytest.fail("no Chromium: run the tests with ./dev test, which installs Debian's chromium package, "
                    "set GOVOPS_CHROMIUM to a Chromium binary, or deselect with -m 'not browser'")  # fmt: skip
    return found


@dataclass
class Traffic:
    """What the pages of one ``in_browser`` call asked for."""

    requests: list[str] = field(default_factory=list)  # every URL, file:// and WebSockets included
    blocked: list[str] = field(default_factory=list)  # refused: they would have left the machine
    failed: dict[str, str] = field(default_factory=dict)  # URL -> Chromium's error
    errors: list[str] = field(default_factory=list)  # uncaught script exceptions


def _guard(context: BrowserContext, traffic: Traffic) -> None:
    def refuse(r: Route) -> None:
        traffic.blocked.append(r.request.url)
        r.abort("blockedbyclient")

    def refuse_socket(ws: WebSocketRoute) -> None:
        traffic.blocked.append(ws.url)
        ws.close()

    context.route(REMOTE, refuse)
    context.route_web_socket(REMOTE, refuse_socket)
    context.on("request", lambda r: traffic.requests.append(r.url))
    context.on("requestfailed", lambda r: traffic.failed.__setitem__(r.url, r.failure or "failed"))


class _Chromium:
    """The process's one Chromium, used from a thread of its own: Playwright's sync API marks
    its event loop as running in the thread that calls it, which would make ``asyncio.run``
    fail in every later test of the process (Airflow's task supervisor, the health tests)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[Browser], Any], Future[Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[Browser], T]) -> T:
        executable = chromium()  # in the test's thread: a missing browser fails the test
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, args=(executable,), name="chromium", daemon=True)
                self._thread.start()
                atexit.register(self._stop)
        done: Future[T] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self, executable: str) -> None:
        from playwright.sync_api import sync_playwright

        playwright, browser = None, None
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                if playwright is None:
                    playwright = sync_playwright().start()
                if browser is None or not browser.is_connected():
                    browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
                done.set_result(job(browser))
            except BaseException as error:  # handed to the test's thread
                done.set_exception(error)
        if browser is not None:
            browser.close()
        if playwright is not None:
            playwright.stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=30)


_CHROMIUM = _Chromium()


def in_browser(steps: Callable[[Page, Traffic], T]) -> T:
    """``steps(page, traffic)`` on a new page of a fresh context, WINDOW-sized, in Chinese;
    returns what ``steps`` returns. ``steps`` runs in the browser's thread (assertions in it
    fail the test as usual); ``traffic`` fills in as the page loads."""

    def job(browser: Browser) -> T:
        context = browser.new_context(viewport={"width": WINDOW[0], "height": WINDOW[1]}, device_scale_factor=1,
                                      locale="zh-CN")  # fmt: skip
        try:
            context.set_default_timeout(TIMEOUT_S * 1000)
            traffic = Traffic()
            _guard(context, traffic)
            page = context.new_page()
            page.on("pageerror", lambda e: traffic.errors.append(str(e)))
            page.on("websocket", lambda ws: traffic.requests.append(ws.url))
            return steps(page, traffic)
        finally:
            context.close()

    return _CHROMIUM.run(job)


@dataclass(frozen=True)
class Image:
    alt: str
    src: str
    natural_width: int | None  # the decoded size (0: it did not load; None: not measured)
    natural_height: int | None


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[Image] = []
        self.svg_widths: list[int] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            width, height = (a.get(f"data-natural-{k}", "") for k in ("width", "height"))
            self.images.append(Image(a.get("alt", ""), a.get("src", ""), int(width) if width.isdigit() else None,
                                     int(height) if height.isdigit() else None))  # fmt: skip
        elif tag == "svg" and "data-rendered-width" in a:
            self.svg_widths.append(int(a["data-rendered-width"]))
        if tag in ("script", "style", "title", "svg"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title", "svg"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(" ".join(data.split()))


@dataclass(frozen=True)
class Rendered:
    dom: str  # the serialized DOM after load and scripts
    screenshot: Path  # PNG of the first WINDOW of the page
    text: str  # the body's text, whitespace collapsed, without scripts, styles and SVG labels
    images: list[Image]
    svg_widths: list[int]  # laid-out width of each top-level <svg>, in CSS pixels
    traffic: Traffic  # nothing in it is blocked: render fails a page that reaches outside


def render(page: str | Path, *, screenshot: Path | None = None) -> Rendered:
    """Open ``page`` (a file path, file:// or http(s):// URL) in headless Chromium; return the
    DOM, the text and a screenshot (``screenshot``, or a PNG in a temporary folder). Fails
    when the page asks for anything outside this machine."""
    target = screenshot or Path(tempfile.mkdtemp(prefix="govops-browser-")) / "screenshot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    url = str(page) if "://" in str(page) else Path(page).resolve().as_uri()

    def steps(p: Page, traffic: Traffic) -> tuple[str, Traffic]:
        p.goto(url)
        p.evaluate(SETTLED)
        p.evaluate(PROBE)
        p.screenshot(path=target)
        return p.content(), traffic

    dom, traffic = in_browser(steps)
    assert traffic.blocked == [], f"{page} asked for {traffic.blocked}: pages must load nothing from outside"
    parsed = _Page()
    parsed.feed(dom)
    return Rendered(dom, target, " ".join(parsed.text), parsed.images, parsed.svg_widths, traffic)


def assert_screenshot_not_blank(
    png: Path, *, size: tuple[int, int] = WINDOW, min_colours: int = 64, min_ink: float = 0.02
) -> None:
    """The screenshot has the window's size and real content: at least ``min_colours``
    distinct colours (text anti-aliasing and charts give hundreds; an empty or error page
    a handful) and at least ``min_ink`` of its pixels not near-white."""
    from PIL import Image as PILImage

    with PILImage.open(png) as opened:
        image = opened.convert("RGB")
    assert image.size == size, f"{png}: {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]}"
    colours = image.getcolors(maxcolors=size[0] * size[1]) or []
    assert len(colours) >= min_colours, f"{png}: only {len(colours)} distinct colours: blank?"
    grey = image.convert("L")
    ink = sum(grey.histogram()[:240]) / (size[0] * size[1])
    assert ink >= min_ink, f"{png}: only {ink:.2%} of the pixels are not white: blank?"
