"""The operators' and settlement console (计量结算) inside the Airflow UI.

``plugins/govops_console_plugin.py`` mounts :data:`app` under ``/govops`` in Airflow's
api-server and lists the pages as external views, so they open inside the Airflow UI.
The real FastAPI app (``govops.console.app``) is built on the first request: every
Airflow process loads plugins, and only the api-server serves this one.
"""

from __future__ import annotations

from typing import Any

URL_PREFIX = "/govops"


class LazyApp:
    """An ASGI app that builds the console on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from govops.console.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


app = LazyApp()
