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


# Library errors, each raised by the library itself on a call that reproduces it.


def _s3_info(uri: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, skip_instance_cache=True)
    fs.info(path)


def _onnx_with_unknown_op() -> None:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Solve", ["x", "x"], ["y"], domain="com.microsoft")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    model = helper.make_model(
        graph,
        ir_version=9,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_missing_object_store_credentials_fail_without_retry(no_aws_credentials) -> None:
    with pytest.raises(AirflowFailException, match="NoCredentialsError"):
        _operator().call_core(_s3_info, "s3://bucket/data.parquet")


def test_a_graph_onnx_runtime_refuses_fails_without_retry() -> None:
    with pytest.raises(AirflowFailException, match="Solve"):
        _operator().call_core(_onnx_with_unknown_op)


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        ("RESOURCE_DOES_NOT_EXIST", True),
        ("INVALID_PARAMETER_VALUE", True),
        ("PERMISSION_DENIED", True),
        ("TEMPORARILY_UNAVAILABLE", False),
        ("INTERNAL_ERROR", False),
    ],
)
def test_mlflow_errors_are_permanent_when_the_server_refused_the_request(
    code: str, permanent: bool
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    def step() -> None:
        raise MlflowException("registered model 'm' v9", error_code=getattr(databricks_pb2, code))

    if permanent:
        with pytest.raises(AirflowFailException, match="MlflowException: registered model"):
            _operator().call_core(step)
    else:
        with pytest.raises(MlflowException):
            _operator().call_core(step)


def test_an_object_store_that_does_not_answer_stays_retryable(unreachable_s3) -> None:
    with pytest.raises(Exception, match="Could not connect") as raised:
        _operator().call_core(_s3_info, "s3://bucket/data.parquet")
    assert not isinstance(raised.value, AirflowFailException)


def test_an_error_chained_from_a_permanent_cause_is_permanent() -> None:
    def step() -> None:
        try:
            _onnx_with_unknown_op()
        except Exception as exc:
            raise RuntimeError("profiling failed") from exc

    with pytest.raises(AirflowFailException, match="profiling failed"):
        _operator().call_core(step)
