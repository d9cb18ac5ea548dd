"""The stack's Dockerfiles read statically: pinned bases, non-root users, pinned installs."""

from __future__ import annotations

import fnmatch
import re

from tests.compose.conftest import dockerfile_instructions, requirement_pins
from tests.conftest import REPO

AIRFLOW = REPO / "docker" / "Dockerfile"
MLFLOW = REPO / "docker" / "mlflow.Dockerfile"


def _last(instructions: list[tuple[str, str]], word: str) -> str:
    return [args for name, args in instructions if name == word][-1]


def test_base_images_are_pinned_to_the_versions_in_requirements() -> None:
    pins = requirement_pins(REPO / "requirements.txt")
    airflow_base = _last(dockerfile_instructions(AIRFLOW), "FROM")
    mlflow_base = _last(dockerfile_instructions(MLFLOW), "FROM")
    assert airflow_base == f"apache/airflow:{pins['apache-airflow']}-python3.11"
    assert mlflow_base == f"ghcr.io/mlflow/mlflow:v{pins['mlflow']}"


def test_images_run_as_a_non_root_user() -> None:
    for path in (AIRFLOW, MLFLOW):
        user = _last(dockerfile_instructions(path), "USER")
        assert user.split(":")[0] not in {"root", "0"}, f"{path.name} ends as {user}"


def test_airflow_image_installs_requirements_then_the_package_without_deps() -> None:
    steps = dockerfile_instructions(AIRFLOW)
    runs = [args for name, args in steps if name == "RUN"]
    copies = [args.split() for name, args in steps if name == "COPY"]
    copied = {
        target: sources
        for *sources, target in (c[1:] if c[0].startswith("--") else c for c in copies)
    }
    requirements_target = next(t for t, s in copied.items() if s == ["requirements.txt"])
    install = next(r for r in runs if f"-r {requirements_target}" in r)
    assert "pip install" in install
    package = next(r for r in runs if "--no-deps" in r)
    assert re.search(r"pip install --no-cache-dir --no-deps /opt/mlops/src\b", package)
    assert runs.index(install) < runs.index(package)
    for sources in copied.values():
        for source in sources:
            assert (REPO / source).exists(), f"COPY source {source} missing from the context"


def test_dockerignore_lets_every_copied_file_through() -> None:
    patterns = [
        line.strip()
        for line in (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the context should start from nothing (the repo has a .venv)"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for name, args in dockerfile_instructions(AIRFLOW):
        if name != "COPY":
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert any(fnmatch.fnmatch(source, p) for p in allowed), f"{source} is ignored"


def test_stack_requirements_agree_with_the_pinned_set() -> None:
    pinned = requirement_pins(REPO / "requirements.txt")
    stack = requirement_pins(REPO / "docker" / "requirements-stack.txt")
    assert {"psycopg2-binary", "s3fs"} <= set(stack)
    clashes = {k: (v, pinned[k]) for k, v in stack.items() if k in pinned and pinned[k] != v}
    assert not clashes, f"docker/requirements-stack.txt disagrees with requirements.txt: {clashes}"
    mlflow_run = next(
        args for name, args in dockerfile_instructions(MLFLOW) if name == "RUN" and "pip" in args
    )
    assert f"psycopg2-binary=={stack['psycopg2-binary']}" in mlflow_run
    # boto3 and botocore are released in lockstep; the MLflow image matches the Airflow one.
    assert f"boto3=={stack['botocore']}" in mlflow_run
