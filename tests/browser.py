"""Open an HTML report in a real headless Chromium: its DOM after scripts ran, a screenshot,
and what the browser made of its images.

Chromium is ``GOVOPS_CHROMIUM`` or ``chromium`` on PATH; ``./dev test`` installs Debian's
package when there is none (govops.runtime.bootstrap.ensure_chromium). Each call starts a
browser of its own with a throw-away profile, and opens nothing but the given page.
"""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

WINDOW = (1280, 2000)
TIMEOUT_S = 60
# Appended to a copy of a local page: after load, every <img> records the size it decoded
# to and every top-level <svg> the width it laid out at, as attributes the DOM dump keeps.
PROBE = """<script>window.addEventListener("load", () => {
  for (const img of document.images) {
    img.setAttribute("data-natural-width", img.naturalWidth);
    img.setAttribute("data-natural-height", img.naturalHeight);
  }
  for (const svg of document.querySelectorAll("svg:not(svg svg)")) {
    svg.setAttribute("data-rendered-width", Math.round(svg.getBoundingClientRect().width));
  }
});</script>
"""
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1", "--virtual-time-budget=5000",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--mute-audio", "--lang=zh-CN",
]  # fmt: skip


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


@dataclass(frozen=True)
class Image:
    alt: str
    src: str
    natural_width: int | None  # None: not measured (a page given by URL)
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
                                     int(height) if height.isdigit() else None))
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
    dom: str  # the serialized DOM after load and scripts (--dump-dom)
    screenshot: Path  # PNG of the first WINDOW of the page
    text: str  # the body's text, whitespace collapsed, without scripts, styles and SVG labels
    images: list[Image]
    svg_widths: list[int]  # laid-out width of each top-level <svg>, in CSS pixels


def render(page: str | Path, *, screenshot: Path | None = None) -> Rendered:
    """Open ``page`` (a file path, file:// or http(s):// URL) in headless Chromium; return the
    DOM, the text and a screenshot (``screenshot``, or a PNG in a temporary folder). A local
    page is opened as a copy with PROBE appended, so its images' decoded sizes are known."""
    work = Path(tempfile.mkdtemp(prefix="govops-browser-"))
    target = screenshot or work / "screenshot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    url = str(page)
    local = Path(url2pathname(urlparse(url).path)) if url.startswith("file://") else None if "://" in url else Path(url)
    if local is not None:
        copy = local.with_name(f".{local.stem}.probed.html") if os.access(local.parent, os.W_OK) else work / "page.html"
        copy.write_bytes(local.read_bytes() + PROBE.encode())
        url = copy.resolve().as_uri()
    try:
        # One browser does both (scripts run within the virtual-time budget); builds that
        # honour only one of the two actions get a second run for the other.
        dom = _run(work, "--dump-dom", f"--screenshot={target}", url)
        if not target.is_file():
            _run(work, f"--screenshot={target}", url)
        if "<html" not in dom:
            dom = _run(work, "--dump-dom", url)
    finally:
        if local is not None:
            copy.unlink(missing_ok=True)
        if screenshot is not None:
            shutil.rmtree(work, ignore_errors=True)
    if not target.is_file():
        raise AssertionError(f"Chromium wrote no screenshot of {page}")
    parsed = _Page()
    parsed.feed(dom)
    return Rendered(dom, target, " ".join(parsed.text), parsed.images, parsed.svg_widths)


def _run(work: Path, *args: str) -> str:
    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=work))  # a fresh profile per browser
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if result.returncode != 0:
        raise AssertionError(f"Chromium exited {result.returncode} on {args[-1]}:\n{result.stderr[-3000:]}")
    return result.stdout


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
