from __future__ import annotations

import os

from airflow_mlops.core.tracking import TrackingConfig


def test_activate_restores_the_environment_children_inherit(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "outer")
    config = TrackingConfig("http://127.0.0.1:9", username="inner", password="secret")
    with config.activate():
        import mlflow

        assert mlflow.get_tracking_uri() == "http://127.0.0.1:9"
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "inner"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "outer"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ


def test_client_names_its_registry_explicitly():
    client = TrackingConfig("http://127.0.0.1:9").client()
    assert client._registry_uri == "http://127.0.0.1:9"
