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
    credentials; the ``token`` field (or ``extra.token``) a bearer token. The connection form's
    fields (Tracking URI, Registry URI, UI URL, Token) are declared in the provider info. With
    no such connection the hook falls back to ``MLFLOW_TRACKING_URI``.

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
        extra = _form_fields(conn.extra_dejson or {})
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
            token=extra.get("token") or None,
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


def _form_fields(extra: dict[str, Any]) -> dict[str, Any]:
    """The connection's extra with the form's fields under their plain names: the connection
    form of older Airflow versions stored them as ``extra__mlflow__<field>``; empty fields of
    the form count as unset."""
    prefix = "extra__mlflow__"
    fields = {key.removeprefix(prefix): value for key, value in extra.items()}
    return {key: value for key, value in fields.items() if value not in (None, "")}
