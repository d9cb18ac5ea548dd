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


def test_the_mlops_section_of_airflows_config_wins_over_the_variables(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_HOME", "/from/variable")
    monkeypatch.setenv("AIRFLOW__MLOPS__HOME", "/from/airflow")
    assert settings.mlops_home() == "/from/airflow"
    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_CONFIG", "/configs/churn.yaml")
    assert settings.dag_config("training", "default.yaml") == "/configs/churn.yaml"
    monkeypatch.setenv("AIRFLOW__MLOPS__HOME", "")
    assert settings.mlops_home() == "/from/variable"


_CFG_PROBE = """
import airflow.configuration
from airflow_mlops import settings
print(settings.mlops_home(), settings.mlflow_check_seconds())
"""


def test_an_airflow_cfg_mlops_section_is_read(tmp_path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "airflow.cfg").write_text("[mlops]\nhome = /srv/mlops\nmlflow_check_seconds = 3\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW__MLOPS"))}
    env["AIRFLOW_HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", _CFG_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["/srv/mlops", "3.0"]


def test_the_provider_declares_an_option_for_every_variable() -> None:
    from airflow_mlops.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["mlops"]["options"]
    source = Path(settings.__file__).read_text()
    variables = set(re.findall(r'"(MLOPS_[A-Z_]+)"', source)) - {"MLOPS_SERVING_ADMIN_TOKEN"}
    variables |= {f"MLOPS_{dag}_CONFIG" for dag in ("TRAINING", "SCORING", "ROLLOUT", "MONITOR")}
    assert {settings.option_name(v) for v in variables} == set(options)
    assert all(o["default"] is None for o in options.values())


def test_config_paths_follow_the_home_setting_wherever_it_is_set(monkeypatch) -> None:
    from airflow_mlops.core.config.parse import expand

    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.setenv("AIRFLOW__MLOPS__HOME", "/srv/mlops")
    assert expand("${MLOPS_HOME:-.mlops}/data/x.parquet") == "/srv/mlops/data/x.parquet"
    monkeypatch.delenv("AIRFLOW__MLOPS__HOME")
    assert expand("${MLOPS_HOME:-.mlops}/data/x.parquet") == ".mlops/data/x.parquet"
