"""Batch scoring in Kubernetes pods: one pod per partition, planned as plain data.

``scoring.runner: kubernetes`` makes ``ml_batch_scoring`` score each partition in a pod that runs
the version's serving image (:mod:`airflow_mlops.core.packaging`: ONNX Runtime, pyarrow,
pandas, fsspec + s3fs and this package; no Airflow, no MLflow; the model baked in as a model
folder at ``/app/model``). The pods' settings are the ``scoring.kubernetes`` section
(:class:`~airflow_mlops.core.scoring.spec.KubernetesScoringSpec`). This module holds the parts
that need no Airflow:

- :func:`plan_pods`, the container arguments, image, resources and labels of each partition's
  pod (plain data: the DAG hands it to the cncf provider's ``KubernetesPodOperator``);
- :func:`normalize_results`, the scoring results of a run whichever runner made them.

What runs inside the pod is :mod:`airflow_mlops.core.scoring.container`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from airflow_mlops.core.scoring.container import (
    CONTAINER_COMMAND,
    CONTAINER_MODEL_DIR,
    XCOM_RETURN_FILE,
)
from airflow_mlops.core.scoring.spec import KubernetesScoringSpec, ScoringSpec, quantity
from airflow_mlops.core.scoring.types import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    ScoreResult,
    ScoringError,
    check_distinct,
    partition_target,
)

__all__ = [
    "CONTAINER_COMMAND",
    "CONTAINER_MODEL_DIR",
    "XCOM_RETURN_FILE",
    "normalize_results",
    "plan_pods",
    "pod_arguments",
    "pod_image",
    "pod_labels",
    "pod_resources",
]

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1", "memory": "512Mi"},
    "limits": {"cpu": "2", "memory": "1Gi"},
}
PROFILE_PREFIX = "mlops.profile."


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
    :raises ScoringError: the model is a local file (no serving image exists for it), a
        partition's output URI cannot be made, or two partitions would write one output.
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
    targets = [(uri, *partition_target(uri, output_template)) for uri in partitions]
    check_distinct(((uri, output_uri) for uri, _, _, output_uri in targets), "output")
    out = []
    for input_uri, partition, date, output_uri in targets:
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


# The fields a result of an older image may lack (their defaults apply).
_OPTIONAL_KEYS = {"sample_uri", "missing_values", "unseen_categories"}
_RESULT_KEYS = frozenset(f.name for f in fields(ScoreResult) if f.name not in _OPTIONAL_KEYS)


def normalize_results(results: Iterable[Any] | None) -> list[dict[str, Any]]:
    """The scoring results of a run, whichever runner produced them.

    A worker task returns :meth:`ScoreResult.to_dict`; a pod's ``return.json`` comes back as the
    same dict (or as its JSON text, from a sidecar that did not decode it). ``None`` is a
    partition without a result (its task failed, or its pod wrote no file) and is left out, so
    :func:`~airflow_mlops.core.scoring.runs.summarize` names it as missing.

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
