"""The ``mlflow`` connection: where the tracking server and the model registry are."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlops.core.registry.tracking import TrackingConfig

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


class MLflowHook(BaseHook):
    """Interact with an MLflow tracking server and model registry.

    The tracking URI comes from the connection: its host when that already carries a scheme
    (``http://mlflow:5000``, ``sqlite:////data/mlflow.db``), else ``<schema or http>://host:port``;
    ``extra.tracking_uri`` overrides both. Login and password become MLflow's basic-auth
    credentials. With no such connection the hook falls back to ``MLFLOW_TRACKING_URI``.

    :param mlflow_conn_id: the Airflow connection id (default ``mlflow_default``).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def config(self) -> TrackingConfig:
        """The resolved, frozen tracking settings handed to core functions."""
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            env_uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not env_uri:
                raise AirflowNotFoundException(
                    f"no Airflow connection {self.mlflow_conn_id!r} and MLFLOW_TRACKING_URI is not "
                    "set: add an `mlflow` connection (e.g. AIRFLOW_CONN_MLFLOW_DEFAULT="
                    '\'{"conn_type": "mlflow", "host": "http://127.0.0.1:5000"}\')'
                ) from None
            return TrackingConfig(tracking_uri=env_uri)
        extra = conn.extra_dejson or {}
        uri = extra.get("tracking_uri")
        host = conn.host or ""
        if not uri and "://" in host:
            uri = host
        elif not uri and host:
            scheme = conn.schema or "http"
            uri = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        if not uri:
            raise ValueError(
                f"connection {self.mlflow_conn_id!r} has no host or extra.tracking_uri"
            )
        return TrackingConfig(
            tracking_uri=uri,
            registry_uri=extra.get("registry_uri"),
            ui_url=extra.get("ui_url"),
            username=conn.login or None,
            password=conn.password or None,
        )

    def get_conn(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this connection's tracking and registry URIs."""
        return self.config.client()

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's "Test" button: lists one experiment."""
        try:
            self.get_conn().search_experiments(max_results=1)
        except Exception as exc:
            return False, f"cannot reach MLflow at {self.config.tracking_uri}: {exc}"
        return True, f"connected to MLflow at {self.config.tracking_uri}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the generic connection form for MLflow."""
        return {
            "hidden_fields": ["schema"],
            "relabeling": {
                "host": "Tracking URI or host",
                "login": "Username (basic auth)",
                "password": "Password (basic auth)",
            },
            "placeholders": {
                "host": "http://mlflow:5000",
                "extra": '{"ui_url": "http://localhost:5000", "registry_uri": null}',
            },
        }
