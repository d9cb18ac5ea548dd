"""The MLflow model registry: log, register with lineage, alias, promote, search.

Aliases, not stages: a new version gets ``challenger``; promotion moves ``champion``. Each
registered version is a pyfunc over its ONNX file (see ``core/model/pyfunc.py``), logged in the same
run as the native scikit-learn model, and tagged with where it came from (``mlops.*`` tags).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops import settings
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
# A version that passed every training gate and waits for its rollout to take all traffic.
CANDIDATE = "candidate"
TAG_PREFIX = "mlops."
# MLflow rejects tag values above 5000 characters (model version tags); summaries are cut.
_MAX_TAG = 4000
_MODEL_CODE = Path(__file__).parents[1] / "model"
_PYFUNC_CODE = _MODEL_CODE / "pyfunc.py"


class RegistryError(MLOpsError, RuntimeError):
    """A registry operation that cannot be done; the message names the model and version."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version, as the rest of the lifecycle refers to it."""

    name: str
    version: str
    run_id: str | None
    model_uri: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    run_url: str | None = None
    version_url: str | None = None

    def to_dict(self, with_tags: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        if not with_tags:
            out.pop("tags")
        return out


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion changed."""

    name: str
    version: str
    alias: str
    previous_version: str | None

    @property
    def message(self) -> str:
        if self.previous_version == self.version:
            return f"{self.name} v{self.version} already was @{self.alias}"
        before = f"was v{self.previous_version}" if self.previous_version else "first to hold it"
        return f"{self.name} v{self.version} is now @{self.alias} ({before})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def tag_value(value: Any) -> str:
    """Render a value for an MLflow tag: JSON for structures, cut to a safe length."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= _MAX_TAG else text[: _MAX_TAG - 3] + "..."


def flatten_tags(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    """``{"rows": 10}`` under ``data`` becomes ``{"mlops.data.rows": "10"}``; drops ``None``."""
    return {
        f"{TAG_PREFIX}{prefix}.{key}": tag_value(value)
        for key, value in values.items()
        if value is not None
    }


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The git commit of the code that ran, if a git checkout (or ``MLOPS_CODE_VERSION``)."""
    if settings.code_version():
        return settings.code_version()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(mv: Any, tracking: TrackingConfig) -> RegisteredVersion:
    return RegisteredVersion(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        model_uri=f"models:/{mv.name}/{mv.version}",
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
        tags=dict(mv.tags or {}),
        source=mv.source,
        version_url=tracking.model_version_url(mv.name, str(mv.version)),
    )


def _signature(config: ModelConfig, example: Any, classes: list[Any]) -> Any:
    """Inputs typed as the training data was: integer columns ``long``, others ``double``.

    MLflow refuses to cast int64 to double at predict time, so declaring every numeric column
    ``double`` would reject the very frames the model was trained on.
    """
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs: list[ColSpec | TensorSpec] = []
    for col in config.data.numeric_features:
        dtype = example[col].dtype
        kind = "long" if pd.api.types.is_integer_dtype(dtype) else "double"
        inputs.append(ColSpec("boolean" if pd.api.types.is_bool_dtype(dtype) else kind, col))
    inputs += [ColSpec("string", c, required=False) for c in config.data.categorical_features]
    label_type = "long" if all(isinstance(c, int) for c in classes) else "string"
    outputs: list[ColSpec | TensorSpec] = [ColSpec(label_type, "label")]
    outputs += [ColSpec("double", f"probability_{c}") for c in classes]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def check_example(name: str, signature: Any, example: Any) -> None:
    """Refuse, before any run is created, an input example the signature would refuse.

    MLflow only warns when the example does not validate at log time; every client of the
    version (``mlflow models serve``, ``pyfunc.predict``) would then refuse the very rows the
    model was trained on. The same inputs give the same refusal, so this is a
    :class:`RegistryError` (no retry).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema

    try:
        validate_schema(example, signature.inputs)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot register {name}: its input example does not match the signature MLflow "
            f"would enforce: {exc.message}"
        ) from exc


def _serving_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "onnxruntime", "numpy", "pandas")]


def register_model(
    tracking: TrackingConfig,
    config: ModelConfig,
    *,
    pipeline: Any,
    onnx_path: str,
    input_example: Any,
    classes: list[Any],
    metrics: dict[str, float],
    params: dict[str, Any],
    tags: dict[str, str],
    reports_dir: str | None = None,
    reference_path: str | None = None,
    alias: str = CHALLENGER,
    run_name: str | None = None,
) -> RegisteredVersion:
    """Log the native and the ONNX model in one run, register a version, tag it, alias it.

    :param tracking: where MLflow is.
    :param config: the model config (name, experiment, features).
    :param pipeline: the fitted native pipeline (logged with skops, never pickle).
    :param onnx_path: local path of the converted ONNX file.
    :param input_example: a few rows of raw features (a DataFrame).
    :param classes: the classifier's classes, in probability column order.
    :param metrics: holdout metrics, logged on the run and tagged on the version.
    :param params: estimator parameters for the run.
    :param tags: lineage tags (``mlops.*``) for the run and the version.
    :param reports_dir: a local folder of report files logged on the run under ``reports/``.
    :param reference_path: a local Parquet sample of training inputs and predictions, logged
        under ``reference/`` and named in the ``mlops.reference.uri`` tag (drift monitoring
        compares against exactly what this version saw).
    :param alias: the alias the new version gets.
    :param run_name: the MLflow run name.
    """
    import mlflow

    check_example(config.name, _signature(config, input_example, classes), input_example)
    client = tracking.client()
    with tracking.activate():
        experiment_id = tracking.experiment_id(config.experiment_name)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            tags = _log_run_data(
                run.info.run_id, tags, params, metrics, reports_dir, reference_path
            )
            info = _log_models(config, pipeline, onnx_path, input_example, classes)
        version = str(info.registered_model_version)
    if config.description:
        client.update_registered_model(config.name, description=config.description)
    for key, value in {**config.tags, **tags}.items():
        client.set_model_version_tag(config.name, version, key, tag_value(value))
    client.set_model_version_tag(config.name, version, f"{TAG_PREFIX}run_id", run.info.run_id)
    client.set_registered_model_alias(config.name, alias, version)
    mv = client.get_model_version(config.name, version)
    result = _version(mv, tracking)
    return RegisteredVersion(
        **{
            **asdict(result),
            "aliases": tuple(result.aliases),
            "run_url": tracking.run_url(experiment_id, run.info.run_id),
        }
    )


def _log_run_data(
    run_id: str,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    reports_dir: str | None,
    reference_path: str | None,
) -> dict[str, str]:
    """Tags, params, holdout metrics, reports and the reference sample on the active run.

    :returns: ``tags`` plus ``mlops.reference.uri`` when a reference sample was logged.
    """
    import mlflow

    mlflow.set_tags(tags)
    mlflow.log_params({k: tag_value(v)[:500] for k, v in params.items()})
    mlflow.log_metrics({f"holdout_{k}": float(v) for k, v in metrics.items()})
    if reports_dir:
        mlflow.log_artifacts(reports_dir, artifact_path="reports")
    if reference_path:
        mlflow.log_artifact(reference_path, artifact_path="reference")
        reference_uri = f"runs:/{run_id}/reference/{Path(reference_path).name}"
        tags = {**tags, f"{TAG_PREFIX}reference.uri": reference_uri}
    return tags


def _log_models(
    config: ModelConfig, pipeline: Any, onnx_path: str, input_example: Any, classes: list[Any]
) -> Any:
    """The native model (audit, re-use) and the ONNX pyfunc, registered as a new version.

    :returns: the pyfunc's ``ModelInfo`` (``registered_model_version``).
    """
    import mlflow.pyfunc
    import mlflow.sklearn
    from skops.io import dumps, get_untrusted_types

    signature = _signature(config, input_example, classes)
    # The native model is kept for audit and re-use; skops needs the pipeline's own
    # types listed as trusted or tree models fail to load again.
    mlflow.sklearn.log_model(
        pipeline,
        name="native",
        serialization_format="skops",
        skops_trusted_types=get_untrusted_types(data=dumps(pipeline)),
        signature=signature,
        input_example=input_example,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=[f"scikit-learn=={_sklearn_version()}", "skops"],
    )
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(_PYFUNC_CODE),
        # The feed contract and the session builder travel with the version: the pyfunc
        # loads them from its artifacts, not from this package.
        artifacts={
            "onnx_model": onnx_path,
            "feed_contract": str(_MODEL_CODE / "feed.py"),
            "session_builder": str(_MODEL_CODE / "session.py"),
        },
        model_config={
            "numeric_features": list(config.data.numeric_features),
            "categorical_features": list(config.data.categorical_features),
            "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        },
        signature=signature,
        input_example=input_example,
        pip_requirements=_serving_requirements(),
        registered_model_name=config.name,
    )


def _sklearn_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")


def get_version(tracking: TrackingConfig, name: str, ref: str) -> RegisteredVersion | None:
    """Resolve an alias (``champion``) or a version number to a version; ``None`` if absent."""
    from mlflow.exceptions import MlflowException

    client = tracking.client()
    try:
        if str(ref).isdigit():
            mv = client.get_model_version(name, str(ref))
        else:
            mv = client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return _version(mv, tracking)


def search_versions(
    tracking: TrackingConfig, name: str, tags: dict[str, str] | None = None
) -> list[RegisteredVersion]:
    """Versions of ``name`` whose tags equal every ``tags`` item, newest first.

    Values go into MLflow's filter quoted so a quote inside cannot end the string; a value that
    holds both kinds of quote (or a key with a backtick) is matched here instead of by the
    server.
    """
    name_literal = _filter_literal(name)
    if name_literal is None:
        raise RegistryError(f"model name {name!r} holds both kinds of quote")
    wanted = {key: tag_value(value) for key, value in (tags or {}).items()}
    clauses = [f"name = {name_literal}"]
    local: dict[str, str] = {}
    for key, value in wanted.items():
        literal = _filter_literal(value)
        if literal is None or "`" in key:
            local[key] = value
        else:
            clauses.append(f"tags.`{key}` = {literal}")
    found = tracking.client().search_model_versions(" and ".join(clauses))
    versions = [_version(mv, tracking) for mv in found]
    versions = [v for v in versions if all(v.tags.get(k) == val for k, val in local.items())]
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def _filter_literal(value: str) -> str | None:
    """``value`` as a string literal of MLflow's search filter, or None when it cannot be one
    (it holds both ``'`` and ``"``: the filter language has no escape)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def set_version_tags(
    tracking: TrackingConfig, name: str, version: str, tags: dict[str, Any]
) -> None:
    """Add tags to a registered version (values rendered with :func:`tag_value`)."""
    client = tracking.client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, tag_value(value))


def promote(
    tracking: TrackingConfig, name: str, version: str, alias: str = CHAMPION
) -> PromotionResult:
    """Move ``alias`` to ``version``; the previous holder is recorded on the new version.

    A version that becomes ``champion`` stops being ``challenger`` (one version, one role); a
    challenger held by another version stays where it is.
    """
    client = tracking.client()
    previous = get_version(tracking, name, alias)
    target = get_version(tracking, name, version)
    if target is None:
        raise RegistryError(f"cannot promote {name} v{version}: no such version in the registry")
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION and CHALLENGER in target.aliases:
        client.delete_registered_model_alias(name, CHALLENGER)
    previous_version = previous.version if previous else None
    client.set_model_version_tag(
        name, version, f"{TAG_PREFIX}promoted_from", previous_version or ""
    )
    return PromotionResult(
        name=name, version=version, alias=alias, previous_version=previous_version
    )


def download_onnx(tracking: TrackingConfig, model_uri: str, dst: str | None = None) -> str:
    """Download a registered version's ONNX file; returns its local path."""
    local = tracking.download(model_uri, dst or tempfile.mkdtemp(prefix="mlops-onnx-"))
    found = sorted(Path(local).rglob("*.onnx"))
    if not found:
        raise RegistryError(f"{model_uri} has no ONNX file (downloaded to {local})")
    return str(found[0])


def remove_alias(tracking: TrackingConfig, name: str, alias: str) -> None:
    """Remove ``alias`` from whichever version holds it (nothing happens if none does)."""
    if get_version(tracking, name, alias) is not None:
        tracking.client().delete_registered_model_alias(name, alias)
