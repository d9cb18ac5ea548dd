"""Airflow plugin: the "Models" view (registered models, aliases, figures, deployments, drift).

Airflow 3 mounts the FastAPI app of ``fastapi_apps`` on the api-server under ``url_prefix``
(``/mlops``) and shows the ``external_views`` entry in the navigation (Browse → Models); with a
``url_route`` the page opens inside the Airflow UI, in an iframe at ``/plugin/mlops_models``.

Access: the page and its JSON go through Airflow's own check, the one the api-server applies to
its plugin listing (``requires_access_view(AccessView.PLUGINS)``): the browser's session cookie or
a bearer token from ``POST /auth/token``; without one the answer is 401, with a bad one 403.

MLflow is found through the ``mlflow_default`` connection (``MLOPS_UI_MLFLOW_CONN_ID`` names
another), else ``MLFLOW_TRACKING_URI``, exactly as the operators find it. The app is built on its
first request, so other Airflow processes that load plugins never import FastAPI or MLflow here.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops.ui.lazy import LazyASGIApp

URL_PREFIX = "/mlops"


def _tracking() -> Any:
    from airflow_mlops import settings
    from airflow_mlops.hooks.mlflow import MLflowHook

    return MLflowHook(settings.ui_mlflow_conn_id(MLflowHook.default_conn_name)).config


def _access() -> list[Any]:
    """Airflow's access check for the view, as FastAPI dependencies."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends

    return [Depends(requires_access_view(AccessView.PLUGINS))]


def _build() -> Any:
    from airflow_mlops.ui.app import create_app

    return create_app(_tracking, dependencies=_access())


app = LazyASGIApp(_build, label="airflow_mlops.ui.app:create_app")


class MLOpsUIPlugin(AirflowPlugin):
    """Serves the "Models" view and puts it in the Airflow navigation."""

    name = "mlops_ui"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "MLOps models"}]
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/",
            "url_route": "mlops_models",
            "destination": "nav",
            "category": "browse",
        }
    ]
