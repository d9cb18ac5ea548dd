"""Object storage end to end: data, run folder, models and MLflow artifacts all on ``s3://``.

A real S3-compatible server (moto's server mode, HTTP on 127.0.0.1) stands where MinIO stands in
``docker-compose.yaml``; the MLflow server is started the way the compose file starts it
(``--artifacts-destination s3://mlflow/`` with ``MLFLOW_S3_ENDPOINT_URL``). The AWS variables
(fake credentials, the endpoint) exist only while this module runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("s3fs", reason="s3fs is not installed (pin s3fs==2026.9.0)")
pytest.importorskip("moto.server", reason="moto is not installed (pin moto[s3]==5.2.5)")

pytestmark = pytest.mark.integration

MODEL = "s3_churn"
ROWS = 3_000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, the AWS environment pointing at it."""
    import fsspec
    from moto.server import ThreadedMotoServer

    # One line per request from werkzeug would drown the test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # botocore (s3fs through aiobotocore) and MLflow's S3 artifact store read these.
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        fsspec.filesystem("s3", skip_instance_cache=True)
        fs = fsspec.filesystem("s3")
        fs.mkdir("mlops")
        fs.mkdir("mlflow")
        try:
            yield {"endpoint": endpoint, **env}
        finally:
            # s3fs caches filesystems by their arguments, not by the environment: a later test
            # must not reuse a client bound to this (stopped) endpoint.
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture(scope="module")
def mlflow_s3(s3: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` as in docker-compose.yaml: artifacts proxied to ``s3://mlflow/``."""
    from airflow_mlops.devstack import free_port

    root = tmp_path_factory.mktemp("mlflow-s3")
    port = free_port()
    log_path = root / "server.log"
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(mlflow_bin),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                "s3://mlflow/",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"mlflow server exited; log: {log_path}"
            assert time.monotonic() < deadline, f"mlflow server not up in 120 s; log: {log_path}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def _config(data_uri: str, work_dir: str):
    """The demo config on S3, with a fast linear model (the suite stays quick)."""
    from airflow_mlops.core.config import load_config
    from tests.conftest import REPO

    base = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    return replace(
        base,
        name=MODEL,
        data=replace(base.data, uri=data_uri),
        training=replace(
            base.training,
            estimator="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 300},
        ),
        work_dir=work_dir,
    )


def test_training_steps_read_and_write_s3_and_mlflow_keeps_artifacts_in_the_bucket(
    s3: dict[str, str], mlflow_s3: str
) -> None:
    import fsspec

    from airflow_mlops.core import registry, steps
    from airflow_mlops.core.demo_data import write_dataset
    from airflow_mlops.core.tracking import TrackingConfig

    fs = fsspec.filesystem("s3")
    write_dataset("s3://mlops/data/s3_churn/train.parquet", rows=ROWS, seed=0)
    config = _config("s3://mlops/data/s3_churn/train.parquet", "s3://mlops/work")
    out = steps.run_dir(config.work_dir, "pytest", "manual__s3")
    tracking = TrackingConfig(tracking_uri=mlflow_s3)

    prepared = steps.prepare(config, out)
    assert prepared["train_uri"] == f"{out}/train.parquet"
    assert prepared["train_rows"] + prepared["holdout_rows"] == ROWS
    validation = steps.validate(config, prepared["train_uri"], report_uri=f"{out}/validation.json")
    trained = steps.train(config, prepared, out)
    converted = steps.convert(config, prepared, trained, out)
    evaluation = steps.evaluate(tracking, config, prepared, trained)
    registered = steps.register(
        tracking,
        config,
        prepared=prepared,
        validation=validation,
        trained=trained,
        evaluation=evaluation,
        converted=converted,
        airflow={"dag_id": "pytest"},
    )

    run_folder = out.removeprefix("s3://")
    written = {path.rsplit("/", 1)[-1] for path in fs.find(run_folder)}
    assert written == {
        "train.parquet",
        "holdout.parquet",
        "validation.json",
        "model.joblib",
        "model.onnx",
    }, "temporary files were left behind or an output is missing"
    assert json.loads(fs.cat(f"{run_folder}/validation.json"))["success"] is True

    # MLflow proxied the artifacts into the bucket; the registered ONNX model is the very file
    # the convert step wrote to the run folder.
    artifacts = fs.find("mlflow")
    assert any(path.endswith("/model.onnx") for path in artifacts), artifacts[:20]
    assert any(path.endswith("reference/reference.parquet") for path in artifacts)
    downloaded = Path(registry.download_onnx(tracking, registered["model_uri"])).read_bytes()
    assert downloaded == fs.cat(f"{run_folder}/model.onnx")
    version = registry.get_version(tracking, MODEL, registered["version"])
    assert version is not None
    assert version.tags["mlops.data.uri"] == "s3://mlops/data/s3_churn/train.parquet"
    assert version.tags["mlops.data.rows"] == str(ROWS)
