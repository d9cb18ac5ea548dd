"""The build context of a registered version, and the same context run as a plain process.

No Docker engine exists here: the image build itself is not attempted (see the unit tests for
the no-engine error); the context's server config is started with ``python -m
airflow_mlops.serving`` on 127.0.0.1 and answers ``/health`` and a prediction.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_build_context_of_the_champion_and_run_it_locally(champion, tmp_path):
    pytest.importorskip("airflow_mlops.serving", reason="the scoring server package is not here")
    from airflow_mlops.core.packaging import context as packaging

    name, version = "fixture_churn", champion["registered"]["version"]
    ctx = packaging.build_context(champion["tracking"], name, version, tmp_path / "ctx")

    assert ctx.image_tag == f"mlops/fixture_churn:{version}"
    assert {"Dockerfile", ".dockerignore", "serving.json", "serving.local.json"} <= set(ctx.files)
    assert {"model/model.onnx", "model/model.json", "requirements-serving.txt"} <= set(ctx.files)
    assert ctx.labels["mlops.model.version"] == version
    assert ctx.labels["mlops.mlflow.run_id"] == champion["registered"]["run_id"]
    meta = json.loads((tmp_path / "ctx" / "model" / "model.json").read_text())
    assert meta["input_types"]["tenure_months"] == "long"
    assert meta["input_types"]["contract"] == "string"
    requirements = (tmp_path / "ctx" / "requirements-serving.txt").read_text()
    for banned in ("airflow", "mlflow", "scikit-learn", "sklearn"):
        assert banned not in requirements
    image_config = json.loads((tmp_path / "ctx" / "serving.json").read_text())
    assert image_config["versions"] == {version: "/app/model"}
    # Same model, same package, same pins: same digest.
    again = packaging.build_context(champion["tracking"], name, version, tmp_path / "ctx2")
    assert again.digest_of_context == ctx.digest_of_context

    port = _free_port()
    local_config = str(tmp_path / "ctx" / "serving.local.json")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_mlops.serving",
            "--config",
            local_config,
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        else:
            pytest.fail("the packaged server did not answer /health")
        row = {c: 1 for c in meta["numeric_features"]} | {
            c: "" for c in meta["categorical_features"]
        }
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"dataframe_records": [row]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Model-Version"] == version
            assert json.loads(response.read())
    finally:
        proc.terminate()
        proc.wait(timeout=15)
