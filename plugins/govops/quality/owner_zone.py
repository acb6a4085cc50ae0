"""The data owner's zone of the lake, ``<lake>/owner/<department>/``: the only place the full
anomaly list of a quality check (with ID and phone numbers in clear) is kept.

The seed allows the full list only there. On a ``file://`` lake its folders are made 0700
and its files 0600 (the account that runs the services, as the owner's custodian); on HDFS
or an object store, access to ``owner/`` is the cluster's ACLs to set.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

ZONE = "owner"


def suite_folder(suite: Any) -> str:
    """A suite's folder under the owner zone: ``<department>/quality/<suite>``."""
    return f"{suite.owner}/quality/{suite.name}"


def uri(lake_root: str, relative: str) -> str:
    return f"{lake_root.rstrip('/')}/{ZONE}/{relative}"


def restrict(lake_root: str, relative: str) -> None:
    """Folders 0700 and files 0600, from ``<lake>/owner`` down to and under ``relative``, on a
    file:// lake (elsewhere, nothing: see the module's note)."""
    if not lake_root.startswith("file:"):
        return
    top = unquote(urlparse(lake_root.rstrip("/")).path)
    folder = os.path.join(top, ZONE)
    for part in ["", *relative.strip("/").split("/")]:
        folder = os.path.join(folder, part) if part else folder
        if not os.path.isdir(folder):
            return
        os.chmod(folder, 0o700)
    for where, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(where, name), 0o700)
        for name in files:
            os.chmod(os.path.join(where, name), 0o600)
