"""The FastAPI app's failure answers (the pages with real data are in
tests/integration/test_ui_plugin.py, against a real MLflow server)."""

from __future__ import annotations

import socket

from fastapi import Depends, HTTPException, Request
from starlette.testclient import TestClient

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.ui.app import create_app
from airflow_mlops.ui.lazy import LazyASGIApp


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_connection_is_a_503_with_the_reason() -> None:
    def resolve() -> TrackingConfig:
        raise LookupError("no Airflow connection 'mlflow_default' and MLFLOW_TRACKING_URI unset")

    client = TestClient(create_app(resolve))
    page = client.get("/")
    assert page.status_code == 503
    assert "no Airflow connection &#x27;mlflow_default&#x27;" in page.text
    api = client.get("/api/models")
    assert api.status_code == 503
    assert "MLFLOW_TRACKING_URI unset" in api.json()["detail"]


def test_mlflow_down_answers_503_quickly_naming_the_server() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = TestClient(create_app(lambda: TrackingConfig(url), timeout=1.0))
    api = client.get("/api/models")
    assert api.status_code == 503
    assert f"cannot reach MLflow at {url}" in api.json()["detail"]
    assert client.get("/health").json() == {"status": "ok"}


def test_lazy_app_builds_once_on_first_request() -> None:
    built = []

    def factory():  # type: ignore[no-untyped-def]
        built.append(1)
        return create_app(lambda: TrackingConfig("http://127.0.0.1:9"))

    lazy = LazyASGIApp(factory, label="test")
    assert built == []
    client = TestClient(lazy)
    assert client.get("/health").status_code == 200
    assert client.get("/health").status_code == 200
    assert built == [1]
    assert "test" in repr(lazy)


def test_access_dependencies_guard_the_pages_before_mlflow_is_asked() -> None:
    asked: list[str] = []

    def resolve() -> TrackingConfig:
        asked.append("mlflow")
        return TrackingConfig(f"http://127.0.0.1:{closed_port()}")

    def only_bearer_ok(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer ok":
            raise HTTPException(status_code=401, detail="Not authenticated")

    client = TestClient(create_app(resolve, timeout=1.0, dependencies=[Depends(only_bearer_ok)]))
    assert client.get("/").status_code == 401
    assert client.get("/api/models").json() == {"detail": "Not authenticated"}
    assert asked == []
    assert client.get("/health").status_code == 200  # says nothing about models
    assert client.get("/api/models", headers={"Authorization": "Bearer ok"}).status_code == 503
    assert asked == ["mlflow"]
