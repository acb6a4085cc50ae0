"""GX data docs that work offline: the site serves its own stylesheets, scripts and fonts.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega and a few
more from public CDNs, and its logo from GX's S3 bucket with the data context's id in the
query string. On a network without internet access the pages render as unstyled text, and
every view tells a third party who reads them. ``localize`` copies the same files, at the
versions GX names, from ``datadocs_assets/`` into ``<site>/static/vendor/`` and rewrites
each page's links to relative ones; the logo becomes the copy GX puts in
``<site>/static/images/``. A page that still loads anything from another host (a GX
upgrade that changed a link) is an error naming the page and the URL, never a silent leak.

``datadocs_assets/`` holds the files from the npm packages (``<package>@<version>/<path in
the package>`` plus the package's licence); ``python -m govops.quality.datadocs refresh``
fetches them again with ``npm pack``. Where GX pins a file by its SRI hash, the vendored
file must have that hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ASSETS_DIR = Path(__file__).with_name("datadocs_assets")

# GX 1.24's CDN link -> (npm package, version, file in the package). jsDelivr serves
# `vega@5` as the newest 5.x release: pinned to the one it served when vendored.
CDN: dict[str, tuple[str, str, str]] = {
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega", "5.33.1", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite", "5.23.0", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed", "6.29.0", "build/vega-embed.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        ("@fortawesome/fontawesome-free", "6.6.0", "css/all.min.css"),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery", "3.7.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        ("popper.js", "1.12.9", "dist/umd/popper.min.js"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        ("bootstrap", "4.3.1", "dist/js/bootstrap.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        ("bootstrap", "4.3.1", "dist/css/bootstrap.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        ("bootstrap-table", "1.19.1", "dist/bootstrap-table.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        ("bootstrap-table", "1.19.1", "dist/bootstrap-table.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        ("bootstrap-table", "1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        ("bootstrap-table", "1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        ("bootstrap-table", "1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        ("bootstrap-datepicker", "1.9.0", "dist/css/bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        ("bootstrap-datepicker", "1.9.0", "dist/js/bootstrap-datepicker.min.js"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        ("@forevolve/bootstrap-dark", "1.1.0", "dist/css/bootstrap-prefers-dark.css"),
}  # fmt: skip

# Files the vendored files load themselves: Font Awesome's CSS names its webfonts as ../webfonts/.
LOADED_BY_ASSETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("@fortawesome/fontawesome-free", "6.6.0"): tuple(
        f"webfonts/fa-{name}.{ext}" for name in ("brands-400", "regular-400", "solid-900", "v4compatibility")
        for ext in ("woff2", "ttf")),
}  # fmt: skip

# GX's images on its S3 bucket -> the copy GX itself puts into <site>/static/images/ (it
# ships no dark variant of the logo, so the dark theme shows the same one).
GX_IMAGES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}
_GX_BUCKET = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/(?P<name>[\w.-]+)(?:\?[^\"'\s)<>]*)?"
)
# GX's own links into the site's static/ folder (its favicon link on a result page climbs one
# folder too few): all made relative to the page again.
_STATIC = re.compile(r"""(?<=["'(])(?:\./|(?:\.\./)+)static/(?=images/|styles/|fonts/)""")
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""\s(?P<name>src|href|integrity|crossorigin)\s*=\s*(?P<q>["'])(?P<value>.*?)(?P=q)""", re.I)
# What a browser fetches by itself: element sources, stylesheet/icon links, CSS url() and
# @import. Plain <a href> links are followed only when clicked.
_REMOTE = re.compile(
    r"""<(?:script|link|img|iframe|frame|source|embed|object|video|audio|track|input)\b[^>]*?"""
    r"""\s(?:src|href|data|srcset|poster)\s*=\s*["']?\s*(?P<a>(?:https?:)?//[^"'\s>]+)"""
    r"""|url\(\s*["']?\s*(?P<b>(?:https?:)?//[^"')\s]+)|@import\s+["'](?P<c>(?:https?:)?//[^"']+)""",
    re.IGNORECASE,
)


class RemoteAssetError(RuntimeError):
    """A data docs page would load something from another host."""


def vendored(package: str, version: str, path: str) -> Path:
    return ASSETS_DIR / f"{package}@{version}" / path


@functools.cache
def _sri(file: Path, algorithm: str) -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, file.read_bytes()).digest()).decode()}"


def _local_tag(tag: str, static: str) -> str:
    """A <script>/<link> tag pointing at its vendored copy. Its SRI hash is checked here
    against the copy and then dropped with ``crossorigin``: a file:// page cannot make the
    CORS request that SRI needs."""
    attrs = {m["name"].lower(): m["value"] for m in _ATTR.finditer(tag)}
    url = attrs.get("src") or attrs.get("href")
    if url not in CDN:
        return tag
    package, version, path = CDN[url]
    if integrity := attrs.get("integrity"):
        algorithm = integrity.split("-", 1)[0]
        if _sri(vendored(package, version, path), algorithm) != integrity:
            raise RemoteAssetError(f"{vendored(package, version, path)}: not the file GX pins for {url} "
                                   f"({integrity}): refresh the vendored assets")  # fmt: skip
    local = f"{static}/vendor/{package}@{version}/{path}"
    return _ATTR.sub(lambda m: "" if m["name"].lower() in ("integrity", "crossorigin") else
                     m[0].replace(m["value"], local) if m["value"] == url else m[0], tag)  # fmt: skip


def _gx_image(match: re.Match[str], static: str, page: Path) -> str:
    name = match["name"]
    if name not in GX_IMAGES:
        raise RemoteAssetError(f"{page}: loads {match[0]}, a GX image with no local copy")
    return f"{static}/images/{GX_IMAGES[name]}"


def localize_page(html: str, static: str, page: Path) -> str:
    """``html`` with every CDN link and GX image pointing under ``static`` (the site's
    static/ folder, relative to the page); raises RemoteAssetError if anything remote is left."""
    html = _TAG.sub(lambda m: _local_tag(m[0], static), html)
    html = _GX_BUCKET.sub(lambda m: _gx_image(m, static, page), html)
    html = _STATIC.sub(f"{static}/", html)
    if remote := sorted({m["a"] or m["b"] or m["c"] for m in _REMOTE.finditer(html)}):
        raise RemoteAssetError(f"{page}: still loads {', '.join(remote)}: add it to govops.quality.datadocs.CDN")
    return html


def localize(site_dir: Path) -> list[Path]:
    """Copy the vendored assets into ``<site_dir>/static/vendor/`` and point every page of
    the site at them; returns the pages."""
    static = site_dir / "static"
    shutil.copytree(ASSETS_DIR, static / "vendor", dirs_exist_ok=True, ignore=shutil.ignore_patterns(".gitignore"))
    pages = sorted(site_dir.rglob("*.html"))
    for page in pages:
        html = page.read_text(encoding="utf-8")
        local = localize_page(html, Path(os.path.relpath(static, page.parent)).as_posix(), page)
        if local != html:
            page.write_text(local, encoding="utf-8")
    return pages


def files() -> dict[tuple[str, str], list[str]]:
    """Every vendored file by (package, version): what the pages link and what those load."""
    wanted: dict[tuple[str, str], list[str]] = {}
    for package, version, path in CDN.values():
        wanted.setdefault((package, version), []).append(path)
    for key, paths in LOADED_BY_ASSETS.items():
        wanted.setdefault(key, []).extend(paths)
    return wanted


def refresh(target: Path = ASSETS_DIR) -> None:
    """Fetch the files again with ``npm pack <package>@<version>`` (needs npm and the npm
    registry): each package's files and its licence file. A package whose tarball has no
    licence file (vega, popper.js) keeps the LICENSE written by hand from its package.json
    and file headers."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("refresh needs npm (Debian: apt-get install npm)")
    for (package, version), paths in files().items():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            (tarball,) = Path(tmp).glob("*.tgz")
            with tarfile.open(tarball) as archive:
                archive.extractall(tmp, filter="data")
            source, dest = Path(tmp) / "package", target / f"{package}@{version}"
            for path in paths:
                (dest / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / path, dest / path)
            licences = [p for p in source.iterdir() if p.name.upper().startswith(("LICENSE", "LICENCE"))]
            if licences:
                shutil.copyfile(licences[0], dest / "LICENSE")
            elif not (dest / "LICENSE").is_file():
                raise SystemExit(f"{package}@{version} ships no licence file: write {dest / 'LICENSE'}")
        print(f"{package}@{version}: {len(paths)} files")


if __name__ == "__main__":
    if sys.argv[1:] != ["refresh"]:
        raise SystemExit("usage: python -m govops.quality.datadocs refresh")
    refresh()
