"""Packaging without a registry: Dockerfile text, requirements scan, wheel, no-engine errors.

No Docker engine exists on the build machines: the build tests point the Docker SDK at a closed
loopback port and at a missing unix socket, and never pretend an image was built.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from airflow_mlops.core.packaging import context as packaging
from airflow_mlops.core.packaging.context import BuildContext, DockerUnavailable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _context(tmp_path: Path) -> BuildContext:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return BuildContext(
        path=str(tmp_path), image_tag="mlops/m:1", files=("Dockerfile",), digest_of_context="x"
    )


def test_dockerfile_runs_as_non_root_with_healthcheck_and_no_deps_install():
    text = packaging.dockerfile({"mlops.model.name": "m"}, "airflow_mlops-0.1.0-py3-none-any.whl")
    lines = text.splitlines()
    assert lines[1] == "FROM python:3.11-slim"
    user = [line for line in lines if line.startswith("USER ")]
    assert user == ["USER 10001:10001"]
    # USER comes after every RUN: nothing runs as root once the app is in place.
    last_run = max(i for i, line in enumerate(lines) if line.startswith("RUN "))
    assert lines.index(user[0]) > last_run
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert "/health" in text and "EXPOSE 8080" in text
    assert "pip install --no-cache-dir --no-deps /tmp/wheels/airflow_mlops" in text
    assert lines[-1] == (
        'ENTRYPOINT ["python", "-m", "airflow_mlops.serving", "--config", "/app/serving.json"]'
    )
    assert 'mlops.model.name="m"' in text


def test_serving_requirements_are_pinned_and_exclude_airflow_mlflow_sklearn():
    pins = packaging.serving_requirements()
    names = {pin.split("==")[0] for pin in pins}
    assert {"onnxruntime", "numpy", "starlette", "uvicorn", "pyarrow"} <= names
    assert all("==" in pin for pin in pins)
    assert not names & {"apache-airflow", "mlflow", "scikit-learn", "airflow-mlops"}


def test_serving_requirements_follow_module_level_imports(tmp_path):
    pkg = tmp_path / "airflow_mlops"
    (pkg / "serving").mkdir(parents=True)
    (pkg / "core").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "feed.py").write_text("import pandas as pd\n\ndef f():\n    import mlflow\n")
    (pkg / "serving" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sklearn\n"
    )
    (pkg / "serving" / "app.py").write_text("from airflow_mlops.core import feed\nimport json\n")
    # pandas reached through core.feed; mlflow (inside a function) and sklearn (type checking)
    # are not needed at import time.
    assert packaging.serving_imports(pkg) == {"pandas"}
    assert any(pin.startswith("pandas==") for pin in packaging.serving_requirements(pkg))


def test_serving_requirements_refuse_a_serving_module_that_imports_mlflow(tmp_path):
    pkg = tmp_path / "airflow_mlops"
    (pkg / "serving").mkdir(parents=True)
    (pkg / "serving" / "app.py").write_text("import mlflow\n")
    with pytest.raises(packaging.PackagingError, match=r"\['mlflow'\] at module level"):
        packaging.serving_requirements(pkg)


def test_wheel_is_reproducible_has_no_dependencies_and_installs_with_no_deps(tmp_path):
    first = packaging.build_wheel(tmp_path / "a")
    second = packaging.build_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        meta = zf.read("airflow_mlops-0.1.0.dist-info/METADATA").decode()
    assert "airflow_mlops/core/packaging/context.py" in names
    assert not any("__pycache__" in n for n in names)
    assert "Requires-Dist" not in meta
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, "--target", str(target), str(first)], check=True)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(target)!r}); import airflow_mlops.core.config "
            "as c; print(c.__file__)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.startswith(str(target))


def test_build_image_without_engine_on_closed_port_names_url_reason_and_context(tmp_path):
    url = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(DockerUnavailable) as err:
        packaging.build_image(_context(tmp_path), docker_url=url)
    message = str(err.value)
    assert message.startswith(f"no Docker engine at {url}: ")
    assert message.endswith(f"the build context is at {tmp_path}")


def test_build_image_without_engine_on_missing_unix_socket_fails_clearly(tmp_path):
    url = f"unix://{tmp_path}/missing.sock"
    with pytest.raises(DockerUnavailable, match=f"no Docker engine at {url}"):
        packaging.build_image(_context(tmp_path), docker_url=url)


def test_build_image_context_only_says_no_image_was_built(tmp_path):
    url = f"tcp://127.0.0.1:{_closed_port()}"
    result = packaging.build_image(_context(tmp_path), docker_url=url, allow_context_only=True)
    assert result.status == "context_only"
    assert result.image_id is None
    assert "no image was built" in result.message
    assert result.context_path == str(tmp_path)


def test_image_repository_is_lower_case_and_prefixed():
    assert packaging.image_repository("Demo_Churn") == "mlops/demo_churn"
    assert packaging.image_repository("x", "ghcr.io/acme/") == "ghcr.io/acme/mlops/x"


def test_the_image_config_keeps_admin_off_unless_a_token_file_is_mounted(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from airflow_mlops.serving.app import create_app
    from airflow_mlops.serving.config import ServingConfig

    monkeypatch.delenv("MLOPS_SERVING_ADMIN_TOKEN", raising=False)
    raw = packaging.serving_config(
        "m", "1", "/app/model", host="0.0.0.0", port=8080, capture_dir="/tmp/capture"
    )
    assert raw["host"] == "0.0.0.0"
    assert raw["admin"] == {"enabled": True, "token_file": None, "model_root": None}
    # No lifespan: nothing is loaded, the admin guard answers on its own.
    anonymous = TestClient(create_app(ServingConfig.from_dict(raw))).get("/admin/routes")
    assert anonymous.status_code == 403, anonymous.text
    secret = tmp_path / "token"
    secret.write_text("mounted-secret\n")
    mounted = ServingConfig.from_dict({**raw, "admin": {"token_file": str(secret)}})
    client = TestClient(create_app(mounted))
    assert client.get("/admin/routes").status_code == 401
    ok = client.get("/admin/routes", headers={"authorization": "Bearer mounted-secret"})
    assert ok.status_code == 200
