from __future__ import annotations

import json

import pytest

from airflow_mlops.hooks.mlflow import MLflowHook


def _conn(monkeypatch, conn_id: str, **fields):
    value = json.dumps({"conn_type": "mlflow", **fields})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


def test_host_with_scheme_is_the_tracking_uri(monkeypatch):
    _conn(monkeypatch, "ml_a", host="http://mlflow.internal:5000", login="u", password="p")
    config = MLflowHook("ml_a").config
    assert config.tracking_uri == "http://mlflow.internal:5000"
    assert (config.username, config.password) == ("u", "p")
    assert config.model_version_url("m", "3") == "http://mlflow.internal:5000/#/models/m/versions/3"


def test_host_and_port_are_assembled(monkeypatch):
    _conn(monkeypatch, "ml_b", host="mlflow", port=5001, schema="https")
    assert MLflowHook("ml_b").config.tracking_uri == "https://mlflow:5001"


def test_extra_overrides_and_ui_url(monkeypatch):
    _conn(
        monkeypatch,
        "ml_c",
        host="ignored",
        extra={"tracking_uri": "sqlite:////tmp/x.db", "ui_url": "http://ui:5000/"},
    )
    config = MLflowHook("ml_c").config
    assert config.tracking_uri == "sqlite:////tmp/x.db"
    assert config.run_url("1", "abc") == "http://ui:5000/#/experiments/1/runs/abc"


def test_sqlite_store_has_no_ui_link(monkeypatch):
    _conn(monkeypatch, "ml_d", host="sqlite:////tmp/x.db")
    assert MLflowHook("ml_d").config.model_version_url("m", "1") is None


def test_falls_back_to_environment_then_fails_clearly(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert MLflowHook("nothing_here").config.tracking_uri == "http://from-env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(Exception, match="no Airflow connection 'nothing_here'"):
        _ = MLflowHook("nothing_here").config


def test_test_connection_reports_unreachable_server(monkeypatch):
    _conn(monkeypatch, "ml_e", host="http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    ok, message = MLflowHook("ml_e").test_connection()
    assert not ok
    assert "cannot reach MLflow at http://127.0.0.1:9" in message


def test_provider_info_names_real_classes():
    import importlib

    from airflow_mlops.get_provider_info import get_provider_info

    info = get_provider_info()
    for path in [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_the_connection_forms_fields_and_token(monkeypatch):
    _conn(
        monkeypatch,
        "ml_f",
        host="http://ignored:5000",
        extra={
            "tracking_uri": "http://mlflow.internal:5000",
            "registry_uri": "",
            "extra__mlflow__ui_url": "http://ui.internal/",
            "token": "t0k3n",
        },
    )
    config = MLflowHook("ml_f").config
    assert config.tracking_uri == "http://mlflow.internal:5000"
    assert config.registry_uri is None  # an empty form field is unset
    assert config.ui_base == "http://ui.internal"
    assert config.token == "t0k3n"
    assert "t0k3n" not in repr(config)


_FORM_PROBE = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
ours = {k: v for k, v in pm.connection_form_widgets.items() if k.startswith("extra__mlflow__")}
print(json.dumps({
    "behaviour": pm.field_behaviours.get("mlflow"),
    "widgets": {k: v.field for k, v in ours.items()},
    "sensitive": [k for k, v in ours.items() if v.is_sensitive],
}))
"""


def test_the_connection_form_comes_from_the_provider_info(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _FORM_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["behaviour"]["hidden_fields"] == ["schema"]
    assert found["behaviour"]["relabeling"]["host"] == "Tracking server (URL or host)"
    assert set(found["widgets"]) == {
        f"extra__mlflow__{name}" for name in ("tracking_uri", "registry_uri", "ui_url", "token")
    }
    assert found["widgets"]["extra__mlflow__tracking_uri"]["schema"]["title"] == "Tracking URI"
    assert found["sensitive"] == ["extra__mlflow__token"]


def test_provider_info_is_valid_against_airflows_schema():
    import importlib.resources

    import jsonschema

    from airflow_mlops.get_provider_info import get_provider_info

    schema = json.loads(
        importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text()
    )
    jsonschema.validate(get_provider_info(), schema)
