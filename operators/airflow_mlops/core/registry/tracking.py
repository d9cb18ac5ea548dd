"""How core code reaches MLflow: a frozen settings object handed down from the hook."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow_mlops import settings
from airflow_mlops.exceptions import MLOpsTransientError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


class MLflowUnreachable(MLOpsTransientError, ConnectionError):
    """The tracking server did not answer; the message names it and the time waited."""


# MLflow's REST client reads credentials from the environment on every request, so the
# connection's credentials are put there for the duration of each call and taken out after.
# The environment is one per process: calls that carry credentials take turns.
_CREDENTIALS_LOCK = threading.RLock()
_CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


class _CredentialedClient:
    """An ``MlflowClient`` whose every method call runs with its connection's credentials."""

    def __init__(self, client: Any, scope: Callable[[], Any]) -> None:
        self._client = client
        self._scope = scope

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._scope():
                return attr(*args, **kwargs)

        return call


@dataclass(frozen=True)
class TrackingConfig:
    """Where MLflow is.

    :param tracking_uri: the tracking server (``http://...``) or store URI (``sqlite:///...``).
    :param registry_uri: a separate registry, if any (default: the tracking URI).
    :param ui_url: base URL of the MLflow UI for links (default: the tracking URI when it is
        ``http(s)``).
    :param username: basic-auth user.
    :param password: basic-auth password.
    :param token: bearer token (what ``MLFLOW_TRACKING_TOKEN`` carries).

    The credentials given here are the ones MLflow sends: while a call of :meth:`client` or a
    block of :meth:`activate` runs they replace any ``MLFLOW_TRACKING_*`` credential of the
    environment, which is put back afterwards. They never appear in the ``repr``.
    """

    tracking_uri: str
    registry_uri: str | None = None
    ui_url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def ui_base(self) -> str | None:
        if self.ui_url:
            return self.ui_url.rstrip("/")
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri.rstrip("/")
        return None

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        base = self.ui_base
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None

    def model_version_url(self, name: str, version: str) -> str | None:
        base = self.ui_base
        return f"{base}/#/models/{name}/versions/{version}" if base else None

    def check_reachable(self, timeout: float = 10.0) -> None:
        """Fail within ``timeout`` seconds when an ``http(s)`` tracking server does not answer.

        MLflow's client retries a dead server for minutes before it gives up; a task asks this
        first so that it fails at once, naming the server (Airflow's retries still apply). Any
        HTTP answer counts as reachable: authentication and the rest are MLflow's to judge.
        """
        import urllib.error
        import urllib.request

        uri = self.tracking_uri
        if not uri.startswith(("http://", "https://")):
            return
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
                return
        except urllib.error.HTTPError:
            return
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MLflowUnreachable(
                f"cannot reach MLflow at {uri} within {timeout:g} s: {reason}"
            ) from exc

    def artifact_root(self) -> str | None:
        """Where new experiments keep artifacts when MLflow is a database, not a server.

        A tracking server decides that itself, and a ``file:`` store keeps them inside its
        folder; a database URI used directly would put them in ``./mlruns`` of whatever
        directory the worker runs in. ``sqlite:///dir/mlflow.db`` gets ``dir/mlruns``; other
        databases ``$MLOPS_HOME/mlruns``.
        """
        uri = self.tracking_uri
        if uri.startswith(("http://", "https://", "databricks")) or "://" not in uri:
            return None
        if uri.startswith("file:"):
            return None
        if uri.startswith("sqlite:///"):
            path = uri.removeprefix("sqlite:///")
            return Path(path).resolve().parent.joinpath("mlruns").as_uri()
        return Path(settings.mlops_home()).resolve().joinpath("mlruns").as_uri()

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing (with :meth:`artifact_root`)."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=self.artifact_root()))
        except MlflowException:  # created meanwhile by a parallel task
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _credentials(self) -> dict[str, str]:
        found = zip(_CREDENTIAL_VARIABLES, (self.username, self.password, self.token), strict=True)
        return {key: value for key, value in found if value}

    @contextmanager
    def credentials(self) -> Iterator[None]:
        """This connection's credentials, and only those, in MLflow's environment variables
        for the block; the environment is put back exactly as it was afterwards. Without
        credentials the block runs as it is (whatever the environment says applies)."""
        mine = self._credentials()
        if not mine:
            yield
            return
        with _CREDENTIALS_LOCK:
            saved = {key: os.environ.get(key) for key in _CREDENTIAL_VARIABLES}
            for key in _CREDENTIAL_VARIABLES:
                os.environ.pop(key, None)
            os.environ.update(mine)
            try:
                yield
            finally:
                _restore(saved)

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Point the ``mlflow`` fluent API at this server, with this connection's credentials,
        for the duration of the block."""
        import mlflow

        # mlflow.set_*_uri also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which child
        # processes inherit: the environment is put back exactly as it was.
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        previous_tracking = mlflow.get_tracking_uri()
        previous_registry = mlflow.get_registry_uri()
        with self.credentials():
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(previous_tracking)
                mlflow.set_registry_uri(previous_registry)
                _restore(saved)

    def download(self, artifact_uri: str, dst_path: str) -> str:
        """Download ``artifact_uri`` (``runs:/``, ``models:/``, ``mlflow-artifacts:``) into
        ``dst_path``; returns the local path.

        The server is named in the call, not only through :meth:`activate`'s process-wide
        setting, which another thread's ``activate()`` may restore under this one's feet.
        """
        import mlflow

        with self.activate():
            return str(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri,
                    dst_path=dst_path,
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.registry_uri or self.tracking_uri,
                )
            )

    def client(self) -> MlflowClient:
        """An ``MlflowClient`` of this server whose calls carry this connection's credentials
        (see :meth:`credentials`)."""
        from mlflow.tracking import MlflowClient

        # Always explicit: a ``None`` registry URI would follow MLflow's process-wide default,
        # which other code (or an earlier ``activate()``) may have pointed elsewhere.
        client = MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri
        )
        if not self._credentials():
            return client
        return cast("MlflowClient", _CredentialedClient(client, self.credentials))


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
