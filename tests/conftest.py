"""Shared test setup: an isolated Airflow home, and a real MLflow server when a test asks.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-tests-"))

os.environ.update(
    {
        "MLOPS_HOME": str(_SESSION_HOME),
        "AIRFLOW_HOME": str(_SESSION_HOME / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    }
)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)


@pytest.fixture(scope="session")
def mlops_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def mlflow_server(mlops_home: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite + local artifacts) on a free loopback port."""
    from airflow_mlops.devstack.stack import MLflowServer

    with MLflowServer(mlops_home / "mlflow") as server:
        yield server.url


@pytest.fixture(scope="session")
def airflow_db(mlops_home: Path) -> Path:
    """The SQLite Airflow metadata database, migrated once per session."""
    from airflow_mlops.devstack.stack import migrate_airflow_db

    migrate_airflow_db(dict(os.environ))
    return mlops_home / "airflow"


@pytest.fixture(scope="session")
def demo_config_path() -> Path:
    return REPO / "dags" / "configs" / "demo_churn.yaml"


@pytest.fixture(scope="session")
def champion(mlflow_server: str, mlops_home: Path, demo_config_path: Path) -> dict:
    """A small demo model trained, registered and promoted through the core steps (no Airflow).

    Registered as ``fixture_churn`` (not the training DAG's model) so tests that run
    ``ml_training`` do not change it. Returns the config, tracking settings, the registered
    version dict and the training data path.
    """
    from dataclasses import replace

    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.pipeline import steps
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.devstack.demo_data import write_dataset

    data = mlops_home / "data" / "fixture_churn" / "train.parquet"
    write_dataset(str(data), rows=20_000, seed=0)
    base = load_config(demo_config_path)
    config = replace(
        base,
        name="fixture_churn",
        data=replace(base.data, uri=str(data)),
        work_dir=str(mlops_home / "work"),
    )
    tracking = TrackingConfig(tracking_uri=mlflow_server)
    out = str(mlops_home / "work" / "fixture")
    done = steps.train_and_register(
        tracking, config, out, airflow={"dag_id": "pytest"}, promote_version=True
    )
    registered, prepared = done["registered"], done["prepared"]
    return {
        "config": config,
        "tracking": tracking,
        "registered": registered,
        "data": data,
        "prepared": prepared,
    }


def register_copies(champion: dict, name: str, count: int, out: str) -> list[str]:
    """Register ``count`` versions of ``name`` from the champion fixture's data and config
    (one fitted pipeline, so every version answers alike); returns their version numbers."""
    from dataclasses import replace

    from airflow_mlops.core.pipeline import steps

    config = replace(champion["config"], name=name)
    prepared = champion["prepared"]
    trained = steps.train(config, prepared, out)
    converted = steps.convert(config, prepared, trained, out)
    return [
        steps.register(
            champion["tracking"],
            config,
            prepared=prepared,
            validation=None,
            trained=trained,
            evaluation=None,
            converted=converted,
            airflow={"dag_id": f"pytest-{name}"},
            register_identical=True,
        )["version"]
        for _ in range(count)
    ]


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An environment where botocore finds no credentials anywhere (env, files, metadata)."""
    import os

    import s3fs

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def unreachable_s3(no_aws_credentials, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials, and an S3 endpoint on the discard port that refuses every connection."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
