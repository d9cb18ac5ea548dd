"""Admin endpoints: off without a token, Bearer token from a file or the environment, and the
sources admin may load restricted to the served model's registry versions and a model root."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.serving.app import create_app
from airflow_mlops.serving.config import ServingConfig
from airflow_mlops.serving.main import build_config, parser


def make_app(model_folders, admin=None, **over):
    raw = {
        "model": "toy",
        "versions": {"1": str(model_folders["1"])},
        "routes": {"1": 1},
        "capture": {"dir": ""},
        **({"admin": admin} if admin is not None else {}),
        **over,
    }
    return create_app(ServingConfig.from_dict(raw), seed=0)


@pytest.fixture()
def token_file(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text("s3cret-token\n")
    path.chmod(0o600)
    return path


def test_admin_is_off_without_a_token_and_an_anonymous_put_changes_nothing(
    model_folders, monkeypatch
):
    monkeypatch.delenv("MLOPS_SERVING_ADMIN_TOKEN", raising=False)
    with TestClient(make_app(model_folders)) as client:
        get = client.get("/admin/routes")
        put = client.put(
            "/admin/routes",
            json={"routes": {"2": 1}, "sources": {"2": str(model_folders["2"])}, "unload": ["1"]},
        )
        assert get.status_code == 403 and put.status_code == 403
        message = put.json()["message"]
        assert "no admin token is configured" in message
        assert "admin.token_file" in message and "MLOPS_SERVING_ADMIN_TOKEN" in message
        assert client.app.versions.keys() == {"1"}  # type: ignore[attr-defined]
        answer = client.post("/invocations", json={"dataframe_records": [{"age": 1}]})
        assert answer.headers["x-model-version"] == "1"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": "Basic czNjcmV0LXRva2Vu"}, 401),
        ({"x-admin-token": "s3cret-token"}, 401),
        ({"authorization": "Bearer s3cret-token"}, 200),
        ({"authorization": "bearer s3cret-token"}, 200),
    ],
)
def test_admin_token_from_a_file_is_a_bearer_credential(
    model_folders, token_file, headers, status, monkeypatch
):
    monkeypatch.delenv("MLOPS_SERVING_ADMIN_TOKEN", raising=False)
    with TestClient(make_app(model_folders, {"token_file": str(token_file)})) as client:
        resp = client.get("/admin/routes", headers=headers)
    assert resp.status_code == status, resp.text
    if status == 401:
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret" not in resp.text


def test_admin_token_from_the_environment(model_folders, monkeypatch):
    monkeypatch.setenv("MLOPS_SERVING_ADMIN_TOKEN", "env-token")
    with TestClient(make_app(model_folders)) as client:
        assert client.get("/admin/routes").status_code == 401
        ok = client.get("/admin/routes", headers={"authorization": "Bearer env-token"})
        assert ok.status_code == 200


def test_admin_token_is_compared_in_constant_time(model_folders, token_file, monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with TestClient(make_app(model_folders, {"token_file": str(token_file)})) as client:
        client.get("/admin/routes", headers={"authorization": "Bearer nope"})
    assert calls


def test_an_empty_or_missing_token_file_is_a_startup_error(model_folders, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (empty, tmp_path / "missing"):
        with pytest.raises(ConfigError, match=r"admin\.token_file"):
            make_app(model_folders, {"token_file": str(path)})


def test_the_cli_takes_a_token_file_never_the_token_itself(token_file):
    with pytest.raises(SystemExit):
        parser().parse_args(["--model", "m", "--version", "1=a", "--admin-token", "t"])
    args = parser().parse_args(
        ["--model", "m", "--version", "1=a", "--admin-token-file", str(token_file)]
    )
    assert build_config(args).admin.token_file == str(token_file)


def test_admin_sources_are_the_served_models_registry_or_under_the_model_root(
    model_folders, tmp_path, token_file, monkeypatch
):
    monkeypatch.delenv("MLOPS_SERVING_ADMIN_TOKEN", raising=False)
    root = model_folders["2"].parent  # holds toy-1 and toy-2
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    admin = {"token_file": str(token_file), "model_root": str(root)}
    auth = {"authorization": "Bearer s3cret-token"}
    with TestClient(make_app(model_folders, admin), headers=auth) as client:
        for source in (
            str(outside),
            str(root / ".." / outside.name),
            "models:/other_model/3",
            "runs:/abc/model",
            "/etc",
        ):
            resp = client.put("/admin/routes", json={"routes": {"9": 1}, "sources": {"9": source}})
            assert resp.status_code == 403, (source, resp.text)
            message = resp.json()["message"]
            assert "models:/toy/" in message and "admin.model_root" in message
        ok = client.put(
            "/admin/routes", json={"routes": {"2": 1}, "sources": {"2": str(model_folders["2"])}}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["loaded"] == ["1", "2"]


def test_without_a_model_root_admin_loads_no_folder(model_folders, token_file, monkeypatch):
    monkeypatch.delenv("MLOPS_SERVING_ADMIN_TOKEN", raising=False)
    admin = {"token_file": str(token_file)}
    auth = {"authorization": "Bearer s3cret-token"}
    with TestClient(make_app(model_folders, admin), headers=auth) as client:
        resp = client.put(
            "/admin/routes", json={"routes": {"2": 1}, "sources": {"2": str(model_folders["2"])}}
        )
        assert resp.status_code == 403 and "admin.model_root" in resp.json()["message"]
        # A version configured at start keeps its source: routing back to it needs none.
        back = client.put("/admin/routes", json={"routes": {"1": 1}})
        assert back.status_code == 200


def test_serve_exits_2_naming_an_unreadable_token_file(tmp_path, capsys):
    from airflow_mlops.serving.main import serve

    missing = tmp_path / "no-such-token"
    code = serve(["--model", "m", "--version", "1=a", "--admin-token-file", str(missing)])
    assert code == 2
    assert f"admin.token_file {missing}" in capsys.readouterr().err
