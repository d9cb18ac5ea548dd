"""``MLOpsBaseOperator.call_core``: errors a retry cannot fix fail the task at once."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.data.io import DataError
from airflow_mlops.core.drift.monitor import NothingToMonitor
from airflow_mlops.core.model.reference import ModelRefError
from airflow_mlops.core.pipeline.steps import GateFailed
from airflow_mlops.core.registry.tracking import MLflowUnreachable
from airflow_mlops.core.rollout.targets.base import StepFailed
from airflow_mlops.core.scoring.types import ScoringError
from airflow_mlops.core.training.convert import ConversionError
from airflow_mlops.core.training.pipeline import TrainingError
from airflow_mlops.exceptions import MLOpsError, MLOpsTransientError
from airflow_mlops.operators.base import MLOpsBaseOperator


def _operator() -> MLOpsBaseOperator:
    return MLOpsBaseOperator(task_id="t", config="unused.yaml")


@pytest.mark.parametrize(
    "error",
    [
        TrainingError("training.estimator 'no_such.Model' cannot be imported"),
        ConfigError("model.yaml: scoring: unknown key(s) ['colour']"),
        DataError("data.uri /nowhere.parquet does not exist"),
        GateFailed("roc_auc 0.61 below 0.7"),
        ModelRefError("model file /nowhere.onnx does not exist"),
        ScoringError("partition p1: no rows"),
        ConversionError("step 'clf' has no ONNX converter"),
        StepFailed("step 10%: error rate 0.2 above 0.05"),
        NothingToMonitor("m has no version 'champion' to monitor"),
        MLOpsError("any permanent error of the package"),
    ],
)
def test_permanent_errors_fail_without_retry_keeping_the_message(error: Exception) -> None:
    def step() -> None:
        raise error

    with pytest.raises(AirflowFailException, match=str(error).split(" ")[0]):
        _operator().call_core(step)


@pytest.mark.parametrize(
    "error",
    [
        MLflowUnreachable("cannot reach MLflow at http://127.0.0.1:5000 within 10 s"),
        MLOpsTransientError("object storage did not answer"),
    ],
)
def test_transient_errors_propagate_so_retries_apply(error: Exception) -> None:
    def step() -> None:
        raise error

    with pytest.raises(type(error)) as raised:
        _operator().call_core(step)
    assert raised.value is error


def test_a_bad_config_fails_the_task_without_retry(tmp_path) -> None:
    config = tmp_path / "model.yaml"
    config.write_text("name: m\ndata:\n  uri: x.parquet\n  target: y\n  colour: red\n")
    with pytest.raises(AirflowFailException, match="unknown key"):
        MLOpsBaseOperator(task_id="t", config=str(config)).model_config()
    with pytest.raises(AirflowFailException, match="missing required key"):
        MLOpsBaseOperator(task_id="t", config={"name": "m"}).model_config()


def test_other_errors_stay_retryable() -> None:
    def step() -> None:
        raise ConnectionError("MLflow at http://127.0.0.1:5000 did not answer")

    with pytest.raises(ConnectionError):
        _operator().call_core(step)
    assert _operator().call_core(lambda x: x + 1, 1) == 2


def test_a_dead_mlflow_fails_the_try_in_seconds_naming_the_server(monkeypatch) -> None:
    import json
    import socket
    import time

    from airflow_mlops.core.registry.tracking import MLflowUnreachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": url})
    )
    started = time.monotonic()
    with pytest.raises(MLflowUnreachable, match=f"cannot reach MLflow at {url} within 10 s"):
        _operator().tracking()
    assert time.monotonic() - started < 60  # not the client's minutes of retries
