"""The ASGI app in-process (Starlette's test client drives the real app and its lifespan)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

from airflow_mlops.serving.app import create_app
from airflow_mlops.serving.config import ServingConfig
from airflow_mlops.serving.metrics import metric_sum, parse_prometheus
from airflow_mlops.serving.models import LoadError, load_version

TOKEN = "t0ken-for-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def admin_token(monkeypatch):
    """Admin is off without a token: these tests drive it with one from the environment."""
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


def test_invocations_answer_like_the_model(model_folders, rows):
    with make_client(model_folders) as client:
        resp = client.post("/invocations", json={"dataframe_records": rows})
    assert resp.status_code == 200
    assert resp.headers["x-model-version"] == "1" and resp.headers["x-model-name"] == "toy"
    assert resp.headers["x-request-id"]
    preds = resp.json()["predictions"]
    v1 = load_version("1", str(model_folders["1"]))
    labels, proba = v1.run(
        {
            "age": np.array([[31.5], [np.nan]], np.float32),
            "income": np.array([[42000.0], [18000.0]], np.float32),
            "visits": np.array([[3.0], [25.0]], np.float32),
            "city": np.array([["oslo"], [""]], object),
            "plan": np.array([["pro"], ["free"]], object),
        }
    )
    assert [p["label"] for p in preds] == labels.tolist()
    assert [p["probability_1"] for p in preds] == proba[:, 1].astype(np.float64).tolist()


def test_v2_endpoints(model_folders, rows):
    inputs = [
        {
            "name": c,
            "shape": [2, 1],
            "datatype": "BYTES" if c in ("city", "plan") else "FP64",
            "data": [r[c] for r in rows],
        }
        for c in rows[0]
    ]
    with make_client(model_folders) as client:
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2").json()["name"] == "airflow-mlops"
        meta = client.get("/v2/models/toy").json()
        assert meta["versions"] == ["1", "2"]  # every configured version, routed or not
        assert {i["name"]: i["datatype"] for i in meta["inputs"]}["visits"] == "INT64"
        resp = client.post("/v2/models/toy/infer", json={"id": "a", "inputs": inputs})
        assert resp.status_code == 200 and resp.json()["id"] == "a"
        assert resp.json()["outputs"][1]["shape"] == [2, 2]
        wrong = client.post("/v2/models/other/infer", json={"inputs": inputs})
        assert wrong.status_code == 404 and "not served here" in wrong.json()["error"]
        forced = client.post("/v2/models/toy/versions/2/infer", json={"inputs": inputs})
        assert forced.status_code == 200 and forced.headers["x-model-version"] == "2"
        absent = client.post("/v2/models/toy/versions/3/infer", json={"inputs": inputs})
        assert absent.status_code == 404 and "not loaded" in absent.json()["error"]
        bad = client.post("/v2/models/toy/infer", json={"inputs": inputs[:2]})
        assert bad.status_code == 400 and "missing column(s)" in bad.json()["error"]


def test_bad_input_is_a_4xx_and_the_server_stays_up(model_folders, rows):
    with make_client(model_folders, limits={"max_body_bytes": 2048, "max_rows": 5}) as client:
        malformed = client.post(
            "/invocations",
            content=b'{"dataframe_records": [',
            headers={"content-type": "application/json"},
        )
        assert malformed.status_code == 400
        assert malformed.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "malformed JSON" in malformed.json()["message"]
        too_big = client.post("/invocations", json={"dataframe_records": rows * 40})
        assert too_big.status_code == 413 and "exceeds the limit of 2048" in too_big.text
        too_many = client.post("/invocations", json={"dataframe_records": rows * 3})
        assert too_many.status_code == 413 and "too many rows: 6 (limit 5)" in too_many.text
        csv = client.post("/invocations", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
        assert csv.status_code == 415
        typed = client.post("/invocations", json={"dataframe_records": [{**rows[0], "age": "x"}]})
        assert typed.status_code == 400 and "column 'age' row 0" in typed.json()["message"]
        assert client.post("/invocations", json={"dataframe_records": rows}).status_code == 200
        parsed = parse_prometheus(client.get("/metrics").text)
    assert metric_sum(parsed, "mlops_request_errors_total", reason="malformed_json") == 1
    assert metric_sum(parsed, "mlops_request_errors_total", reason="body_too_large") == 1
    assert metric_sum(parsed, "mlops_request_errors_total", reason="too_many_rows") == 1
    assert metric_sum(parsed, "mlops_requests_total", code="413") == 2
    assert metric_sum(parsed, "mlops_requests_total", code="200") == 1


def test_weights_route_and_shadow_is_recorded_not_returned(model_folders, rows):
    with make_client(
        model_folders, routes={"1": 1, "2": 3}, shadow={"version": "2", "share": 1.0}
    ) as client:
        answered = [
            client.post("/invocations", json={"dataframe_records": rows[:1]}).headers[
                "x-model-version"
            ]
            for _ in range(200)
        ]
        parsed = parse_prometheus(client.get("/metrics").text)
    assert 30 < answered.count("1") < 75  # 25% of 200, seeded
    mirrored = metric_sum(parsed, "mlops_shadow_requests_total", version="2")
    assert mirrored == answered.count("1")  # every v1 answer mirrored, never a v2 answer
    assert metric_sum(parsed, "mlops_shadow_agreement_total", version="2") == mirrored
    assert metric_sum(parsed, "mlops_route_weight", version="2") == 0.75


def test_admin_put_loads_then_swaps(model_folders, rows):
    with make_client(model_folders, versions={"1": str(model_folders["1"])}) as client:
        assert client.get("/admin/routes").json() == {
            "model": "toy",
            "routes": {"1": 100.0},
            "shadow": None,
            "loaded": ["1"],
        }
        resp = client.put(
            "/admin/routes",
            json={
                "routes": {"1": 0, "2": 1},
                "shadow": {"version": "1", "share": 0.5},
                "sources": {"2": str(model_folders["2"])},
            },
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["routes"] == {"1": 0.0, "2": 100.0}
        assert resp.json()["loaded"] == ["1", "2"]
        answer = client.post("/invocations", json={"dataframe_records": rows})
        assert answer.headers["x-model-version"] == "2"
        forced = client.post(
            "/v2/models/toy/versions/1/infer",
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
        assert forced.headers["x-model-version"] == "1"
        app = client.app
        v2 = app.versions["2"]  # type: ignore[attr-defined]
        again = client.put(
            "/admin/routes",
            json={"routes": {"1": 1, "2": 1}, "sources": {"2": str(model_folders["2"])}},
        )
        assert again.status_code == 200
        assert app.versions["2"] is v2  # type: ignore[attr-defined]  # same source: no reload


def test_admin_refuses_a_version_that_fails_to_load(model_folders, tmp_path, rows):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    (broken / "model.json").write_text(
        json.dumps(
            {
                "name": "toy",
                "version": "9",
                "numeric_features": ["age"],
                "categorical_features": [],
                "classes": [0, 1],
            }
        )
    )
    with make_client(model_folders, admin={"model_root": str(tmp_path)}) as client:
        resp = client.put(
            "/admin/routes", json={"routes": {"1": 50, "9": 50}, "sources": {"9": str(broken)}}
        )
        assert resp.status_code == 409
        assert "version 9" in resp.json()["message"]
        assert "routes unchanged" in resp.json()["message"]
        state = client.get("/admin/routes").json()
        assert state["routes"] == {"1": 100.0} and "9" not in state["loaded"]
        versions = {
            client.post("/invocations", json={"dataframe_records": rows}).headers["x-model-version"]
            for _ in range(20)
        }
        assert versions == {"1"}
        unknown = client.put("/admin/routes", json={"routes": {"7": 1}})
        assert unknown.status_code == 422 and "has no source" in unknown.json()["message"]
        negative = client.put("/admin/routes", json={"routes": {"1": -5}})
        assert negative.status_code == 422 and "must be >= 0" in negative.json()["message"]


@pytest.mark.parametrize(
    ("admin", "headers", "status"),
    [
        ({"enabled": False}, AUTH, 404),
        ({"token_env": "NO_SUCH_TOKEN_VARIABLE"}, AUTH, 403),
        ({}, {"authorization": ""}, 401),
        ({}, {"authorization": "Bearer wrong"}, 401),
        ({}, AUTH, 200),
    ],
)
def test_admin_can_be_disabled_or_guarded(model_folders, admin, headers, status):
    with make_client(model_folders, admin=admin) as client:
        assert client.get("/admin/routes", headers=headers).status_code == status


def test_health_and_unknown_paths(model_folders):
    with make_client(model_folders) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/nope").status_code == 404
        assert client.get("/invocations").status_code == 405


def test_startup_fails_when_a_configured_version_cannot_load(tmp_path):
    config = ServingConfig.from_dict(
        {"model": "toy", "versions": {"1": str(tmp_path)}, "capture": {"dir": ""}}
    )
    with pytest.raises(LoadError, match=r"lacks model\.onnx"), TestClient(create_app(config)):
        pass


def test_admin_unloads_a_retired_version_but_never_one_in_use(model_folders, rows):
    with make_client(model_folders) as client:
        client.put(
            "/admin/routes",
            json={"routes": {"2": 100}, "sources": {"2": str(model_folders["2"])}},
        )
        busy = client.put("/admin/routes", json={"routes": {"2": 100}, "unload": ["2"]})
        assert busy.status_code == 422 and "cannot unload ['2']" in busy.json()["message"]
        done = client.put("/admin/routes", json={"routes": {"2": 100}, "unload": ["1"]})
        assert done.status_code == 200, done.text
        assert done.json()["loaded"] == ["2"]
        assert client.app.versions.keys() == {"2"}  # type: ignore[attr-defined]
        gone = client.post("/v2/models/toy/versions/1/infer", json={"inputs": []})
        assert gone.status_code == 404
        answer = client.post("/invocations", json={"dataframe_records": rows})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "2"
        # Routed again later: loaded again from the source it came from.
        back = client.put("/admin/routes", json={"routes": {"1": 1, "2": 1}})
        assert back.status_code == 200 and back.json()["loaded"] == ["1", "2"]
