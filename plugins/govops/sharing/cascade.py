"""Cascade with upstream platforms (平台级联对接, seed 001 §2.2.2 and §3.6.3 目录对接).

A set whose spec lists platforms in ``cascade`` has its catalog registration reported to
each of them: ``register`` (注册) when it is first published or published again after a
closure, ``change`` (变更) when it is published again while open, ``revoke`` (撤销) when
it is closed. The platforms are declared in ``include/catalog/cascade.yaml``
(``GOVOPS_CASCADE_FILE``): this platform's id and name, and per upstream platform its name
and the Airflow connection holding its endpoint and the appKey and secret it issued to us
(URI ``https://<appKey>:<secret>@host/path``).

**The exchange format** (``govops-cascade/1``), one JSON document per message, sent as
``POST <endpoint>`` with ``Content-Type: application/json``::

    {"format": "govops-cascade/1", "message_id": "<uuid>", "action": "register|change|revoke",
     "from_platform": {"id": ..., "name": ...}, "sent_at": "<ISO 8601>",
     "resource": {"set": ..., "title": ..., "open_type": ..., "open_state": "open|closed",
                  "opened_at": ..., "published_at": ..., "closed_at": ..., "dataset_version": ...,
                  "spec_sha256": ...,
                  "catalog": {"dataset", "name", "provider_department", "update_frequency",
                              "share_type", "open_type", "classification"},
                  "fields": [{"name", "type", "description", "masked"}],
                  "interfaces": [{"name", "address", "method": "GET", "protocol": "HTTP(S)"}],
                  "docs": "<server>/docs/<set>"}}

``<server>`` is ``GOVOPS_API_PUBLIC_URL`` (the address callers outside reach), else the URL
the publication used.

Signed like this API's own signed calls: ``X-App-Key``, ``X-Timestamp`` (Unix seconds)
and ``X-Signature``, hex HMAC-SHA256 with the secret of
``POST\\n<path>\\n<timestamp>\\n<hex SHA-256 of the body>``. ``message_id`` is the same on
every attempt of one message (the platform, the set, the action and the publication or
closure it reports), so the receiving platform can drop a repeat. A 2xx answer is
``accepted``, a 4xx ``refused`` (a person must look: not retried), anything else
``unreachable`` (retried by the task). Every attempt is one ``govops.api_cascade`` row (级联对接记录), also written to
``<lake>/reports/sharing/cascade.xlsx`` and ``.csv``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine, text

from govops import settings
from govops.errors import CodedError
from govops.sharing.docs import INTERFACE_ZH, INTERFACES
from govops.sharing.spec import ApiSetSpec

FORMAT = "govops-cascade/1"
CONFIG = "include/catalog/cascade.yaml"
ACTION_ZH = {"register": "注册", "change": "变更", "revoke": "撤销"}
OUTCOME_ZH = {"accepted": "已接收", "refused": "被拒绝", "unreachable": "未送达"}


class CascadeError(CodedError, ValueError):
    code = "CASCADE_ERROR"


class CascadeRefused(CodedError):
    code = "CASCADE_REFUSED"


class PlatformUnreachable(Exception):
    """Not a CodedError: a retry may reach the platform."""


@dataclass(frozen=True)
class Platform:
    platform_id: str
    name: str
    connection: str


def config() -> tuple[dict[str, str], dict[str, Platform]]:
    """(this platform's id and name, the upstream platforms by id)."""
    import yaml

    path = Path(os.environ.get("GOVOPS_CASCADE_FILE") or settings.repo_root() / CONFIG)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    me = raw.get("platform") or {}
    if not me.get("id") or not me.get("name"):
        raise CascadeError(f"{path}: platform: needs id and name")
    platforms = {}
    for pid, item in (raw.get("upstream") or {}).items():
        if not isinstance(item, dict) or not item.get("name") or not item.get("connection"):
            raise CascadeError(f"{path}: upstream.{pid}: needs name and connection")
        platforms[pid] = Platform(pid, item["name"], item["connection"])
    return {"id": str(me["id"]), "name": str(me["name"])}, platforms


def _endpoint(platform: Platform) -> tuple[str, str, str]:
    """(URL, appKey, secret) of a platform, from its Airflow connection."""
    uri = settings._airflow_connection_uri(platform.connection)
    if not uri:
        raise CascadeError(f"platform {platform.platform_id}: no Airflow connection {platform.connection!r} "
                           "(URI https://<appKey>:<secret>@host/path)")  # fmt: skip
    parts = urlsplit(uri)
    if not parts.username or not parts.password or parts.scheme not in ("http", "https"):
        raise CascadeError(f"platform {platform.platform_id}: connection {platform.connection!r} needs "
                           "http(s)://<appKey>:<secret>@host/path")  # fmt: skip
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    path = unquote(parts.path)  # Airflow's get_uri() quotes the slashes of the path (its "schema")
    return f"{parts.scheme}://{netloc}{path}", unquote(parts.username), unquote(parts.password)


def signature(secret: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"POST\n{path}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def resource(engine: Engine, spec: ApiSetSpec, api_url: str) -> dict[str, Any]:
    """The set as the exchange format's ``resource``: its registry row and catalog entry."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM govops.api_set WHERE set_name = :s"), {"s": spec.set}).mappings().first()
        entry = conn.execute(text("""SELECT dataset, name, provider_department, update_frequency, share_type,
                                            open_type, classification FROM govops.data_catalog WHERE dataset = :d"""),
                             {"d": spec.catalog}).mappings().first()  # fmt: skip
    if row is None:
        raise CascadeError(f"set {spec.set} was never published: nothing to report")

    def moment(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    base = (os.environ.get("GOVOPS_API_PUBLIC_URL") or api_url).rstrip("/")  # what callers outside reach
    return {
        "set": spec.set, "title": spec.title, "open_type": spec.open_type, "open_state": row["open_state"],
        "opened_at": moment(row["opened_at"]), "published_at": moment(row["published_at"]),
        "closed_at": moment(row["closed_at"]),
        "dataset_version": row["dataset_version"], "spec_sha256": row["spec_sha256"],
        "catalog": dict(entry) if entry else {"dataset": spec.catalog},
        "fields": [{"name": n, "type": f.type, "description": f.description, "masked": n in spec.masking}
                   for n, f in spec.fields.items()],
        "interfaces": [{"name": INTERFACE_ZH[f"{r}.{f}"], "address": f"{base}/api/sets/{spec.set}/{r}.{f}",
                        "method": "GET", "protocol": "HTTP(S)"} for r, f in INTERFACES],
        "docs": f"{base}/docs/{spec.set}",
    }  # fmt: skip


def _action(engine: Engine, platform_id: str, set_name: str, open_state: str) -> str:
    """revoke for a closed set; else register unless the platform holds it (its last accepted
    message registered or changed it), then change."""
    if open_state == "closed":
        return "revoke"
    with engine.connect() as conn:
        last = conn.execute(text("""SELECT action FROM govops.api_cascade WHERE platform = :p AND set_name = :s
                                    AND outcome = 'accepted' ORDER BY id DESC LIMIT 1"""),
                            {"p": platform_id, "s": set_name}).scalar()  # fmt: skip
    return "change" if last in ("register", "change") else "register"


def check_platforms(spec: ApiSetSpec, path: Path) -> None:
    """SPEC_INVALID naming the file and ``cascade`` for a platform not in the config."""
    from govops.specs import SpecError

    if spec.cascade:
        unknown = [p for p in spec.cascade if p not in config()[1]]
        if unknown:
            raise SpecError(f"{path}: cascade: {', '.join(map(repr, unknown))} is not an upstream platform of "
                            f"{CONFIG}")  # fmt: skip


def report(engine: Engine, lake_root: str, spec: ApiSetSpec, api_url: str, *,
           now: datetime | None = None, timeout: float = 30) -> list[dict[str, Any]]:  # fmt: skip
    """Send the set's current state to every platform of its ``cascade``; one record per
    platform. Raises :class:`CascadeRefused` if a platform refused (4xx), CascadeError if
    one could not be reached (a retry may)."""
    import httpx

    if not spec.cascade:
        return []
    me, platforms = config()
    unknown = [p for p in spec.cascade if p not in platforms]
    if unknown:
        raise CascadeError(f"set {spec.set}: cascade: {', '.join(unknown)} not an upstream platform of {CONFIG}")
    body_resource = resource(engine, spec, api_url)
    results = []
    for pid in spec.cascade:
        url, app_key, secret = _endpoint(platforms[pid])
        action = _action(engine, pid, spec.set, body_resource["open_state"])
        sent_at = now or datetime.now(UTC)
        state = body_resource["closed_at"] if action == "revoke" else body_resource["published_at"]
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"govops-cascade|{pid}|{spec.set}|{action}|{state}"))
        payload = {"format": FORMAT, "message_id": message_id, "action": action, "from_platform": me,
                   "sent_at": sent_at.isoformat(timespec="seconds"), "resource": body_resource}  # fmt: skip
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-App-Key": app_key, "X-Timestamp": stamp,
                   "X-Signature": signature(secret, urlsplit(url).path or "/", stamp, body)}  # fmt: skip
        status: int | None = None
        try:
            answer = httpx.post(url, content=body, headers=headers, timeout=timeout)
            status, detail = answer.status_code, answer.text[:500]
            outcome = "accepted" if answer.is_success else "refused" if 400 <= status < 500 else "unreachable"
        except httpx.HTTPError as exc:
            outcome, detail = "unreachable", f"{type(exc).__name__}: {str(exc)[:300]}"
        with engine.begin() as conn:
            conn.execute(text("""INSERT INTO govops.api_cascade (message_id, platform, set_name, action, sent_at,
                                     outcome, http_status, detail, payload)
                                 VALUES (:m, :p, :s, :a, :t, :o, :h, :d, CAST(:b AS jsonb))"""),
                         {"m": message_id, "p": pid, "s": spec.set, "a": action, "t": sent_at, "o": outcome,
                          "h": status, "d": detail, "b": body.decode()})  # fmt: skip
        results.append({"platform": pid, "action": action, "outcome": outcome, "http_status": status,
                        "message_id": message_id, "detail": detail})  # fmt: skip
    write_records(engine, lake_root)
    refused = [r for r in results if r["outcome"] == "refused"]
    if refused:
        raise CascadeRefused("; ".join(f"platform {r['platform']} refused {r['action']} of {spec.set} "
                                       f"(HTTP {r['http_status']}): {r['detail'][:200]}" for r in refused))  # fmt: skip
    missed = [r for r in results if r["outcome"] == "unreachable"]
    if missed:
        raise PlatformUnreachable("; ".join(f"platform {r['platform']} not reached for {r['action']} of {spec.set}: "
                                     f"{r['detail'][:200]}" for r in missed))  # fmt: skip
    return results


RECORDS = {"sent_at": "发送时间", "platform": "级联平台", "set_name": "接口集", "action": "动作", "outcome": "结果",
           "http_status": "HTTP状态", "message_id": "消息编号", "detail": "说明"}  # fmt: skip


def write_records(engine: Engine, lake_root: str) -> dict[str, str]:
    """级联对接记录: every message sent, as ``cascade.xlsx`` and ``.csv`` under ``<lake>/reports/sharing/``."""
    from govops.sharing.publish import _table_writers, _write

    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT {', '.join(RECORDS)} FROM govops.api_cascade ORDER BY id")).mappings()
        rows = [{**r, "action": ACTION_ZH[r["action"]], "outcome": OUTCOME_ZH[r["outcome"]],
                 "message_id": str(r["message_id"])} for r in found]  # fmt: skip
    files = {f"cascade.{ext}": w for ext, w in _table_writers("级联对接记录", RECORDS, rows).items()}
    written = _write(f"{lake_root.rstrip('/')}/reports/sharing", files)
    return {"cascade_uri": written["cascade.xlsx"]}
