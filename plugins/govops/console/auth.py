"""Who may use the console: Airflow's own authentication on every route, and a role per action.

Airflow 3 does not protect a plugin's FastAPI app: each route depends on :data:`Reader` (any
user Airflow authenticates, by ``Authorization: Bearer <JWT>`` or the UI's ``_token``
cookie) or on :func:`allowed_to` (that user, and a role allowed to do the action).

With the simple auth manager, the role is the user's (``viewer`` < ``user`` < ``op`` <
``admin``) and :data:`MINIMUM_ROLE` says which role an action needs. With any other auth
manager, an action is the custom view ``govops.<action>`` with method ``POST``, granted
through that manager (for FAB: a permission given to a role).

The full anomaly list of a quality check (the records in clear) lies in the data owner's
zone; :func:`may_see_owner_zone` says who may read it from the console.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Connection, text

# What changes money or the record needs more than reading it.
MINIMUM_ROLE = {
    "usage.assign": "op",  # move unassigned usage to a work order
    "statement.settle": "op",  # recompute a draft statement
    "event_order.handle": "op",  # acknowledge, resolve
    "event_order.evaluate": "admin",  # 事后评估, which may take a contract penalty
    "work_order.accept": "admin",  # work-order state changes and service-order acceptance (验收)
    "period.close": "admin",  # final: a closed period never changes
}


def user_name(user: BaseUser) -> str:
    return user.get_name()


def may(user: BaseUser, action: str) -> bool:
    """Whether ``user`` may do ``action`` (one of MINIMUM_ROLE)."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager, SimpleAuthManagerRole

    manager: Any = get_auth_manager()
    if isinstance(manager, SimpleAuthManager):
        role = getattr(user, "role", None)
        if not role or role.upper() not in SimpleAuthManagerRole.__members__:
            return False
        return SimpleAuthManagerRole[role.upper()].order >= SimpleAuthManagerRole[MINIMUM_ROLE[action].upper()].order
    return bool(manager.is_authorized_custom_view(method="POST", resource_name=f"govops.{action}", user=user))


def _reader(request: Request, user: GetUserDep) -> BaseUser:
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return user


Reader = Annotated[BaseUser, Depends(_reader)]


def allowed_to(action: str) -> Callable[..., BaseUser]:
    """A dependency: the authenticated user, refused (403) unless allowed to ``action``. A
    browser's cross-site form post is refused too (its Origin is not this server)."""
    if action not in MINIMUM_ROLE:
        raise ValueError(f"unknown console action {action!r}")

    def check(request: Request, user: GetUserDep) -> BaseUser:
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"cross-site request from {origin} refused")
        if not may(user, action):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{user.get_name()} may not {action}: the role "
                                                           f"{MINIMUM_ROLE[action]} or higher is needed")  # fmt: skip
        return user

    return check


def may_see_owner_zone(conn: Connection, user: BaseUser, department: str, dataset: str) -> str | None:
    """Why ``user`` may read the full anomaly list of ``department``'s zone for a check of
    ``dataset``, or None. Two ways: a live grant in the security services' access register
    (``govops.security_access_grant``) for the user's name on ``dataset``, the records the
    list repeats in clear (``grant <id>``); or the auth manager's word: with the simple auth
    manager the ``admin`` role (the services' custodian), otherwise the custom view
    ``govops.owner_zone.<department>`` with method ``GET``."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    grant = conn.execute(
        text("""SELECT id FROM govops.security_access_grant
                 WHERE principal = :p AND dataset = :d AND revoked_at IS NULL ORDER BY id LIMIT 1"""),
        {"p": user_name(user), "d": dataset},
    ).scalar()
    if grant is not None:
        return f"grant {grant}"
    manager: Any = get_auth_manager()
    if isinstance(manager, SimpleAuthManager):
        return "role admin" if (getattr(user, "role", None) or "").lower() == "admin" else None
    resource = f"govops.owner_zone.{department}"
    return f"view {resource}" if manager.is_authorized_custom_view(method="GET", resource_name=resource,
                                                                   user=user) else None  # fmt: skip
