"""The model description: one YAML file (or these dataclasses) drives every lifecycle step.

A config names the data, the target and the features, the validation spec, the estimator, the
promotion criteria and the ONNX parity tolerances. Everything is plain data so it can be parsed
at DAG-parse time without importing any heavy library.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import MLOpsError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ConfigError(MLOpsError, ValueError):
    """A model config that cannot be used; the message names the key and the file."""


@dataclass(frozen=True)
class ColumnSpec:
    """Expectations for one column.

    :param type: ``numeric``, ``integer``, ``string`` or ``boolean``.
    :param max_null_fraction: largest allowed share of nulls (0 means none allowed).
    :param min: smallest allowed value (numeric columns).
    :param max: largest allowed value (numeric columns).
    :param allowed: the allowed values (categorical columns).
    :param mostly: share of non-null rows that must satisfy ``min``/``max``/``allowed``.
    """

    type: str = "numeric"
    max_null_fraction: float = 0.0
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    mostly: float = 1.0


@dataclass(frozen=True)
class ValidationSpec:
    """Declarative data checks, turned into a Great Expectations suite.

    :param min_rows: fewest rows a dataset may have.
    :param max_rows: most rows a dataset may have (``None``: no limit).
    :param columns: per-column expectations; every column named here must exist.
    """

    min_rows: int = 1
    max_rows: int | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and what its columns mean.

    :param uri: local path or fsspec URI of a Parquet or CSV file, or a folder of them (templated
        in the DAGs).
    :param target: the label column.
    :param numeric_features: numeric input columns.
    :param categorical_features: string input columns (one-hot encoded).
    :param key_columns: identifiers carried through to scoring outputs, never used as features.
    :param format: ``parquet``, ``csv`` or ``auto`` (from the file suffix).
    :param holdout_fraction: share of rows kept aside for evaluation and parity checks.
    :param seed: seed for the split and for every sample taken from the data.
    :param stratify: keep the label balance equal in both parts of the split.
    """

    uri: str
    target: str
    numeric_features: tuple[str, ...] = ()
    categorical_features: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()
    format: str = "auto"
    holdout_fraction: float = 0.2
    seed: int = 42
    stratify: bool = True

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric_features + self.categorical_features


@dataclass(frozen=True)
class TrainingSpec:
    """The estimator: an import path and its parameters.

    :param estimator: import path of a scikit-learn compatible classifier, e.g.
        ``sklearn.ensemble.HistGradientBoostingClassifier``.
    :param params: keyword arguments for the estimator.
    :param scale_numeric: standard-scale numeric features (after median imputation).
    """

    estimator: str = "sklearn.linear_model.LogisticRegression"
    params: dict[str, Any] = field(default_factory=dict)
    scale_numeric: bool = True


@dataclass(frozen=True)
class EvaluationSpec:
    """Promotion criteria for a challenger.

    :param primary_metric: the metric that decides (e.g. ``roc_auc``).
    :param min_improvement: how much better than the champion the primary metric must be
        (in the metric's own direction; 0 means "at least as good").
    :param max_regression: per secondary metric, the largest allowed loss against the champion.
    :param thresholds: absolute floors (or ceilings, for lower-is-better metrics) every model
        must meet, with or without a champion.
    """

    primary_metric: str = "roc_auc"
    min_improvement: float = 0.0
    max_regression: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OnnxSpec:
    """Conversion and parity tolerances.

    :param target_opset: ONNX opset for the main domain.
    :param max_abs_diff: largest allowed absolute probability difference, native vs ONNX.
    :param max_label_disagreements: largest allowed number of holdout rows whose predicted
        label differs between the native model and ONNX Runtime.
    """

    target_opset: int = 15
    max_abs_diff: float = 1e-4
    max_label_disagreements: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Everything the lifecycle needs to know about one model.

    :param name: registered model name in MLflow.
    :param data: where the training data is and what its columns mean.
    :param validation: data checks run before training.
    :param training: the estimator.
    :param evaluation: promotion criteria.
    :param onnx: conversion and parity tolerances.
    :param experiment: MLflow experiment name (default: the model name).
    :param work_dir: where tasks leave intermediate files for each other (local path or fsspec
        URI shared by all workers); run-scoped subfolders are created below it.
    :param schedule: cron expression or preset for the training DAG (``None``: manual only).
    :param description: free text shown in the DAG and on the registered model.
    :param tags: extra tags put on every registered version.
    :param scoring: batch-scoring options (see ``core.scoring``), kept as plain data here.
    :param profiling: profiling options and SLO (see ``core.profiling``).
    :param monitoring: drift policy and current-data location (see ``core.drift``).
    :param serving: serving options (see ``airflow_mlops.serving``).
    :param rollout: rollout policy and targets (see ``core.rollout``).
    :param approval: human approval gates before promotion / full rollout (see
        ``core.approval``); off unless set.
    """

    name: str
    data: DataSpec
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    onnx: OnnxSpec = field(default_factory=OnnxSpec)
    experiment: str | None = None
    work_dir: str = ""
    schedule: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # Each capability parses and checks its own section (``<Spec>.from_dict``), so that this
    # module stays importable at DAG-parse time without knowing every option.
    scoring: dict[str, Any] = field(default_factory=dict)
    profiling: dict[str, Any] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    serving: dict[str, Any] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)
    approval: dict[str, Any] = field(default_factory=dict)

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`config_from_dict` turns back into this config."""
        from dataclasses import asdict

        return asdict(self)


def check_keys(raw: Any, known: type | Iterable[str], where: str, what: str = "key(s)") -> None:
    """Raise :class:`ConfigError` naming ``where``, the unknown keys and the known ones, when
    ``raw`` is not a mapping or has a key outside ``known`` (names, or a dataclass's fields)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name for f in fields(known)} if isinstance(known, type) else set(known)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown {what} {unknown}; known keys: {sorted(names)}")


def build_section(cls: type, raw: Any, where: str) -> Any:
    """Build the dataclass ``cls`` from a mapping; a non-mapping or an unknown key raises
    :class:`ConfigError` naming ``where`` and the known keys."""
    raw = {} if raw is None else raw
    check_keys(raw, cls, where)
    return cls(**raw)


def _tuple(raw: Any, where: str) -> tuple[Any, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise ConfigError(f"{where}: expected a list, got {raw!r}")
    return tuple(raw)


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> ModelConfig:
    """Build and check a :class:`ModelConfig` from plain data (a parsed YAML document).

    :param raw: the parsed document.
    :param source: where it came from, used in error messages.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a model config must be a mapping")
    raw = dict(raw)
    for required in ("name", "data"):
        if required not in raw:
            raise ConfigError(f"{source}: missing required key {required!r}")

    data_raw = dict(raw.pop("data") or {})
    if "features" in data_raw:
        feats = data_raw.pop("features") or {}
        if not isinstance(feats, dict):
            raise ConfigError(f"{source}: data.features must map 'numeric'/'categorical' to lists")
        data_raw["numeric_features"] = feats.get("numeric")
        data_raw["categorical_features"] = feats.get("categorical")
    for key in ("numeric_features", "categorical_features", "key_columns"):
        data_raw[key] = _tuple(data_raw.get(key), f"{source}: data.{key}")
    for required in ("uri", "target"):
        if not data_raw.get(required):
            raise ConfigError(f"{source}: missing required key data.{required}")
    data = build_section(DataSpec, data_raw, f"{source}: data")

    val_raw = dict(raw.pop("validation", None) or {})
    cols_raw = val_raw.pop("columns", None) or {}
    columns = {}
    for col, spec in cols_raw.items():
        spec = dict(spec or {})
        if "allowed" in spec:
            spec["allowed"] = _tuple(spec["allowed"], f"{source}: validation.columns.{col}.allowed")
        columns[str(col)] = build_section(ColumnSpec, spec, f"{source}: validation.columns.{col}")
    validation = build_section(
        ValidationSpec, {**val_raw, "columns": columns}, f"{source}: validation"
    )

    config = build_section(
        ModelConfig,
        {
            **raw,
            "data": data,
            "validation": validation,
            "training": build_section(TrainingSpec, raw.get("training"), f"{source}: training"),
            "evaluation": build_section(
                EvaluationSpec, raw.get("evaluation"), f"{source}: evaluation"
            ),
            "onnx": build_section(OnnxSpec, raw.get("onnx"), f"{source}: onnx"),
        },
        source,
    )
    _check(config, source)
    return config


def _check(config: ModelConfig, source: str) -> None:
    if not _NAME_RE.match(config.name):
        raise ConfigError(
            f"{source}: name {config.name!r} must be 1-128 letters, digits, '_', '.' or '-'"
        )
    data = config.data
    if not data.features:
        raise ConfigError(f"{source}: data.features lists no numeric or categorical column")
    seen: dict[str, str] = {}
    for role, cols in (
        ("numeric", data.numeric_features),
        ("categorical", data.categorical_features),
        ("key", data.key_columns),
        ("target", (data.target,)),
    ):
        for col in cols:
            if col in seen:
                raise ConfigError(
                    f"{source}: column {col!r} is listed as {seen[col]} and as {role}"
                )
            seen[col] = role
    if not 0.0 < data.holdout_fraction < 1.0:
        raise ConfigError(
            f"{source}: data.holdout_fraction must be between 0 and 1, got {data.holdout_fraction}"
        )
    if data.format not in ("auto", "parquet", "csv"):
        raise ConfigError(f"{source}: data.format must be auto, parquet or csv")
    for col, spec in config.validation.columns.items():
        if spec.type not in ("numeric", "integer", "string", "boolean"):
            raise ConfigError(
                f"{source}: validation.columns.{col}.type must be numeric, integer, string or "
                f"boolean, got {spec.type!r}"
            )
        if not 0.0 <= spec.max_null_fraction <= 1.0:
            raise ConfigError(f"{source}: validation.columns.{col}.max_null_fraction not in [0, 1]")


def expand(text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from the environment (used for paths)."""

    def repl(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":-")
        return os.environ.get(name, default)

    return re.sub(r"\$\{([^}]+)\}", repl, text)


def load_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read a model config from a YAML file; ``${VAR:-default}`` in string values is expanded."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read model config: {exc}") from exc
    try:
        raw = yaml.safe_load(expand(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return config_from_dict(raw, source=str(path))
