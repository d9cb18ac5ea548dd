"""Error bodies without internals, cleanup of downloads and metric series on unload, capture's
default folder, and shadow scoring of large batches off the event loop."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from starlette.testclient import TestClient

from airflow_mlops.serving.app import create_app
from airflow_mlops.serving.config import ServingConfig
from airflow_mlops.serving.metrics import metric_sum, parse_prometheus
from airflow_mlops.serving.models import LoadError

TOKEN = "t0ken-for-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def admin_token(monkeypatch):
    monkeypatch.setenv("MLOPS_SERVING_ADMIN_TOKEN", TOKEN)


def make_client(model_folders, **over) -> TestClient:
    raw = {
        "model": "toy",
        "versions": {v: str(p) for v, p in model_folders.items()},
        "routes": {"1": 1},
        "capture": {"dir": ""},
        "admin": {"model_root": str(model_folders["1"].parent)},
        **over,
    }
    return TestClient(create_app(ServingConfig.from_dict(raw), seed=0), headers=AUTH)


def big_batch(rows, n=1000):
    return {"dataframe_records": [rows[i % len(rows)] for i in range(n)]}


# -- 18: error bodies ------------------------------------------------------------------------


def test_an_internal_error_answers_the_request_id_not_the_exception(model_folders, rows, caplog):
    with make_client(model_folders) as client:
        lv = client.app.versions["1"]  # type: ignore[attr-defined]

        def broken(feed):
            raise ValueError("shape mismatch in /srv/secret/models/toy-1/model.onnx")

        lv.run = broken
        with caplog.at_level(logging.ERROR):
            mlflow = client.post(
                "/invocations",
                json={"dataframe_records": rows},
                headers={"x-request-id": "req-42"},
            )
            v2 = client.post(
                "/v2/models/toy/infer",
                json={
                    "inputs": [
                        {
                            "name": c,
                            "shape": [1],
                            "datatype": "BYTES" if isinstance(v, str) else "FP64",
                            "data": [v],
                        }
                        for c, v in rows[0].items()
                    ]
                },
            )
    assert mlflow.status_code == 500 and v2.status_code == 500
    for resp in (mlflow, v2):
        text = resp.text
        assert "ValueError" not in text and "/srv/secret" not in text and "shape" not in text
        request_id = resp.headers["x-request-id"]
        assert resp.json()["request_id"] == request_id and request_id in text
    assert mlflow.json()["error_code"] == "INTERNAL_ERROR"
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "req-42" in logged and "/srv/secret" in logged


def test_a_refused_load_answers_no_path_or_tracking_uri(model_folders, rows, tmp_path, caplog):
    with make_client(model_folders, versions={"1": str(model_folders["1"])}) as client:
        repo = client.app.repository  # type: ignore[attr-defined]

        def failing(version, source):
            raise LoadError(
                f"version {version} from {source}: no such version in the registry at "
                "http://10.1.2.3:5000 (/var/lib/mlops/cache/x)"
            )

        repo.load = failing
        with caplog.at_level(logging.WARNING):
            resp = client.put(
                "/admin/routes",
                json={"routes": {"1": 1, "2": 1}, "sources": {"2": str(model_folders["2"])}},
            )
    assert resp.status_code == 409
    body = resp.json()
    assert "version 2" in body["message"] and "routes unchanged" in body["message"]
    assert "10.1.2.3" not in resp.text and "/var/lib" not in resp.text
    assert str(model_folders["2"]) not in resp.text
    assert body["request_id"] == resp.headers["x-request-id"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "10.1.2.3" in logged and body["request_id"] in logged


# -- 19: downloads, metric series, capture folder ----------------------------------------------


@pytest.fixture()
def fake_registry(model_folders, monkeypatch):
    """``models:/toy/<v>`` served from the toy folders: the download is a copy into ``dst``."""
    from airflow_mlops.core.registry import versions as registry

    def get_version(tracking, name, ref):
        return SimpleNamespace(version=str(ref), tags={})

    def download_onnx(tracking, uri, dst=None):
        version = uri.rsplit("/", 1)[-1]
        folder = model_folders[version]
        meta = json.loads((folder / "model.json").read_text())
        model_dir = Path(dst) / "model"
        model_dir.mkdir(parents=True)
        shutil.copy(folder / "model.onnx", model_dir / "model.onnx")
        types = [{"name": c, "type": t} for c, t in meta["input_types"].items()]
        mlmodel = {
            "flavors": {"python_function": {"config": meta}},
            "signature": {"inputs": json.dumps(types)},
        }
        (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
        return str(model_dir / "model.onnx")

    monkeypatch.setattr(registry, "get_version", get_version)
    monkeypatch.setattr(registry, "download_onnx", download_onnx)


def test_downloaded_versions_are_removed_on_unload_and_shutdown(
    model_folders, rows, tmp_path, fake_registry
):
    cache = tmp_path / "cache"
    cache.mkdir()
    with make_client(
        model_folders,
        versions={"1": "models:/toy/1"},
        tracking_uri="http://127.0.0.1:9",
        cache_dir=str(cache),
    ) as client:
        assert len(list(cache.iterdir())) == 1
        resp = client.put(
            "/admin/routes", json={"routes": {"2": 1}, "sources": {"2": "models:/toy/2"}}
        )
        assert resp.status_code == 200, resp.text
        assert len(list(cache.iterdir())) == 2
        answer = client.post("/invocations", json={"dataframe_records": rows})
        assert answer.headers["x-model-version"] == "2"
        done = client.put("/admin/routes", json={"routes": {"2": 1}, "unload": ["1"]})
        assert done.status_code == 200, done.text
        left = list(cache.iterdir())
        assert len(left) == 1 and "toy-2" in left[0].name
    assert list(cache.iterdir()) == []


def test_metric_series_of_an_unloaded_version_disappear(model_folders, rows):
    with make_client(model_folders, shadow={"version": "2", "share": 1.0}) as client:
        for path in ("/invocations", "/v2/models/toy/versions/2/infer"):
            client.post(path, json={"dataframe_records": rows})
        assert 'version="2"' in client.get("/metrics").text
        done = client.put(
            "/admin/routes", json={"routes": {"1": 1}, "shadow": None, "unload": ["2"]}
        )
        assert done.status_code == 200, done.text
        text = client.get("/metrics").text
    assert 'version="2"' not in text
    assert 'version="1"' in text


def test_capture_without_mlops_home_goes_under_the_servers_state_folder(
    model_folders, tmp_path, monkeypatch
):
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = ServingConfig.from_dict({"model": "toy", "versions": {"1": "a"}})
    assert config.capture.dir is not None
    captured = Path(config.capture.dir)
    assert captured.is_absolute() and not captured.is_relative_to(cwd)
    assert captured == tmp_path / "state" / "airflow-mlops" / "serving" / "monitoring"
    own = ServingConfig.from_dict(
        {"model": "toy", "versions": {"1": "a"}, "state_dir": str(tmp_path / "srv")}
    )
    assert own.capture.dir == str(tmp_path / "srv" / "monitoring")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    home = ServingConfig.from_dict({"model": "toy", "versions": {"1": "a"}})
    assert home.capture.dir == str(tmp_path / "home" / "monitoring")


# -- 20: shadow scoring off the loop ------------------------------------------------------------


def test_a_large_shadow_batch_does_not_stall_other_connections(model_folders, rows):
    with make_client(model_folders, shadow={"version": "2", "share": 1.0}) as client:
        shadow = client.app.versions["2"]  # type: ignore[attr-defined]
        real = shadow.run
        started = threading.Event()
        release = threading.Event()

        def slow(feed):
            if len(next(iter(feed.values()))) > 64:
                started.set()
                release.wait(10)
            return real(feed)

        shadow.run = slow
        try:
            answers: list[int] = []
            first = threading.Thread(
                target=lambda: answers.append(
                    client.post("/invocations", json=big_batch(rows)).status_code
                )
            )
            first.start()
            assert started.wait(5), "the shadow never ran"
            t0 = time.perf_counter()
            health = client.get("/health")
            other = client.post("/invocations", json={"dataframe_records": rows})
            waited = time.perf_counter() - t0
            assert health.status_code == 200 and other.status_code == 200
            assert waited < 1.0, f"another request waited {waited:.2f}s behind the shadow"
            first.join(5)
            assert answers == [200]
            # The worker is busy and its queue (depth 1) takes one more; the next is dropped.
            for _ in range(2):
                assert client.post("/invocations", json=big_batch(rows)).status_code == 200
        finally:
            release.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            parsed = parse_prometheus(client.get("/metrics").text)
            if metric_sum(parsed, "mlops_shadow_requests_total", version="2") >= 3:
                break
            time.sleep(0.05)
        # 1 small mirrored inline + 2 large scored in the worker; 1 large dropped.
        assert metric_sum(parsed, "mlops_shadow_dropped_total", version="2") == 1
        assert metric_sum(parsed, "mlops_shadow_requests_total", version="2") == 3
        agreement = metric_sum(parsed, "mlops_shadow_agreement_total", version="2")
        assert agreement == 2 * 1000 + len(rows)
