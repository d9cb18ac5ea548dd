"""One function per training-lifecycle step, each taking plain values and returning a result.

These compose the core modules (data, validation, training, evaluation, onnx, registry) and
pass files between steps through a run folder: only references (URIs, versions, figures) go
back to the caller, which is what an Airflow task may push to XCom. Each step returns its
result's ``to_dict()`` and reads upstream results through ``from_dict()`` (see ``results``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.pipeline.results import (
    ConversionResult,
    Evaluated,
    Prepared,
    Promoted,
    Registered,
    StepResult,
    Trained,
    Validated,
)
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

if TYPE_CHECKING:
    from airflow_mlops.core.registry.versions import RegisteredVersion

log = logging.getLogger(__name__)


class GateFailed(MLOpsError, RuntimeError):
    """A lifecycle gate refused to go on; the message names the gate, the figure, the threshold."""


def run_dir(work_dir: str, dag_id: str, run_id: str) -> str:
    """The folder where one pipeline run leaves files for its next steps."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return f"{work_dir.rstrip('/')}/{dag_id}/{safe}"


def _write_json(uri: str, payload: dict[str, Any]) -> str:
    from airflow_mlops.core.data.io import atomic_output

    with atomic_output(uri) as fh:  # a retried task never reads half a file
        fh.write(json.dumps(payload, indent=2, default=str).encode())
    return uri


def _local_copy(uri: str) -> str:
    """A local path for a file that may be on object storage (ONNX Runtime and MLflow need one).

    The copy keeps the file's name: MLflow logs an artifact under its local name, and a
    registered version must hold ``model.onnx`` (fsspec's ``simplecache`` names copies by a
    hash, which lost the name and the ``.onnx`` suffix readers look for).
    """
    import os
    import posixpath
    import tempfile

    import fsspec

    if "://" not in uri or uri.startswith("file://"):
        return uri.removeprefix("file://")
    fs, path = fsspec.core.url_to_fs(uri)
    local = os.path.join(tempfile.mkdtemp(prefix="mlops-copy-"), posixpath.basename(path))
    fs.get_file(path, local)
    return local


def prepare(config: ModelConfig, out_dir: str, data_uri: str | None = None) -> dict[str, Any]:
    """Load the dataset, fingerprint it and split it into train and holdout files.

    The estimator is built first (its class imported, its params applied): a misspelt class
    or parameter fails this first task in seconds, not ``train`` after the data work.
    """
    from dataclasses import replace

    from airflow_mlops.core.data.io import prepare_dataset
    from airflow_mlops.core.training.pipeline import make_estimator

    make_estimator(config)
    spec = replace(config.data, uri=data_uri) if data_uri else config.data
    return Prepared.from_dict(prepare_dataset(spec, out_dir).to_dict()).to_dict()


def validate(
    config: ModelConfig, data_uri: str | Sequence[str], report_uri: str | None = None
) -> dict[str, Any]:
    """Run the config's validation spec on ``data_uri``; raises :class:`GateFailed` on failure.

    Several URIs (the train and the holdout split) are checked as one dataset: every row the
    model is trained or judged on passes the same checks, and ``min_rows`` counts all of them.
    """
    import pandas as pd

    from airflow_mlops.core.data.io import load_frame
    from airflow_mlops.core.data.validation import validate_frame, write_report

    uris = [data_uri] if isinstance(data_uri, str) else list(data_uri)
    frames = [load_frame(u, format="parquet" if u.endswith(".parquet") else "auto") for u in uris]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    data_uri = " + ".join(uris)
    features = {
        **dict.fromkeys(config.data.numeric_features, "numeric"),
        **dict.fromkeys(config.data.categorical_features, "categorical"),
    }
    result = validate_frame(
        frame, config.validation, data_uri=data_uri, target=config.data.target, features=features
    )
    written = write_report(result, report_uri) if report_uri else None
    out = Validated.from_dict({**result.to_dict(), "report_uri": written})
    if not result.success:
        report = f"; report: {out.report_uri}" if out.report_uri else ""
        raise GateFailed(f"{result.summary}{report}")
    return out.to_dict()


def train(config: ModelConfig, prepared: Mapping[str, Any], out_dir: str) -> dict[str, Any]:
    """Fit the configured pipeline on the train split; metrics are measured on the holdout."""
    from airflow_mlops.core.data.io import load_frame
    from airflow_mlops.core.training.pipeline import train_model

    split = Prepared.from_dict(prepared)
    train_frame = load_frame(split.train_uri, format="parquet")
    holdout_frame = load_frame(split.holdout_uri, format="parquet")
    result = train_model(config, train_frame, holdout_frame, f"{out_dir}/model.joblib")
    return Trained.from_dict(result.to_dict()).to_dict()


def champion_metrics(
    tracking: TrackingConfig, config: ModelConfig, holdout_uri: str
) -> tuple[str | None, dict[str, float] | None, str]:
    """Score the current champion's ONNX model on this run's holdout.

    Returns ``(version, metrics, how)``; ``(None, None, ...)`` when there is no champion.
    When the champion cannot take this holdout (its features differ), its recorded holdout
    metrics are used instead and ``how`` says so.
    """
    from airflow_mlops.core.data.io import load_frame
    from airflow_mlops.core.model.session import load_session
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.training.parity import predict_proba_onnx
    from airflow_mlops.core.training.pipeline import compute_metrics

    champion = registry.get_version(tracking, config.name, registry.CHAMPION)
    if champion is None:
        return None, None, "no champion yet"
    holdout = load_frame(holdout_uri, format="parquet")
    try:
        session = load_session(registry.download_onnx(tracking, champion.model_uri))
        proba = predict_proba_onnx(
            session, holdout, config.data.numeric_features, config.data.categorical_features
        )
    except (KeyError, ValueError) as exc:
        recorded = {
            key.removeprefix(f"{registry.TAG_PREFIX}metric."): float(value)
            for key, value in champion.tags.items()
            if key.startswith(f"{registry.TAG_PREFIX}metric.")
        }
        how = f"champion v{champion.version} cannot score this holdout ({exc}); recorded metrics"
        return champion.version, recorded, how
    classes = json.loads(champion.tags.get(f"{registry.TAG_PREFIX}classes", "[0, 1]"))
    metrics = compute_metrics(holdout[config.data.target].to_numpy(), proba, classes)
    return champion.version, metrics, f"champion v{champion.version} scored on the same holdout"


def evaluate(
    tracking: TrackingConfig,
    config: ModelConfig,
    prepared: Mapping[str, Any],
    trained: Mapping[str, Any],
) -> dict[str, Any]:
    """Compare the challenger with the current champion by the config's criteria."""
    from airflow_mlops.core.training.evaluation import evaluate as run_gates

    holdout_uri = Prepared.from_dict(prepared).holdout_uri
    version, metrics, how = champion_metrics(tracking, config, holdout_uri)
    challenger = Trained.from_dict(trained).metrics
    result = run_gates(challenger, metrics, config.evaluation, champion_version=version)
    out = {**result.to_dict(), "champion_metrics": metrics, "champion_basis": how}
    return Evaluated.from_dict(out).to_dict()


def convert(
    config: ModelConfig, prepared: Mapping[str, Any], trained: Mapping[str, Any], out_dir: str
) -> dict[str, Any]:
    """Convert to ONNX, check parity on the holdout; :class:`GateFailed` past tolerance."""

    from airflow_mlops.core.data.io import atomic_output, load_frame
    from airflow_mlops.core.training.convert import convert_to_onnx
    from airflow_mlops.core.training.parity import check_parity
    from airflow_mlops.core.training.pipeline import load_pipeline

    pipeline = load_pipeline(Trained.from_dict(trained).model_uri)
    started = time.perf_counter()
    onnx_bytes = convert_to_onnx(pipeline, config)
    seconds = time.perf_counter() - started
    holdout = load_frame(Prepared.from_dict(prepared).holdout_uri, format="parquet")
    parity = check_parity(pipeline, onnx_bytes, holdout, config)
    if not parity.passed:
        raise GateFailed(f"ONNX parity gate failed: {parity.message}")
    onnx_uri = f"{out_dir}/model.onnx"
    with atomic_output(onnx_uri) as fh:
        fh.write(onnx_bytes)
    return ConversionResult(
        onnx_uri=onnx_uri,
        size_bytes=len(onnx_bytes),
        convert_seconds=round(seconds, 3),
        parity=parity.to_dict(),
    ).to_dict()


REFERENCE_ROWS = 20_000


def reference_sample(
    config: ModelConfig, pipeline: Any, train_uri: str, path: str, rows: int = REFERENCE_ROWS
) -> int:
    """Write a seeded random sample of training inputs with the model's predictions.

    This is what drift monitoring compares new data with. Returns the number of rows written.
    """
    import numpy as np

    from airflow_mlops.core.data.io import load_frame, write_parquet_atomic

    columns = [*config.data.key_columns, *config.data.features, config.data.target]
    frame = load_frame(train_uri, format="parquet", columns=columns)
    if len(frame) > rows:
        keep = np.sort(np.random.default_rng(config.data.seed).choice(len(frame), rows, False))
        frame = frame.iloc[keep].reset_index(drop=True)
    proba = pipeline.predict_proba(frame[list(config.data.features)])
    classes = list(pipeline.classes_)
    frame["prediction"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    if all(isinstance(c, int | np.integer) for c in classes):
        frame["prediction"] = frame["prediction"].astype("int64")
    for i, cls in enumerate(classes):
        frame[f"probability_{cls}"] = proba[:, i]
    write_parquet_atomic(frame, path)
    return len(frame)


def lineage_tags(
    config: ModelConfig,
    *,
    prepared: Mapping[str, Any],
    validation: Mapping[str, Any] | None,
    trained: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    converted: Mapping[str, Any],
    airflow: dict[str, Any],
    trigger: dict[str, Any] | None = None,
    code_dir: str | None = None,
) -> dict[str, str]:
    """The ``mlops.*`` tags every registered version carries (see DESIGN.md, lineage)."""
    from airflow_mlops import __version__
    from airflow_mlops.core.registry.versions import TAG_PREFIX, flatten_tags, git_commit, tag_value

    data = Prepared.from_dict(prepared)
    model = Trained.from_dict(trained)
    onnx = ConversionResult.from_dict(converted)
    tags: dict[str, str] = {}
    tags |= flatten_tags("airflow", airflow)
    tags |= flatten_tags("code", {"git_commit": git_commit(code_dir), "package": __version__})
    tags |= flatten_tags(
        "data",
        {
            "uri": data.data_uri,
            "sha256": data.sha256,
            "rows": data.rows,
            "train_rows": data.train_rows,
            "holdout_rows": data.holdout_rows,
        },
    )
    if validation is not None:
        checked = Validated.from_dict(validation)
        tags |= flatten_tags("validation", {"success": checked.success, "summary": checked.summary})
    tags |= flatten_tags("metric", {k: round(float(v), 6) for k, v in model.metrics.items()})
    tags |= flatten_tags(
        "training", {"estimator": model.estimator or None, "fit_seconds": model.fit_seconds}
    )
    parity = onnx.parity
    tags |= flatten_tags(
        "parity",
        {
            "max_abs_diff": parity.get("max_abs_diff"),
            "label_disagreements": parity.get("label_disagreements"),
            "rows": parity.get("rows"),
        },
    )
    tags[f"{TAG_PREFIX}training.config_sha256"] = training_config_sha256(config)
    tags[f"{TAG_PREFIX}onnx.size_bytes"] = str(onnx.size_bytes)
    tags[f"{TAG_PREFIX}classes"] = tag_value(list(model.classes))
    if evaluation is not None:
        verdict = Evaluated.from_dict(evaluation)
        tags |= flatten_tags(
            "evaluation",
            {
                "passed": verdict.passed,
                "summary": verdict.summary or None,
                "champion_version": verdict.champion_version,
                "champion_basis": verdict.champion_basis or None,
                "gates": "; ".join(g["message"] for g in verdict.gates),
            },
        )
    tags |= flatten_tags("trigger", trigger or {"type": "manual"})
    return tags


def training_config_sha256(config: ModelConfig) -> str:
    """SHA-256 of what decides the model given the data: the model name, the features and the
    split, validation, estimator, evaluation and ONNX settings, and the version tags. Where the
    data lives (``data.uri``, ``work_dir``) and how the model is scored, served, monitored or
    rolled out do not enter: the data's own hash stands for its content."""
    import hashlib
    import json
    from dataclasses import asdict

    data = {k: v for k, v in asdict(config.data).items() if k != "uri"}
    decisive = {
        "name": config.name,
        "data": data,
        "validation": asdict(config.validation),
        "training": asdict(config.training),
        "evaluation": asdict(config.evaluation),
        "onnx": asdict(config.onnx),
        "tags": config.tags,
    }
    text = json.dumps(decisive, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# What must be equal for a retrain to be the same model again (see identical_version).
_SAME_MODEL_TAGS = ("data.sha256", "training.config_sha256")


def identical_version(
    tracking: TrackingConfig, name: str, tags: Mapping[str, str]
) -> RegisteredVersion | None:
    """The newest registered version with the same data hash, training config hash and
    holdout metrics (``mlops.metric.*``, as tagged) as ``tags``; ``None`` if there is none."""
    from airflow_mlops.core.registry.versions import TAG_PREFIX, search_versions

    wanted = {f"{TAG_PREFIX}{key}": tags[f"{TAG_PREFIX}{key}"] for key in _SAME_MODEL_TAGS}
    metrics = {k: v for k, v in tags.items() if k.startswith(f"{TAG_PREFIX}metric.")}
    for version in search_versions(tracking, name, wanted):
        found = {k: v for k, v in version.tags.items() if k.startswith(f"{TAG_PREFIX}metric.")}
        if found == metrics:
            return version
    return None


def register(
    tracking: TrackingConfig,
    config: ModelConfig,
    *,
    prepared: Mapping[str, Any],
    validation: Mapping[str, Any] | None,
    trained: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    converted: Mapping[str, Any],
    airflow: dict[str, Any],
    trigger: dict[str, Any] | None = None,
    register_identical: bool = False,
) -> dict[str, Any]:
    """Log both models, register a version with lineage tags and give it ``challenger``.

    A retrain that reproduces an existing version (the same data bytes, the same training
    config and the same holdout metrics: :func:`identical_version`) registers nothing unless
    ``register_identical``: the result names the existing version and has ``unchanged`` set.
    """
    from airflow_mlops.core.data.io import load_frame
    from airflow_mlops.core.registry.versions import register_model
    from airflow_mlops.core.training.pipeline import load_pipeline

    tags = lineage_tags(
        config,
        prepared=prepared,
        validation=validation,
        trained=trained,
        evaluation=evaluation,
        converted=converted,
        airflow=airflow,
        trigger=trigger,
    )
    if not register_identical:
        same = identical_version(tracking, config.name, tags)
        if same is not None:
            message = (
                f"{config.name} v{same.version} already holds this model (same data sha256, "
                "training config and holdout metrics): nothing registered; set the run's "
                "register_identical param to register a new version anyway"
            )
            log.info("%s (%s)", message, same.version_url or same.model_uri)
            return Registered.from_dict(
                {**same.to_dict(), "unchanged": True, "message": message}
            ).to_dict()
    data = Prepared.from_dict(prepared)
    model = Trained.from_dict(trained)
    onnx = ConversionResult.from_dict(converted)
    holdout = load_frame(data.holdout_uri, format="parquet")
    example = holdout[list(config.data.features)].head(5)
    import os
    import tempfile

    reports = tempfile.mkdtemp(prefix="mlops-reports-")
    for name, payload in (
        ("validation.json", validation),
        ("evaluation.json", evaluation),
        ("parity.json", onnx.parity),
        ("data.json", prepared),
    ):
        if payload is not None:
            plain = payload.to_dict() if isinstance(payload, StepResult) else dict(payload)
            _write_json(os.path.join(reports, name), plain)
    pipeline = load_pipeline(model.model_uri)
    reference = os.path.join(tempfile.mkdtemp(prefix="mlops-reference-"), "reference.parquet")
    tags["mlops.reference.rows"] = str(
        reference_sample(config, pipeline, data.train_uri, reference)
    )
    importance = _importance(config, pipeline, holdout)
    if importance is not None:
        tags |= importance.tags()
    version = register_model(
        tracking,
        config,
        pipeline=pipeline,
        reference_path=reference,
        onnx_path=_local_copy(onnx.onnx_uri),
        input_example=example,
        classes=list(model.classes),
        metrics=model.metrics,
        params={"estimator": model.estimator or None, **(model.params or {})},
        tags=tags,
        reports_dir=reports,
        run_name=f"{config.name}-{airflow.get('run_id', 'manual')}"[:250],
    )
    if importance is not None and version.run_id:
        try:
            _log_importance(tracking, version.run_id, importance)
        except Exception as exc:  # the version is registered; a missing chart is not fatal
            log.warning("importance artifacts not logged to run %s: %s", version.run_id, exc)
    return Registered.from_dict(version.to_dict()).to_dict()


def _importance(config: ModelConfig, pipeline: Any, holdout: Any) -> Any:
    """Permutation importance on the holdout; explanations never block a registration."""
    from airflow_mlops.core.training.importance import permutation_importance

    try:
        found = permutation_importance(
            pipeline,
            holdout,
            features=list(config.data.features),
            target=config.data.target,
            metric=config.evaluation.primary_metric,
            seed=config.data.seed,
        )
    except Exception as exc:  # an unusual metric or estimator: log, register anyway
        log.warning("permutation importance skipped: %s", exc)
        return None
    log.info(
        "permutation importance in %.2f s: %s", found.seconds, found.tags()["mlops.importance.top"]
    )
    return found


def _log_importance(tracking: TrackingConfig, run_id: str, importance: Any) -> None:
    """The importance table and chart as ``importance/`` artifacts of the version's run."""
    import tempfile

    from airflow_mlops.core.training.importance import write_artifacts

    with tempfile.TemporaryDirectory(prefix="mlops-importance-") as tmp:
        write_artifacts(importance, tmp)
        tracking.client().log_artifacts(run_id, tmp, "importance")


def promote(
    tracking: TrackingConfig,
    config: ModelConfig,
    registered: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    require_gates: bool = True,
    via_rollout: bool = False,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Promote the registered version if every gate passed.

    Without a rollout, ``champion`` moves to it. With one (``via_rollout``), it becomes the
    ``candidate`` and ``champion`` moves only when the rollout's last traffic step passed; the
    first version of a model has nothing live to protect and is champion at once (its rollout
    is a first deployment).
    Raises :class:`GateFailed` (with the failing gates' messages) when a gate did not pass, or
    when the profile's SLO gate (``profiling.gate``) failed.
    """
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.rollout import records

    found = Registered.from_dict(registered)
    name, version = found.name, found.version
    verdict = Evaluated.from_dict(evaluation) if evaluation is not None else None
    if require_gates and verdict is not None and not verdict.passed:
        reason = verdict.summary or "evaluation failed"
        registry.set_version_tags(
            tracking, name, version, {"mlops.promotion": f"rejected: {reason}"}
        )
        raise GateFailed(f"{name} v{version} not promoted: {reason}")
    if require_gates and profile is not None and not profile.get("passed", True):
        reason = profile.get("message", "profiling SLO gate failed")
        registry.set_version_tags(
            tracking, name, version, {"mlops.promotion": f"rejected: {reason}"}
        )
        raise GateFailed(f"{name} v{version} not promoted: {reason}")
    champion = registry.get_version(tracking, name, registry.CHAMPION)
    if via_rollout and champion is not None and champion.version != str(version):
        registry.promote(tracking, name, version, registry.CANDIDATE)
        message = (
            f"{name} v{version} passed every gate and is @{registry.CANDIDATE}: champion stays "
            f"v{champion.version} until the rollout's last step"
        )
        registry.set_version_tags(tracking, name, version, {"mlops.promotion": message})
        return Promoted(
            name=name,
            version=str(version),
            alias=registry.CANDIDATE,
            previous_version=champion.version,
            message=message,
        ).to_dict()
    # The live-version guard: champion never moves away from a version taking traffic.
    result = records.move_alias(tracking, name, registry.CHAMPION, version)
    registry.set_version_tags(tracking, name, version, {"mlops.promotion": result.message})
    return Promoted.from_dict(result.to_dict()).to_dict()


def train_and_register(
    tracking: TrackingConfig,
    config: ModelConfig,
    out_dir: str,
    *,
    airflow: dict[str, Any],
    promote_version: bool = False,
) -> dict[str, Any]:
    """The training DAG's steps in one call, without Airflow and without data validation:
    prepare → train → convert (parity) → evaluate → register, and optionally promote.

    For fixtures, benchmarks and notebooks. Returns ``{"prepared", "trained", "converted",
    "evaluation", "registered"}``.
    """
    prepared = prepare(config, out_dir)
    trained = train(config, prepared, out_dir)
    converted = convert(config, prepared, trained, out_dir)
    evaluation = evaluate(tracking, config, prepared, trained)
    registered = register(
        tracking,
        config,
        prepared=prepared,
        validation=None,
        trained=trained,
        evaluation=evaluation,
        converted=converted,
        airflow=airflow,
    )
    if promote_version:
        promote(tracking, config, registered, evaluation)
    return {
        "prepared": prepared,
        "trained": trained,
        "converted": converted,
        "evaluation": evaluation,
        "registered": registered,
    }
