"""The model description: one YAML file (or these dataclasses) drives every lifecycle step.

A config names the data, the target and the features, the validation spec, the estimator, the
promotion criteria and the ONNX parity tolerances. Everything is plain data so it can be parsed
at DAG-parse time without importing any heavy library. Each section with a dataclass of its own
has its module here (``data``, ``validation``, ``training``, ``evaluation``, ``onnx``), the
parsing helpers are in ``parse``; the other sections are parsed by their capability.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops.core.config.data import DataSpec, check_data, parse_data
from airflow_mlops.core.config.evaluation import EvaluationSpec
from airflow_mlops.core.config.onnx import OnnxSpec
from airflow_mlops.core.config.parse import ConfigError, build_section, expand
from airflow_mlops.core.config.training import TrainingSpec
from airflow_mlops.core.config.validation import (
    ValidationSpec,
    check_validation,
    parse_validation,
)

__all__ = ["ModelConfig", "config_from_dict", "load_config"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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
    data = parse_data(raw.pop("data"), source)
    validation = parse_validation(raw.pop("validation", None), source)
    config: ModelConfig = build_section(
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
    if not _NAME_RE.match(config.name):
        raise ConfigError(
            f"{source}: name {config.name!r} must be 1-128 letters, digits, '_', '.' or '-'"
        )
    check_data(config.data, source)
    check_validation(config.validation, source)
    config.training.check(source)
    config.evaluation.check(source)
    return config


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
