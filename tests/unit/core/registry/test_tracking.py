from __future__ import annotations

import os
from pathlib import Path

from airflow_mlops.core.registry.tracking import TrackingConfig


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


def test_experiments_on_a_database_keep_artifacts_beside_it_not_in_the_cwd(
    tmp_path, monkeypatch
) -> None:
    cwd = tmp_path / "worker-cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = tmp_path / "store"
    store.mkdir()
    tracking = TrackingConfig(f"sqlite:///{store / 'mlflow.db'}")
    assert tracking.artifact_root() == (store / "mlruns").as_uri()
    first = tracking.experiment_id("churn")
    assert tracking.experiment_id("churn") == first  # found, not created twice
    experiment = tracking.client().get_experiment(first)
    assert experiment.artifact_location == (store / "mlruns").as_uri()
    assert not (cwd / "mlruns").exists()


def test_servers_and_file_stores_choose_their_own_artifact_root() -> None:
    assert TrackingConfig("http://127.0.0.1:5000").artifact_root() is None
    assert TrackingConfig("file:///tmp/mlruns").artifact_root() is None
    assert TrackingConfig("/tmp/mlruns").artifact_root() is None


def test_promotion_messages_say_what_changed() -> None:
    from airflow_mlops.core.registry.versions import PromotionResult

    moved = PromotionResult("churn", "3", "champion", "2")
    assert moved.message == "churn v3 is now @champion (was v2)"
    assert PromotionResult("churn", "1", "candidate", None).message == (
        "churn v1 is now @candidate (first to hold it)"
    )
    assert PromotionResult("churn", "2", "champion", "2").message == (
        "churn v2 already was @champion"
    )


def test_download_names_its_server_even_when_the_global_uri_moved(tmp_path, monkeypatch):
    """Another thread's activate() may put MLflow's process-wide URI back while this one
    downloads: the download must not depend on it."""
    import contextlib

    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)
    try:
        experiment = mlflow.create_experiment("dl", artifact_location=str(tmp_path / "art"))
        with mlflow.start_run(experiment_id=experiment) as run:
            (tmp_path / "hello.txt").write_text("hi")
            mlflow.log_artifact(str(tmp_path / "hello.txt"))
    finally:
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    config = TrackingConfig(store)
    # As if another thread had restored the global URI between activate() and the call.
    monkeypatch.setattr(TrackingConfig, "activate", lambda self: contextlib.nullcontext())
    try:
        local = config.download(f"runs:/{run.info.run_id}/hello.txt", str(tmp_path / "dst"))
    finally:
        mlflow.set_tracking_uri(previous)
    assert Path(local).read_text() == "hi"
