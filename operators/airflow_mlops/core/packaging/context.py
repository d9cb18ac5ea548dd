"""A Docker build context per model version, and an image build when a Docker engine answers.

The context holds everything the image needs and nothing else: the ONNX model with its
metadata (a *model folder*), the server config, pinned serving requirements (never Airflow,
MLflow or scikit-learn) and this package as a wheel installed with ``--no-deps`` so that its
Airflow requirements are not pulled in. The same context runs as a plain process for debugging::

    python -m airflow_mlops.serving --config <context>/serving.local.json

The image has two entry points: the scoring server (its ``ENTRYPOINT``) and the batch scorer
``airflow-mlops score --model /app/model ...`` that ``scoring.runner: kubernetes`` runs in a
pod per partition (:mod:`airflow_mlops.core.scoring_pod`). The requirements cover both.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import logging
import re
import shutil
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from airflow_mlops.core.model.folder import write_model_folder
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

log = logging.getLogger(__name__)

BASE_IMAGE = "python:3.11-slim"
CONTAINER_PORT = 8080
APP_UID = 10001
# What the image always needs, whatever the scan of the serving modules finds (some of these are
# imported inside functions, which the scan does not follow).
BASE_SERVING_PACKAGES = ("onnxruntime", "numpy", "starlette", "uvicorn", "pyarrow")
# ``airflow-mlops score`` (batch scoring in a pod) reaches these through imports inside functions,
# which the scan does not follow; their module-level imports are scanned like serving/'s.
BATCH_SCORING_MODULES = (
    "cli.py",
    "core/scoring/container.py",
    "core/scoring/partition.py",
    "core/scoring/io.py",
    "core/scoring/arrow_feed.py",
    "core/scoring/output.py",
    "core/data/io.py",
    "core/model/feed.py",
    "core/model/folder.py",
    "core/model/reference.py",
    "core/model/session.py",
)
# fsspec loads a protocol's implementation by name (s3:// -> s3fs): no import names it. Pinned
# when installed here (requirements.txt has it), else left out with a warning.
BATCH_SCORING_PACKAGES = ("s3fs",)
# Never in a serving image: the scheduler, the registry client and training libraries.
FORBIDDEN_PACKAGES = frozenset(
    {"apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk", "mlflow", "mlflow-skinny"}
    | {"scikit-learn", "skl2onnx", "onnxmltools", "lightgbm", "great-expectations", "evidently"}
)
_FORBIDDEN_MODULES = frozenset(
    {"airflow", "mlflow", "sklearn", "skl2onnx", "onnxmltools", "lightgbm", "evidently"}
    | {"great_expectations"}
)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackagingError(MLOpsError, RuntimeError):
    """A build context or image that cannot be made; the message names the model and version."""


class DockerUnavailable(PackagingError):
    """No Docker engine answered; the message names the URL, the reason and the context."""


@dataclass(frozen=True)
class BuildContext:
    """A Docker build context on disk.

    :param path: the context folder.
    :param image_tag: the tag the image gets when built.
    :param files: context files, relative to ``path``.
    :param digest_of_context: sha256 over every file's path and content (same model, same
        package, same pins: same digest).
    :param labels: the image labels (also written into the Dockerfile).
    :param model: ``{"name", "version", "run_id"}``.
    """

    path: str
    image_tag: str
    files: tuple[str, ...]
    digest_of_context: str
    labels: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = list(self.files)
        return out


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_image` did: ``built`` or ``context_only`` (no engine, allowed)."""

    status: str
    image_tag: str
    context_path: str
    message: str
    image_id: str | None = None
    docker_url: str | None = None
    log_tail: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["log_tail"] = list(self.log_tail)
        return out


def image_repository(name: str, registry: str | None = None) -> str:
    """``mlops/<name>`` in lower case (Docker refuses upper case), under ``registry`` if given."""
    repo = "mlops/" + re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return f"{registry.rstrip('/')}/{repo}" if registry else repo


def _model_meta(model_dir: Path, name: str, version: str) -> dict[str, Any]:
    """Read features, classes and input types from the MLmodel file of a registered version."""
    import yaml

    found = sorted(model_dir.rglob("MLmodel"))
    if not found:
        raise PackagingError(f"{name} v{version}: no MLmodel file under {model_dir}")
    mlmodel = yaml.safe_load(found[0].read_text())
    pyfunc = (mlmodel.get("flavors") or {}).get("python_function") or {}
    config = pyfunc.get("config") or pyfunc.get("model_config") or {}
    numeric = list(config.get("numeric_features") or [])
    categorical = list(config.get("categorical_features") or [])
    if not numeric and not categorical:
        raise PackagingError(
            f"{name} v{version}: MLmodel has no model config with numeric/categorical features"
        )
    inputs = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
    declared = {col["name"]: col["type"] for col in inputs if "name" in col}
    input_types = {c: declared.get(c, "double") for c in numeric}
    input_types |= {c: "string" for c in categorical}
    return {
        "name": name,
        "version": str(version),
        "numeric_features": numeric,
        "categorical_features": categorical,
        "classes": list(config.get("classes") or []),
        "input_types": input_types,
        "run_id": mlmodel.get("run_id"),
    }


def model_folder(
    tracking: TrackingConfig, name: str, version: str, dst: str | Path
) -> tuple[Path, dict[str, Any]]:
    """Download a registered version's ONNX model and write it as a local model folder.

    Returns the folder and the version's metadata (features, classes, input types, run id).
    """
    import tempfile

    from airflow_mlops.core.registry import versions as registry

    found = registry.get_version(tracking, name, str(version))
    if found is None:
        raise PackagingError(f"cannot package {name} v{version}: no such version in the registry")
    download = Path(tempfile.mkdtemp(prefix="mlops-package-"))
    try:
        onnx_path = registry.download_onnx(tracking, found.model_uri, str(download))
        meta = _model_meta(download, name, found.version)
        meta["run_id"] = meta.get("run_id") or found.run_id
        folder = write_model_folder(dst, onnx_path, meta)
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return folder, meta


def _module_level_imports(source: str) -> set[str]:
    """Top-level names imported at module level (not inside functions or TYPE_CHECKING)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(source).body)
    return names


def serving_imports(package_dir: Path) -> set[str]:
    """Third-party top-level modules that importing ``airflow_mlops.serving`` needs.

    Follows module-level imports from ``serving/`` through this package's own modules.
    """
    return _scan_imports(package_dir, sorted((package_dir / "serving").rglob("*.py")))


def batch_scoring_imports(package_dir: Path) -> set[str]:
    """Third-party top-level modules that ``airflow-mlops score`` needs (same scan)."""
    roots = [package_dir / rel for rel in BATCH_SCORING_MODULES]
    return _scan_imports(package_dir, [p for p in roots if p.is_file()])


def _scan_imports(package_dir: Path, roots: list[Path]) -> set[str]:
    todo = [str(p) for p in roots]
    seen: set[str] = set()
    external: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _module_level_imports(Path(path).read_text()):
            top = name.split(".")[0]
            if top != "airflow_mlops":
                if top not in sys.stdlib_module_names and top != "__future__":
                    external.add(top)
                continue
            parts = name.split(".")[1:]
            base = package_dir.joinpath(*parts)
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    todo.append(str(candidate))
            # ``from airflow_mlops.core import registry`` also loads the parent package.
            parent = package_dir.joinpath(*parts[:-1], "__init__.py")
            if parent.is_file():
                todo.append(str(parent))
    return external


def serving_requirements(package_dir: Path | None = None) -> list[str]:
    """Pinned requirements of the serving image: the base set plus what the scan finds.

    Pins are the versions installed here (the ones the tests ran with). Raises
    :class:`PackagingError` if the serving code imports Airflow, MLflow or a training library
    at module level.
    """
    package_dir = package_dir or Path(__file__).resolve().parents[2]
    modules = serving_imports(package_dir) if (package_dir / "serving").is_dir() else set()
    bad = sorted(modules & _FORBIDDEN_MODULES)
    if bad:
        raise PackagingError(
            f"the serving modules import {bad} at module level; the serving image must not "
            "need Airflow, MLflow or training libraries"
        )
    dists = set(BASE_SERVING_PACKAGES)
    batch = batch_scoring_imports(package_dir)
    if batch:
        bad = sorted(batch & _FORBIDDEN_MODULES)
        if bad:
            raise PackagingError(
                f"the batch scorer (airflow-mlops score) imports {bad} at module level; the "
                "serving image must not need Airflow, MLflow or training libraries"
            )
        modules |= batch
        for dist in BATCH_SCORING_PACKAGES:
            try:
                metadata.version(dist)
            except metadata.PackageNotFoundError:
                # Pins are what is installed here; a pod then cannot read that protocol's URIs.
                log.warning(
                    "%s is not installed here, so the serving image leaves it out: scoring "
                    "pods cannot read the URIs it implements",
                    dist,
                )
            else:
                dists.add(dist)
    mapping = metadata.packages_distributions()
    for module in modules:
        for dist in mapping.get(module, []):
            dists.add(dist)
    pins = []
    for dist in sorted(dists, key=str.lower):
        if dist.lower() in FORBIDDEN_PACKAGES or dist.lower() == "airflow-mlops":
            continue
        try:
            pins.append(f"{dist.lower()}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError as exc:
            raise PackagingError(f"serving requirement {dist} is not installed here") from exc
    return pins


def build_wheel(dst_dir: Path, package_dir: Path | None = None) -> Path:
    """A pure-Python wheel of this package with no declared dependencies.

    Built from the installed package files (works for editable and regular installs alike),
    byte-for-byte reproducible. The image installs it with ``pip install --no-deps``.
    """
    from airflow_mlops import __version__

    package_dir = package_dir or Path(__file__).resolve().parents[2]
    dist_info = f"airflow_mlops-{__version__}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed"):
            rel = path.relative_to(package_dir.parent).as_posix()
            files.append((rel, path.read_bytes()))
    files.append(
        (
            f"{dist_info}/METADATA",
            (
                "Metadata-Version: 2.1\nName: airflow-mlops\n"
                f"Version: {__version__}\n"
                "Summary: airflow-mlops (serving image build; dependencies pinned separately)\n"
            ).encode(),
        )
    )
    # pip turns this into the ``airflow-mlops`` command inside the image (``score`` runs there).
    files.append(
        (
            f"{dist_info}/entry_points.txt",
            b"[console_scripts]\nairflow-mlops = airflow_mlops.cli:main\n",
        )
    )
    files.append(
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: airflow-mlops\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        )
    )
    record = []
    for rel, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    dst_dir.mkdir(parents=True, exist_ok=True)
    wheel = dst_dir / f"airflow_mlops-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files:
            info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return wheel


def serving_config(
    name: str, version: str, source: str, *, host: str, port: int, capture_dir: str | None
) -> dict[str, Any]:
    """A one-version server config in the scoring server's format.

    Admin stays off (no token file, no model root): an image bound to 0.0.0.0 must not take
    anonymous route changes. To turn it on, mount a Secret and pass its path as container args
    (``--admin-token-file /var/run/secrets/mlops-admin/token``) or set
    ``MLOPS_SERVING_ADMIN_TOKEN`` from it.
    """
    return {
        "model": name,
        "versions": {str(version): source},
        "routes": {str(version): 100},
        "shadow": None,
        "capture": {"dir": capture_dir, "sample_rate": 0.0 if capture_dir is None else 0.05},
        "admin": {"enabled": True, "token_file": None, "model_root": None},
        "host": host,
        "port": port,
    }


def dockerfile(labels: dict[str, str], wheel_name: str, port: int = CONTAINER_PORT) -> str:
    """The Dockerfile text: slim base, pinned deps, the package with ``--no-deps``, non-root."""
    label_lines = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=2)"
        ".status == 200 else 1)"
    )
    return f"""\
# Generated by airflow_mlops.core.packaging: one image per model version.
FROM {BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 OMP_NUM_THREADS=1
LABEL {label_lines}
RUN groupadd --system --gid {APP_UID} mlops \\
 && useradd --system --uid {APP_UID} --gid mlops --home-dir /app --no-create-home \\
    --shell /usr/sbin/nologin mlops
WORKDIR /app
COPY requirements-serving.txt /app/requirements-serving.txt
RUN pip install --no-cache-dir -r /app/requirements-serving.txt
# The package's own requirements (Airflow, MLflow, training libraries) stay out of the image.
COPY wheels/{wheel_name} /tmp/wheels/{wheel_name}
RUN pip install --no-cache-dir --no-deps /tmp/wheels/{wheel_name} && rm -rf /tmp/wheels
COPY model/ /app/model/
COPY serving.json /app/serving.json
# Batch scoring of one partition (Kubernetes pods override the entry point with it):
#   airflow-mlops score --model /app/model --input <uri> --output <uri> ...
USER {APP_UID}:{APP_UID}
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \\
  CMD ["python", "-c", "{probe}"]
# Admin (/admin/*) is off unless a token is given: mount a Secret and append
#   --admin-token-file <path>   (or set MLOPS_SERVING_ADMIN_TOKEN from it)
ENTRYPOINT ["python", "-m", "airflow_mlops.serving", "--config", "/app/serving.json"]
"""


DOCKERIGNORE = "serving.local.json\n**/__pycache__\n**/*.pyc\n.git\n"


def _digest(root: Path, files: list[str]) -> str:
    total = hashlib.sha256()
    for rel in sorted(files):
        total.update(rel.encode() + b"\0")
        total.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return total.hexdigest()


def build_context(
    tracking: TrackingConfig,
    name: str,
    version: str,
    dst: str | Path,
    *,
    registry: str | None = None,
    port: int = CONTAINER_PORT,
) -> BuildContext:
    """Write the Docker build context of ``name`` v``version`` into ``dst`` (emptied first).

    :param tracking: where MLflow is.
    :param name: registered model name.
    :param version: version number.
    :param dst: the context folder.
    :param registry: image registry prefix for the tag (``ghcr.io/acme``), if any.
    :param port: the port the server listens on inside the container.
    """
    from airflow_mlops import __version__
    from airflow_mlops.core.registry import versions as model_registry

    root = Path(dst)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    folder, meta = model_folder(tracking, name, str(version), root / "model")
    found = model_registry.get_version(tracking, name, str(version))
    tags = found.tags if found else {}
    wheel = build_wheel(root / "wheels")
    labels = {
        "org.opencontainers.image.title": f"{name} scoring server",
        "org.opencontainers.image.description": (
            f"ONNX Runtime scoring server for {name} v{version}"
        ),
        "org.opencontainers.image.version": str(version),
        "org.opencontainers.image.vendor": "airflow-mlops",
        "org.opencontainers.image.base.name": BASE_IMAGE,
        "mlops.model.name": name,
        "mlops.model.version": str(version),
        "mlops.mlflow.run_id": str(meta.get("run_id") or ""),
        "mlops.package.version": __version__,
    }
    revision = tags.get("mlops.code.git_commit")
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    requirements = serving_requirements()
    (root / "requirements-serving.txt").write_text(
        "# Serving image requirements only (generated; pinned to the tested versions).\n"
        + "\n".join(requirements)
        + "\n"
    )
    image_config = serving_config(
        name, str(version), "/app/model", host="0.0.0.0", port=port, capture_dir="/tmp/capture"
    )
    (root / "serving.json").write_text(json.dumps(image_config, indent=2) + "\n")
    local_config = serving_config(
        name, str(version), str(folder.resolve()), host="127.0.0.1", port=port, capture_dir=None
    )
    (root / "serving.local.json").write_text(json.dumps(local_config, indent=2) + "\n")
    (root / "Dockerfile").write_text(dockerfile(labels, wheel.name, port))
    (root / ".dockerignore").write_text(DOCKERIGNORE)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return BuildContext(
        path=str(root),
        image_tag=f"{image_repository(name, registry)}:{version}",
        files=tuple(files),
        # What the image is built from: the local-debug config (absolute paths) is ignored.
        digest_of_context=_digest(root, [f for f in files if f != "serving.local.json"]),
        labels=labels,
        model={"name": name, "version": str(version), "run_id": meta.get("run_id")},
    )


def _docker_client(docker_url: str | None) -> Any:
    import docker

    if docker_url:
        return docker.DockerClient(base_url=docker_url, timeout=10)
    return docker.from_env(timeout=10)


def build_image(
    context: BuildContext,
    tag: str | None = None,
    docker_url: str | None = None,
    allow_context_only: bool = False,
    client: Any = None,
) -> BuildResult:
    """Build the image with the Docker SDK when an engine answers its ping.

    Without an engine: raise :class:`DockerUnavailable` naming the URL, the reason and where
    the context is; or, when ``allow_context_only``, return status ``context_only`` saying so.

    :param context: from :func:`build_context`.
    :param tag: the image tag (default ``context.image_tag``).
    :param docker_url: the engine (``unix:///var/run/docker.sock``, ``tcp://...``); default from
        the environment (``DOCKER_HOST``).
    :param allow_context_only: without an engine, return the context instead of failing.
    :param client: a ``docker.DockerClient`` to use (e.g. built by Airflow's ``DockerHook``).
    """
    tag = tag or context.image_tag
    where = docker_url or "the default engine (DOCKER_HOST or unix:///var/run/docker.sock)"
    try:
        client = client or _docker_client(docker_url)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests errors, OSError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = f"no Docker engine at {where}: {reason}; the build context is at {context.path}"
        if not allow_context_only:
            raise DockerUnavailable(message) from exc
        return BuildResult(
            status="context_only",
            image_tag=tag,
            context_path=context.path,
            message=f"{message} (context only: no image was built)",
            docker_url=docker_url,
        )
    image, logs = client.images.build(
        path=context.path, tag=tag, labels=context.labels, rm=True, pull=False
    )
    lines = [str(chunk.get("stream", "")).rstrip() for chunk in logs if isinstance(chunk, dict)]
    return BuildResult(
        status="built",
        image_tag=tag,
        context_path=context.path,
        message=f"built {tag} ({image.id}) from {context.path}",
        image_id=image.id,
        docker_url=docker_url,
        log_tail=tuple(line for line in lines if line)[-20:],
    )
