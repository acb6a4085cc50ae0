"""Ship the govops package to Spark executors as a zip for ``--py-files``.

Built at task run time (never at DAG parse time) into GOVOPS_HOME/build, named by the
hash of its contents, so concurrent tasks share one immutable file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

from govops import settings

# Files Spark never reads: the data docs' web assets are copied on the Airflow side.
NOT_SHIPPED = ("__pycache__", "datadocs_assets")


def _sources() -> list[Path]:
    return sorted(
        p for p in settings.PACKAGE_DIR.rglob("*") if p.is_file() and not any(n in p.parts for n in NOT_SHIPPED)
    )


def build_zip() -> Path:
    root = settings.PACKAGE_DIR.parent
    files = _sources()
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    target = settings.home() / "build" / f"govops-{digest.hexdigest()[:16]}.zip"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root))
    os.replace(tmp, target)  # atomic: readers see a whole zip or none
    return target
