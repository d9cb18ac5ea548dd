"""``airflow_mlops.settings``: the one reader of the ``MLOPS_*`` variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_mlops import settings

PACKAGE = Path(settings.__file__).parent


def test_mlops_home_defaults_to_dot_mlops_and_is_read_when_asked(monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    assert settings.mlops_home() == ".mlops"
    monkeypatch.setenv("MLOPS_HOME", "/data/here")
    assert settings.mlops_home() == "/data/here"
    monkeypatch.setenv("MLOPS_HOME", "")
    assert settings.mlops_home() == ".mlops"


def test_every_default_below_the_home_follows_it(monkeypatch, tmp_path) -> None:
    from airflow_mlops.core.events import default_log_path
    from airflow_mlops.core.scoring.spec import ScoringSpec
    from airflow_mlops.serving.config import _monitoring_dir

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLOPS_EVENT_LOG", raising=False)
    assert default_log_path() == tmp_path / "events" / "events.jsonl"
    assert _monitoring_dir() == str(tmp_path / "monitoring")
    spec = ScoringSpec.from_dict({}, "test")
    assert spec.monitoring_root() == f"{tmp_path}/monitoring"
    monkeypatch.setenv("MLOPS_EVENT_LOG", str(tmp_path / "elsewhere.jsonl"))
    assert default_log_path() == tmp_path / "elsewhere.jsonl"


def test_mlflow_check_seconds(monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_MLFLOW_CHECK_SECONDS", raising=False)
    assert settings.mlflow_check_seconds() == 10.0
    monkeypatch.setenv("MLOPS_MLFLOW_CHECK_SECONDS", "2.5")
    assert settings.mlflow_check_seconds() == 2.5
    monkeypatch.setenv("MLOPS_MLFLOW_CHECK_SECONDS", "soon")
    with pytest.raises(ValueError, match="MLOPS_MLFLOW_CHECK_SECONDS='soon'"):
        settings.mlflow_check_seconds()


def test_dag_configs_and_the_monitor_fallback(monkeypatch) -> None:
    for dag in ("TRAINING", "SCORING", "ROLLOUT", "MONITOR"):
        monkeypatch.delenv(f"MLOPS_{dag}_CONFIG", raising=False)
    assert settings.dag_config("training", "demo.yaml") == "demo.yaml"
    monkeypatch.setenv("MLOPS_TRAINING_CONFIG", "train.yaml")
    assert settings.dag_config("monitor", "demo.yaml") == "train.yaml"
    monkeypatch.setenv("MLOPS_MONITOR_CONFIG", "watch.yaml")
    assert settings.dag_config("monitor", "demo.yaml") == "watch.yaml"
    assert settings.dag_config("scoring", "demo.yaml") == "demo.yaml"


def test_small_readers(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_CODE_VERSION", "abc123")
    monkeypatch.setenv("MLOPS_XCOM_FILE", "/airflow/xcom/return.json")
    monkeypatch.delenv("MLOPS_UI_MLFLOW_CONN_ID", raising=False)
    assert settings.code_version() == "abc123"
    assert settings.xcom_file() == "/airflow/xcom/return.json"
    assert settings.ui_mlflow_conn_id("mlflow_default") == "mlflow_default"


def test_no_other_module_of_the_package_reads_an_mlops_variable() -> None:
    # Writes (the stack exporting MLOPS_HOME to the servers it starts) are fine.
    reads = re.compile(
        r"environ\.get\(\s*[\"']MLOPS_|getenv\(\s*[\"']MLOPS_"
        r"|environ\[[\"']MLOPS_\w*[\"']\](?!\s*=)"
    )
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "settings.py" and reads.search(path.read_text())
    ]
    assert offenders == []


def test_settings_imports_the_standard_library_only() -> None:
    import ast
    import sys

    tree = ast.parse((PACKAGE / "settings.py").read_text())
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}
