"""The scoring server as a real process (``python -m airflow_mlops.serving`` under uvicorn) on
the ``champion`` fixture: a model folder from its downloaded ONNX beside the same version
pulled by the server itself from the MLflow registry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.serving.metrics import metric_sum, parse_prometheus

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_folder(champion, tmp_path_factory) -> Path:
    """The champion's ONNX file and metadata as a model folder (what packaging ships)."""
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.serving.models import meta_from_mlmodel, write_model_folder

    version = champion["registered"]["version"]
    tmp = tmp_path_factory.mktemp("champion-download")
    onnx_path = registry.download_onnx(
        champion["tracking"], f"models:/fixture_churn/{version}", str(tmp)
    )
    meta = meta_from_mlmodel(next(tmp.rglob("MLmodel")), "fixture_churn", version)
    return write_model_folder(tmp_path_factory.mktemp("folder") / "m", onnx_path, meta)


@pytest.fixture(scope="module")
def server(champion, mlflow_server, model_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    version = champion["registered"]["version"]
    config = {
        "model": "fixture_churn",
        "versions": {"1": str(model_folder), "2": f"models:/fixture_churn/{version}"},
        "routes": {"1": 1},
        "tracking_uri": mlflow_server,
        "capture": {"dir": str(root / "monitoring"), "sample_rate": 1.0, "max_seconds": 0.5},
        "limits": {"max_rows": 500},
        "admin": {"token_file": str(root / "admin.token"), "model_root": str(root / "models")},
    }
    (root / "admin.token").write_text("t0ken\n")
    (root / "admin.token").chmod(0o600)
    (root / "models").mkdir()
    (root / "serve.json").write_text(json.dumps(config))
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_mlops.serving",
            "--config",
            str(root / "serve.json"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not become ready in 90 s"
        time.sleep(0.2)
    yield {"url": url, "root": root, "proc": proc}
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def frame(champion) -> pd.DataFrame:
    config = champion["config"]
    cols = [*config.data.numeric_features, *config.data.categorical_features]
    return pd.read_parquet(champion["data"]).head(300)[cols]


def to_split(frame: pd.DataFrame) -> dict:
    data = json.loads(frame.to_json(orient="split", index=False))
    return {"dataframe_split": data}


ADMIN = {"authorization": "Bearer t0ken"}


def test_predictions_equal_the_registered_pyfunc(champion, server, frame):
    import mlflow.pyfunc

    with champion["tracking"].activate():
        expected = mlflow.pyfunc.load_model("models:/fixture_churn@champion").predict(frame)
    assert frame.isna().any().any()  # missing values travel as JSON null
    resp = httpx.post(f"{server['url']}/invocations", json=to_split(frame), timeout=30)
    assert resp.status_code == 200, resp.text
    got = pd.DataFrame(resp.json()["predictions"])
    assert list(got.columns) == list(expected.columns)
    assert got["label"].tolist() == expected["label"].tolist()
    prob_cols = [c for c in expected.columns if c.startswith("probability_")]
    np.testing.assert_allclose(
        got[prob_cols].to_numpy(), expected[prob_cols].to_numpy(), atol=1e-6, rtol=0
    )

    records = json.loads(frame.head(20).to_json(orient="records"))
    inputs = [
        {
            "name": c,
            "shape": [20, 1],
            "datatype": "BYTES" if c in champion["config"].data.categorical_features else "FP64",
            "data": [r[c] for r in records],
        }
        for c in frame.columns
    ]
    v2 = httpx.post(
        f"{server['url']}/v2/models/fixture_churn/versions/2/infer",
        json={"inputs": inputs},
        timeout=30,
    )
    assert v2.status_code == 200 and v2.headers["x-model-version"] == "2"
    proba = np.array(v2.json()["outputs"][1]["data"]).reshape(20, -1)
    np.testing.assert_allclose(proba, expected[prob_cols].to_numpy()[:20], atol=1e-6, rtol=0)


def test_bad_requests_are_refused_and_the_server_stays_up(server, frame):
    url = server["url"]
    huge = b'{"dataframe_records": [' + b"1," * 2_000_000 + b"1]}"
    resp = httpx.post(
        f"{url}/invocations", content=huge, headers={"content-type": "application/json"}, timeout=30
    )
    assert resp.status_code == 413 and "exceeds the limit" in resp.json()["message"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"dataframe_records": ['
        for _ in range(300):
            yield b'{"a": 1},' * 1000
        yield b"{}]}"

    streamed = httpx.post(
        f"{url}/invocations",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert streamed.status_code == 413
    wrong = to_split(frame.head(1).rename(columns={"tenure_months": "tenure"}))
    resp = httpx.post(f"{url}/invocations", json=wrong, timeout=10)
    assert resp.status_code == 400
    assert "missing column(s) ['tenure_months']; unexpected column(s) ['tenure']" in resp.text
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200


async def _load(url: str, body: bytes, total: int, workers: int) -> tuple[Counter, list[str]]:
    answered: Counter = Counter()
    failures: list[str] = []
    remaining = iter(range(total))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def worker() -> None:
            for _ in remaining:
                try:
                    resp = await client.post(
                        "/invocations", content=body, headers={"content-type": "application/json"}
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code} {resp.text[:200]}")
                else:
                    answered[resp.headers["x-model-version"]] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return answered, failures


async def _shift(url: str, steps: list[dict], pause: float) -> list[int]:
    codes = []
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=ADMIN) as client:
        for step in steps:
            await asyncio.sleep(pause)
            codes.append((await client.put("/admin/routes", json=step)).status_code)
    return codes


def test_weights_shift_under_load_without_a_failed_request(server, frame):
    url = server["url"]
    body = json.dumps(to_split(frame.head(1))).encode()
    steps = [
        {"routes": {"1": 90, "2": 10}, "shadow": {"version": "2", "share": 0.5}},
        {"routes": {"1": 50, "2": 50}},
        {"routes": {"2": 1}},
        {"routes": {"1": 1}},
        {"routes": {"1": 75, "2": 25}, "shadow": None},
    ]

    async def run() -> tuple[Counter, list[str], list[int]]:
        (answered, failures), codes = await asyncio.gather(
            _load(url, body, total=3000, workers=8), _shift(url, steps, pause=0.15)
        )
        return answered, failures, codes

    answered, failures, codes = asyncio.run(run())
    assert failures == []
    assert codes == [200] * len(steps)
    assert sum(answered.values()) == 3000 and set(answered) == {"1", "2"}
    state = httpx.get(f"{url}/admin/routes", headers=ADMIN, timeout=5).json()
    assert state == {
        "model": "fixture_churn",
        "routes": {"1": 75.0, "2": 25.0},
        "shadow": None,
        "loaded": ["1", "2"],
    }
    parsed = parse_prometheus(httpx.get(f"{url}/metrics", timeout=5).text)
    assert metric_sum(parsed, "mlops_route_weight", version="2") == 0.25
    assert metric_sum(parsed, "mlops_requests_total", protocol="mlflow", code="200") >= 3000
    mirrored = metric_sum(parsed, "mlops_shadow_requests_total", version="2")
    # Same ONNX graph on both sides: the shadow always agrees.
    assert metric_sum(parsed, "mlops_shadow_agreement_total", agree="true") == mirrored
    assert metric_sum(parsed, "mlops_shadow_agreement_total", agree="false") == 0
    assert metric_sum(parsed, "mlops_request_latency_seconds_count") >= 3000


def test_a_version_that_fails_to_load_never_answers(server, frame):
    url = server["url"]
    broken = Path(server["root"]) / "models" / "broken"  # under admin.model_root
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"garbage")
    (broken / "model.json").write_text((Path(server["root"]) / "serve.json").read_text())
    before = httpx.get(f"{url}/admin/routes", headers=ADMIN, timeout=5).json()
    for source in (str(broken), "models:/fixture_churn/999"):
        resp = httpx.put(
            f"{url}/admin/routes",
            headers=ADMIN,
            timeout=60,
            json={"routes": {"1": 50, "9": 50}, "sources": {"9": source}},
        )
        assert resp.status_code == 409, resp.text
        assert "version 9" in resp.json()["message"]
        # The reason stays in the server log: no path, no tracking URI in the body.
        assert str(broken) not in resp.text and "127.0.0.1" not in resp.text
    anonymous = httpx.put(f"{url}/admin/routes", json={"routes": {"1": 1}}, timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"]
    outside = httpx.put(
        f"{url}/admin/routes",
        headers=ADMIN,
        timeout=5,
        json={"routes": {"1": 50, "9": 50}, "sources": {"9": "/etc"}},
    )
    assert outside.status_code == 403 and "admin.model_root" in outside.json()["message"]
    after = httpx.get(f"{url}/admin/routes", headers=ADMIN, timeout=5).json()
    assert after == before and "9" not in after["loaded"]
    body = to_split(frame.head(1))
    versions = {
        httpx.post(f"{url}/invocations", json=body, timeout=5).headers["x-model-version"]
        for _ in range(30)
    }
    assert "9" not in versions
    assert (
        httpx.post(
            f"{url}/v2/models/fixture_churn/versions/9/infer", json={"inputs": []}, timeout=5
        ).status_code
        == 404
    )


def test_captured_rows_are_flushed_on_shutdown(server, frame):
    proc = server["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    files = sorted(Path(server["root"], "monitoring").rglob("*.parquet"))
    assert files and not list(Path(server["root"], "monitoring").rglob("*.tmp"))
    parts = {f.parent.parent.name for f in files}
    assert parts <= {"version=1", "version=2"}
    assert all(f.parent.parent.parent.name == "source=online" for f in files)
    table = pq.read_table(files[0]).to_pandas()
    assert {"prediction", "request_id", "timestamp", "version", *frame.columns} <= set(table)
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    assert rows >= 3000 + 300  # sample_rate 1.0: every answered row
