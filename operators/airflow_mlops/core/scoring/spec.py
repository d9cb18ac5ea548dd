"""The ``scoring:`` section of a model config and its ``scoring.kubernetes`` part.

Plain settings, checked when the config is read: :class:`ScoringSpec` (what the worker runner
uses) and :class:`KubernetesScoringSpec` (how each partition's pod is made, used by
:mod:`airflow_mlops.core.scoring.pod`). Both live here, beside the checks that need both
(:func:`check_pod_paths`), so the config reader never imports the pod planner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, build_section
from airflow_mlops.core.scoring.types import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    RUNNERS,
    join,
    mlops_home,
)

__all__ = ["KubernetesScoringSpec", "ScoringSpec", "check_pod_paths", "quantity"]

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


@dataclass(frozen=True)
class ScoringSpec:
    """The ``scoring:`` section of a model config (every key optional).

    :param input_uri: folder holding one ``date=YYYY-MM-DD`` folder per day, each with the
        day's partitions (files or sub-folders); default ``${MLOPS_HOME}/data/<name>/incoming``.
    :param output_uri: folder receiving ``date=YYYY-MM-DD/<partition>.parquet``; default
        ``${MLOPS_HOME}/scored/<name>``.
    :param model: alias or version to score with (``champion``), or a ``models:/`` URI.
    :param key_columns: columns copied to the output (default: the config's data.key_columns).
    :param batch_rows: most rows fed to ONNX Runtime at once (bounds memory).
    :param threads: intra-op threads (``None``: the cores available to the task).
    :param sample_rows: rows kept per partition for drift monitoring (0: none).
    :param monitoring_dir: root of the monitoring layout (default ``${MLOPS_HOME}/monitoring``).
    :param progress_seconds: how often progress is logged.
    :param schedule: cron expression or preset of the scoring DAG.
    :param format: ``auto``, ``parquet`` or ``csv``.
    :param runner: where partitions are scored: ``worker`` (a ``BatchScoreOperator`` per
        partition in the Airflow worker) or ``kubernetes`` (a pod per partition running the
        version's serving image, see :mod:`airflow_mlops.core.scoring.pod`).
    :param kubernetes: the pods' settings (:class:`KubernetesScoringSpec`); checked whatever
        the runner, used by ``kubernetes``.
    """

    input_uri: str | None = None
    output_uri: str | None = None
    model: str = "champion"
    key_columns: tuple[str, ...] | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    threads: int | None = None
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    monitoring_dir: str | None = None
    progress_seconds: float = 30.0
    schedule: str | None = "@daily"
    format: str = "auto"
    runner: str = "worker"
    kubernetes: KubernetesScoringSpec | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "<config>") -> ScoringSpec:
        """Check and build the section; an empty or missing section gives the defaults."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"{source}: scoring: unknown key(s) {unknown}; known keys: {sorted(known)}"
            )
        if raw.get("key_columns") is not None:
            keys = raw["key_columns"]
            if isinstance(keys, str) or not isinstance(keys, list | tuple):
                raise ConfigError(f"{source}: scoring.key_columns: expected a list, got {keys!r}")
            raw["key_columns"] = tuple(str(k) for k in keys)
        if "kubernetes" in raw:
            raw["kubernetes"] = KubernetesScoringSpec.from_dict(raw["kubernetes"], source)
        spec = cls(**raw)
        for key, low in (("batch_rows", 1), ("sample_rows", 0)):
            value = getattr(spec, key)
            if not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"{source}: scoring.{key} must be an integer >= {low}, got {value!r}"
                )
        if spec.threads is not None and (not isinstance(spec.threads, int) or spec.threads < 1):
            raise ConfigError(f"{source}: scoring.threads must be a positive integer or null")
        if spec.format not in ("auto", "parquet", "csv"):
            raise ConfigError(f"{source}: scoring.format must be auto, parquet or csv")
        if not spec.progress_seconds > 0:
            raise ConfigError(f"{source}: scoring.progress_seconds must be > 0")
        if spec.runner not in RUNNERS:
            raise ConfigError(
                f"{source}: scoring.runner must be worker or kubernetes, got {spec.runner!r}"
            )
        if spec.runner == "kubernetes":
            if spec.kubernetes is None:
                spec = replace(spec, kubernetes=KubernetesScoringSpec())
            check_pod_paths(spec, source)
        return spec

    def input_base(self, model_name: str) -> str:
        return self.input_uri or join(mlops_home(), "data", model_name, "incoming")

    def output_base(self, model_name: str) -> str:
        return self.output_uri or join(mlops_home(), "scored", model_name)

    def monitoring_root(self) -> str:
        return self.monitoring_dir or join(mlops_home(), "monitoring")
