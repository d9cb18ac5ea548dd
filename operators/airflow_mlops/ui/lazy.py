"""An ASGI app that builds the real one on its first request.

Airflow imports every plugin module in the scheduler, the dag-processor and each worker, where
the view is never served; building the FastAPI app lazily keeps FastAPI and the MLflow client
out of those processes.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class LazyASGIApp:
    """Call ``factory()`` once, on first use, and forward every ASGI call to what it returns.

    :param factory: builds the ASGI app (e.g. ``lambda: create_app(...)``).
    :param label: what ``str()`` shows (Airflow's plugin listing prints the app).
    """

    def __init__(self, factory: Callable[[], ASGIApp], label: str) -> None:
        self._factory = factory
        self._label = label
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> ASGIApp:
        """The real app, built on first access."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"<LazyASGIApp {self._label}>"
