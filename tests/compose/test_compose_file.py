"""``docker-compose.yaml`` checked without an engine: schema, files, ports, health, environment.

Nothing here starts a container (the build machines have no Docker engine); see docs/stack.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

from tests.conftest import REPO

SCHEMA = Path(__file__).with_name("compose_spec.json")
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer"}
PUBLISHED = {"airflow-apiserver": 8080, "mlflow": 5000}
# Keys of the embedded default's environment that describe the laptop, not the stack: the
# image sets AIRFLOW_HOME and PATH, the api-server listens on every container interface, and
# UNIT_TEST_MODE is a test-harness switch.
HOST_ONLY_KEYS = {"PATH", "AIRFLOW_HOME", "AIRFLOW__API__HOST", "AIRFLOW__CORE__UNIT_TEST_MODE"}


def _airflow_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in services.items()
        if svc.get("build", {}).get("dockerfile") == "docker/Dockerfile"
    }


def _long_running(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services that stay up (the one-shot init jobs excluded)."""
    return {name: svc for name, svc in services.items() if not name.endswith("-init")}


def test_vendored_schema_is_the_pinned_file() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_validates_against_the_compose_specification(compose: dict) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_schema_check_catches_an_unknown_key(compose: dict) -> None:
    import jsonschema

    broken = json.loads(json.dumps(compose))
    broken["services"]["mlflow"]["healthcheck"]["intervall"] = "5s"
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    assert any("intervall" in e.message for e in validator.iter_errors(broken))


def test_every_variable_has_a_default_so_up_works_without_an_env_file() -> None:
    text = (REPO / "docker-compose.yaml").read_text()
    # "$${X}" is a literal "${X}" for the container's shell, not compose interpolation.
    used = re.findall(r"(?<!\$)\$\{([^}]+)\}", text)
    assert used, "expected interpolated secrets"
    bare = [name for name in used if ":-" not in name]
    assert not bare, f"variables without a default: {bare}"
    example = (REPO / "docker" / ".env.example").read_text()
    for name in {u.split(":-")[0] for u in used}:
        assert re.search(rf"^{name}=", example, re.M), f"{name} missing from docker/.env.example"


def test_the_stack_has_every_required_service(services: dict) -> None:
    airflow = _airflow_services(services)
    commands = {svc["command"][0] for svc in airflow.values()}
    assert commands >= AIRFLOW_COMMANDS | {"db"}
    assert {"postgres", "minio", "minio-init", "mlflow"} <= set(services)
    for svc in airflow.values():
        assert svc["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert svc["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
            "postgresql+psycopg2://airflow:"
        )


def test_only_the_two_uis_are_published_and_only_on_loopback(services: dict) -> None:
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) == set(PUBLISHED)
    for name, ports in published.items():
        assert ports == [f"127.0.0.1:{PUBLISHED[name]}:{PUBLISHED[name]}"], (name, ports)
    for name, svc in services.items():
        assert svc.get("network_mode") != "host", name
        assert "expose" not in svc, name


def test_every_long_running_service_has_a_health_check(services: dict) -> None:
    for name, svc in _long_running(services).items():
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_depends_on_waits_for_health_or_completion(services: dict) -> None:
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for other, rule in depends.items():
            assert other in services and other != name, (name, other)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[other], (name, other)
            else:
                assert condition == "service_completed_successfully", (name, other, condition)
                assert other.endswith("-init") and "restart" not in services[other]
    for name, svc in _long_running(_airflow_services(services)).items():
        conditions = {k: v["condition"] for k, v in svc["depends_on"].items()}
        assert conditions["postgres"] == "service_healthy", name
        assert conditions["airflow-init"] == "service_completed_successfully", name
        assert conditions["mlflow"] == "service_healthy", name
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == (
        "service_completed_successfully"
    )


def _bind_mounts(svc: dict) -> list[tuple[str, str]]:
    mounts = []
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts.append((source, target))
    return mounts


def test_every_referenced_file_exists(compose: dict, services: dict) -> None:
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / build["dockerfile"]).is_file(), f"{name}: Dockerfile missing"
        for env_file in svc.get("env_file", []):
            assert (REPO / env_file).is_file(), f"{name}: env_file {env_file} missing"
        for source, _target in _bind_mounts(svc):
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: mounted {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"


def test_dags_plugins_and_mlops_home_are_the_mounted_folders(services: dict) -> None:
    for name, svc in _airflow_services(services).items():
        env, mounts = svc["environment"], dict((t, s) for s, t in _bind_mounts(svc))
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags", name
        assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins", name
        assert not mounts[env["MLOPS_HOME"]].startswith("."), f"{name}: MLOPS_HOME not a volume"


def test_airflow_services_get_the_environment_the_embedded_default_sets(services: dict) -> None:
    from airflow_mlops.devstack.stack import airflow_env

    with mock.patch.dict(os.environ, {}, clear=True):
        embedded = airflow_env(Path("/home"), "http://127.0.0.1:5000")
    wanted = set(embedded) - HOST_ONLY_KEYS
    assert "AIRFLOW_CONN_MLFLOW_DEFAULT" in wanted and "MLOPS_HOME" in wanted
    for name, svc in _airflow_services(services).items():
        env = svc["environment"]
        missing = sorted(wanted - set(env))
        assert not missing, f"{name} lacks {missing} (set by devstack.airflow_env)"
        for key in ("AIRFLOW__CORE__LOAD_EXAMPLES", "GIT_PYTHON_REFRESH"):
            assert env[key] == embedded[key], (name, key)
        conn = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
        assert conn["conn_type"] == json.loads(embedded["AIRFLOW_CONN_MLFLOW_DEFAULT"])["conn_type"]
        assert conn["host"] == env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_the_mlflow_connection_resolves_through_the_hook(services: dict) -> None:
    from airflow_mlops.hooks.mlflow import MLflowHook

    env = services["airflow-scheduler"]["environment"]
    with mock.patch.dict(
        os.environ, {"AIRFLOW_CONN_MLFLOW_DEFAULT": env["AIRFLOW_CONN_MLFLOW_DEFAULT"]}
    ):
        config = MLflowHook().config
    assert config.tracking_uri == "http://mlflow:5000"
    assert config.ui_url == "http://127.0.0.1:5000"


def test_mlflow_keeps_artifacts_in_the_bucket_minio_init_creates(services: dict) -> None:
    mlflow = services["mlflow"]
    command = mlflow["command"]
    destination = command[command.index("--artifacts-destination") + 1]
    assert destination == "s3://mlflow/"
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    init = (REPO / "docker" / "minio-init.sh").read_text()
    buckets = re.search(r"for bucket in ([\w ]+); do", init)
    assert buckets and "mlflow" in buckets.group(1).split()
    assert "mc mb --ignore-existing" in init
    backend = command[command.index("--backend-store-uri") + 1]
    database = backend.rsplit("/", 1)[1]
    sql = (REPO / "docker" / "postgres-init.sql").read_text()
    assert f"CREATE DATABASE {database} OWNER mlflow" in sql
    for name, svc in _airflow_services(services).items():
        conn = json.loads(svc["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["conn_type"] == "aws", name
        assert conn["extra"]["endpoint_url"] == "http://minio:9000", name
        assert "AWS_ACCESS_KEY_ID" not in svc["environment"], name  # one source of credentials
