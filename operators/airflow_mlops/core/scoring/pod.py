"""Batch scoring in Kubernetes pods: the settings and one pod per partition.

``scoring.runner: kubernetes`` makes ``ml_batch_scoring`` score each partition in a pod that runs
the version's serving image (:mod:`airflow_mlops.core.packaging`: ONNX Runtime, pyarrow,
pandas, fsspec + s3fs and this package; no Airflow, no MLflow; the model baked in as a model
folder at ``/app/model``). This module holds the parts that need no Airflow:

- :class:`KubernetesScoringSpec`, the ``scoring.kubernetes`` section;
- :func:`plan_pods`, the container arguments, image, resources and labels of each partition's
  pod (plain data: the DAG hands it to the cncf provider's ``KubernetesPodOperator``);
- :func:`normalize_results`, the scoring results of a run whichever runner made them.

What runs inside the pod is :mod:`airflow_mlops.core.scoring_container`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config.parse import ConfigError, build_section
from airflow_mlops.core.scoring.container import (
    CONTAINER_COMMAND,
    CONTAINER_MODEL_DIR,
    XCOM_RETURN_FILE,
)
from airflow_mlops.core.scoring.partition import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    ScoreResult,
    ScoringError,
    partition_target,
)

if TYPE_CHECKING:
    from airflow_mlops.core.scoring.partition import ScoringSpec

__all__ = [
    "CONTAINER_COMMAND",
    "CONTAINER_MODEL_DIR",
    "XCOM_RETURN_FILE",
    "KubernetesScoringSpec",
    "check_pod_paths",
    "normalize_results",
    "plan_pods",
    "pod_arguments",
    "pod_image",
    "pod_labels",
    "pod_resources",
    "quantity",
]

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1", "memory": "512Mi"},
    "limits": {"cpu": "2", "memory": "1Gi"},
}
PROFILE_PREFIX = "mlops.profile."
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_FINISH_ACTIONS = ("delete_pod", "delete_succeeded_pod", "delete_active_pod", "keep_pod")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<unit>[numkMGTPE]|[KMGTPE]i)?$")
_UNITS = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def quantity(value: str) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``768Mi``, ``1G``) as a plain number."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 768Mi)")
    return float(match["num"]) * _UNITS[match["unit"] or ""]


@dataclass(frozen=True)
class KubernetesScoringSpec:
    """The ``scoring.kubernetes`` section: how each partition's pod is made (all optional).

    :param image: the image; default the version's serving image as packaging tags it
        (``[<image_registry>/]mlops/<name>:<version>``). ``{name}`` and ``{version}`` are
        filled in.
    :param image_registry: registry prefix of the default image (``ghcr.io/acme``).
    :param image_pull_policy: ``Always``, ``IfNotPresent`` or ``Never``.
    :param namespace: where the pods run.
    :param service_account: the pods' service account (default: the namespace's default).
    :param conn_id: the Airflow Kubernetes connection (``null``: none, use in_cluster /
        config_file / context only).
    :param in_cluster: use the worker's in-cluster service account.
    :param config_file: kubeconfig path on the worker.
    :param context: kubeconfig context.
    :param resources: ``{requests: {cpu, memory}, limits: {...}}``; every figure given here
        wins over the version's ``mlops.profile.*`` tags, which win over the defaults.
    :param memory_floor: the memory limit is raised to at least this (the streaming scorer's
        own peak, which a serving profile does not measure); ``null`` turns it off.
    :param env: plain environment variables (e.g. ``AWS_ENDPOINT_URL``).
    :param secret_env: ``{VARIABLE: "<secret>/<key>"}``: variables read from Secrets (e.g. S3
        credentials).
    :param secret_env_from: Secrets whose every key becomes a variable (``envFrom``).
    :param startup_timeout_seconds: how long a pod may stay pending (image pull included).
    :param on_finish_action: ``delete_succeeded_pod`` (failed pods stay for debugging),
        ``delete_pod``, ``delete_active_pod`` or ``keep_pod``.
    :param pod_template_file: a pod template (e.g. mounting a shared volume); with it, local
        input/output paths are allowed.
    """

    image: str | None = None
    image_registry: str | None = None
    image_pull_policy: str = "IfNotPresent"
    namespace: str = "default"
    service_account: str | None = None
    conn_id: str | None = "kubernetes_default"
    in_cluster: bool | None = None
    config_file: str | None = None
    context: str | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    memory_floor: str | None = "768Mi"
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)
    secret_env_from: tuple[str, ...] = ()
    startup_timeout_seconds: int = 600
    on_finish_action: str = "delete_succeeded_pod"
    pod_template_file: str | None = None

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<config>") -> KubernetesScoringSpec:
        """Check and build the section; errors name the key and ``source``."""
        where = f"{source}: scoring.kubernetes"
        if isinstance(raw, dict):
            raw = dict(raw)
            for key in ("env", "secret_env", "resources"):
                value = raw.get(key)
                if value is None:
                    raw.pop(key, None)
                elif not isinstance(value, dict):
                    raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            names = raw.get("secret_env_from")
            if names is not None:
                if isinstance(names, str) or not isinstance(names, list | tuple):
                    raise ConfigError(f"{where}.secret_env_from: expected a list of Secret names")
                raw["secret_env_from"] = tuple(str(n) for n in names)
        spec: KubernetesScoringSpec = build_section(cls, raw, where)
        spec._check(where)
        return spec

    def _check(self, where: str) -> None:
        if not _DNS_LABEL.match(str(self.namespace)):
            raise ConfigError(f"{where}.namespace: {self.namespace!r} is not a DNS-1123 label")
        if self.image_pull_policy not in _PULL_POLICIES:
            raise ConfigError(f"{where}.image_pull_policy must be one of {list(_PULL_POLICIES)}")
        if self.on_finish_action not in _FINISH_ACTIONS:
            raise ConfigError(f"{where}.on_finish_action must be one of {list(_FINISH_ACTIONS)}")
        if self.in_cluster is not None and not isinstance(self.in_cluster, bool):
            raise ConfigError(f"{where}.in_cluster must be true, false or null")
        timeout = self.startup_timeout_seconds
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ConfigError(f"{where}.startup_timeout_seconds must be a positive integer")
        for name in (*self.env, *self.secret_env):
            if not _ENV_NAME.match(str(name)):
                raise ConfigError(f"{where}: {name!r} is not a valid environment variable name")
        for name, ref in self.secret_env.items():
            secret, _, key = str(ref).partition("/")
            if not (_DNS_SUBDOMAIN.match(secret) and key):
                raise ConfigError(
                    f"{where}.secret_env.{name}: expected '<secret name>/<key>', got {ref!r}"
                )
        for secret in self.secret_env_from:
            if not _DNS_SUBDOMAIN.match(str(secret)):
                raise ConfigError(f"{where}.secret_env_from: {secret!r} is not a Secret name")
        for kind, figures in self.resources.items():
            if kind not in ("requests", "limits") or not isinstance(figures, dict):
                raise ConfigError(
                    f"{where}.resources: expected requests/limits mappings, got {kind!r}"
                )
            for name, value in figures.items():
                _check_quantity(value, f"{where}.resources.{kind}.{name}")
        if self.memory_floor is not None:
            _check_quantity(self.memory_floor, f"{where}.memory_floor")


def _check_quantity(value: Any, where: str) -> None:
    try:
        quantity(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _remote(uri: str | None) -> bool:
    return bool(uri) and "://" in str(uri) and not str(uri).startswith(("file://", "local://"))


def check_pod_paths(spec: ScoringSpec, source: str) -> None:
    """A pod cannot see the worker's disk: inputs and outputs must be object-store URIs.

    Local paths are allowed only with a ``pod_template_file`` (which can mount them).
    """
    if spec.kubernetes is not None and spec.kubernetes.pod_template_file:
        return
    needed = {"input_uri": spec.input_uri, "output_uri": spec.output_uri}
    if spec.sample_rows:
        needed["monitoring_dir"] = spec.monitoring_dir
    for key, value in needed.items():
        if not _remote(value):
            shown = repr(value) if value else "not set (the default is a folder under MLOPS_HOME)"
            raise ConfigError(
                f"{source}: scoring.runner is kubernetes but scoring.{key} is {shown}: a pod "
                "cannot see the worker's disk; use an object-store URI (s3://...) or mount the "
                "folder with scoring.kubernetes.pod_template_file"
            )


def pod_resources(
    kube: KubernetesScoringSpec, tags: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Requests and limits: the config's figures, else the profile tags, else the defaults.

    The memory limit is then raised to ``memory_floor``: the profile measures a serving
    process scoring one batch, not the streaming scorer with its reader and writer threads.

    :raises ScoringError: a request above its limit (naming both figures).
    """
    out = {kind: dict(values) for kind, values in DEFAULT_RESOURCES.items()}
    for kind in ("requests", "limits"):
        for name in ("cpu", "memory"):
            value = tags.get(f"{PROFILE_PREFIX}{name}_{kind.rstrip('s')}")
            if value:
                out[kind][name] = str(value)
    for kind, figures in kube.resources.items():
        out.setdefault(kind, {}).update({k: str(v) for k, v in figures.items()})
    floor = kube.memory_floor
    limit = out.get("limits", {}).get("memory")
    if floor is not None and limit is not None and quantity(limit) < quantity(floor):
        out["limits"]["memory"] = str(floor)
    for name, request in out.get("requests", {}).items():
        limit = out.get("limits", {}).get(name)
        if limit is not None and quantity(request) > quantity(limit):
            raise ScoringError(
                f"pod resources: the {name} request {request} is above its limit {limit}; "
                "set both in scoring.kubernetes.resources"
            )
    return out


def pod_labels(name: str, version: str) -> dict[str, str]:
    """``app.kubernetes.io`` labels of a scoring pod (Airflow adds its own ids)."""
    from airflow_mlops.core.rollout.targets.manifests import slug

    return {
        "app.kubernetes.io/name": slug(name),
        "app.kubernetes.io/version": re.sub(r"[^A-Za-z0-9_.-]", "-", str(version))[:63],
        "app.kubernetes.io/component": "batch-scoring",
        "app.kubernetes.io/part-of": "airflow-mlops",
        "app.kubernetes.io/managed-by": "airflow-mlops",
    }


def pod_image(kube: KubernetesScoringSpec, name: str, version: str) -> str:
    """The configured image (``{name}``/``{version}`` filled in), else packaging's tag."""
    from airflow_mlops.core.packaging.context import image_repository

    if kube.image:
        return kube.image.replace("{name}", name).replace("{version}", str(version))
    return f"{image_repository(name, kube.image_registry)}:{version}"


def pod_arguments(
    input_uri: str,
    output_uri: str,
    *,
    partition: str,
    model_dir: str = CONTAINER_MODEL_DIR,
    key_columns: Sequence[str] = (),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    monitoring_dir: str | None = None,
    sample_date: str | None = None,
    seed: int = 0,
    progress_seconds: float = 30.0,
    format: str = "auto",
    expect_name: str | None = None,
    expect_version: str | None = None,
    xcom_file: str | None = XCOM_RETURN_FILE,
) -> list[str]:
    """The arguments of ``airflow-mlops score`` for one partition (after the command)."""
    args = ["score", "--model", model_dir, "--input", input_uri, "--output", output_uri]
    args += ["--partition", partition, "--batch-rows", str(batch_rows), "--seed", str(seed)]
    args += ["--progress-seconds", f"{progress_seconds:g}", "--format", format]
    for key in key_columns:
        args += ["--key-column", key]
    if threads is not None:
        args += ["--threads", str(threads)]
    if sample_rows and monitoring_dir:
        args += ["--sample-rows", str(sample_rows), "--monitoring-dir", monitoring_dir]
    else:
        args += ["--sample-rows", "0"]
    if sample_date:
        args += ["--sample-date", sample_date]
    if expect_name:
        args += ["--expect-name", expect_name]
    if expect_version:
        args += ["--expect-version", str(expect_version)]
    if xcom_file:
        args += ["--xcom-file", xcom_file]
    return args


def plan_pods(
    partitions: Iterable[str],
    model: Mapping[str, Any],
    spec: ScoringSpec,
    *,
    output_template: str,
    key_columns: Sequence[str],
    seed: int,
    tags: Mapping[str, str] | None = None,
    model_dir: str = CONTAINER_MODEL_DIR,
    xcom_file: str | None = XCOM_RETURN_FILE,
) -> list[dict[str, Any]]:
    """One ``{arguments, image, container_resources, labels}`` per partition (JSON-able).

    :param partitions: the input partitions (URIs, as listed).
    :param model: the pinned version (``ResolveModelOperator``'s result: name, version...).
    :param spec: the ``scoring:`` section (its ``kubernetes`` settings are used).
    :param output_template: the output URI with ``{date}`` / ``{partition}``.
    :param key_columns: columns copied to the output.
    :param seed: the sample's seed.
    :param tags: the version's registry tags (``mlops.profile.*`` size the pods).
    :param model_dir: the model folder inside the image.
    :param xcom_file: where the container writes its result for the XCom sidecar.
    :raises ScoringError: the model is a local file (no serving image exists for it), or a
        partition's output URI cannot be made.
    """
    kube = spec.kubernetes or KubernetesScoringSpec()
    name, version = str(model["name"]), str(model["version"])
    if version.startswith("local-"):
        raise ScoringError(
            f"the kubernetes runner scores with the serving image of a registered version; "
            f"{model.get('reference') or model.get('model_uri')} is a local file "
            f"({model.get('model_uri')}): set scoring.model to a registered alias or version"
        )
    image = pod_image(kube, name, version)
    resources = pod_resources(kube, tags or {})
    labels = pod_labels(name, version)
    monitoring = spec.monitoring_root() if spec.sample_rows else None
    out = []
    for input_uri in partitions:
        partition, date, output_uri = partition_target(input_uri, output_template)
        arguments = pod_arguments(
            input_uri,
            output_uri,
            partition=partition,
            model_dir=model_dir,
            key_columns=tuple(key_columns),
            batch_rows=spec.batch_rows,
            threads=spec.threads,
            sample_rows=spec.sample_rows,
            monitoring_dir=monitoring,
            sample_date=date,
            seed=seed,
            progress_seconds=spec.progress_seconds,
            format=spec.format,
            expect_name=name,
            expect_version=version,
            xcom_file=xcom_file,
        )
        out.append(
            {
                "arguments": arguments,
                "image": image,
                "container_resources": resources,
                "labels": labels,
            }
        )
    return out


_RESULT_KEYS = frozenset(f.name for f in fields(ScoreResult) if f.name != "sample_uri")


def normalize_results(results: Iterable[Any] | None) -> list[dict[str, Any]]:
    """The scoring results of a run, whichever runner produced them.

    A worker task returns :meth:`ScoreResult.to_dict`; a pod's ``return.json`` comes back as the
    same dict (or as its JSON text, from a sidecar that did not decode it). ``None`` is a
    partition without a result (its task failed, or its pod wrote no file) and is left out, so
    :func:`~airflow_mlops.core.scoring_runs.summarize` names it as missing.

    :raises ScoringError: a result that is not a ScoreResult (naming its position and keys).
    """
    out = []
    for index, raw in enumerate(results or []):
        if raw is None or raw == "":
            continue
        value = raw
        if isinstance(value, bytes | str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ScoringError(f"result {index} is not JSON: {str(raw)[:200]!r}") from exc
        if not isinstance(value, Mapping):
            raise ScoringError(f"result {index} is a {type(value).__name__}, not a ScoreResult")
        missing = sorted(_RESULT_KEYS - set(value))
        if missing:
            raise ScoringError(f"result {index} is not a ScoreResult: missing {missing}")
        out.append(dict(value))
    return out
