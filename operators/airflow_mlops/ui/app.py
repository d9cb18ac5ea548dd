"""The FastAPI app behind the "Models" view: ``GET /`` (HTML) and ``GET /api/models`` (JSON).

The app does not know where MLflow is: it calls ``resolve_tracking()`` on every request, so a
connection edited in Airflow takes effect without a restart. Both routes answer 503 with the
reason (no connection, MLflow down) instead of a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.ui import overview, render


def create_app(
    resolve_tracking: Callable[[], TrackingConfig],
    *,
    title: str = "Models",
    max_versions: int = overview.DEFAULT_MAX_VERSIONS,
    timeout: float = 5.0,
    dependencies: Sequence[Any] = (),
) -> FastAPI:
    """Build the app.

    :param resolve_tracking: returns where MLflow is (the plugin reads the ``mlflow_default``
        connection, or ``MLFLOW_TRACKING_URI``); an exception it raises becomes a 503 page that
        carries its message.
    :param title: the page heading.
    :param max_versions: newest versions shown per model (aliased/deployed ones always are).
    :param timeout: seconds to wait for MLflow's ``/health`` before answering 503.
    :param dependencies: FastAPI dependencies every page and API route runs first (the plugin
        passes Airflow's access check); ``/health`` stays open and says nothing about models.
    """
    app = FastAPI(title="airflow-mlops models", docs_url=None, redoc_url=None, openapi_url=None)
    pages = APIRouter(dependencies=list(dependencies))

    def load(model: str | None) -> overview.Overview:
        return overview.gather(
            resolve_tracking(), name=model, max_versions=max_versions, timeout=timeout
        )

    @pages.get("/", response_class=HTMLResponse)
    def models_page(model: str | None = Query(None, description="one registered model")) -> Any:
        try:
            data = load(model)
        except Exception as exc:
            return HTMLResponse(render.page(None, error=_reason(exc), title=title), status_code=503)
        return HTMLResponse(render.page(data, title=title))

    @pages.get("/api/models")
    def models_json(model: str | None = Query(None, description="one registered model")) -> Any:
        try:
            data = load(model)
        except Exception as exc:
            return JSONResponse({"detail": _reason(exc)}, status_code=503)
        return data.to_dict()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(pages)
    return app


def _reason(exc: Exception) -> str:
    # Unexpected failures still say what they are; the message of a UIError already names MLflow.
    if isinstance(exc, overview.UIError):
        return str(exc)
    return f"cannot show the models: {type(exc).__name__}: {exc}"
