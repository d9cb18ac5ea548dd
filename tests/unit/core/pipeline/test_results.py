"""The step results round-trip: ``from_dict(d).to_dict() == d`` for what goes to XCom."""

from __future__ import annotations

import json

import pytest

from airflow_mlops.core.pipeline.results import (
    ConversionResult,
    Evaluated,
    Prepared,
    Promoted,
    Registered,
    StepResultError,
    Trained,
    Validated,
)
from airflow_mlops.exceptions import MLOpsError

PREPARED = {
    "data_uri": "/d/train.parquet",
    "sha256": "ab" * 32,
    "rows": 1000,
    "train_uri": "/w/train.parquet",
    "holdout_uri": "/w/holdout.parquet",
    "train_rows": 800,
    "holdout_rows": 200,
    "target": "churned",
    "class_counts": {"0": 700, "1": 300},
}
VALIDATED = {
    "success": True,
    "summary": "validation passed: 12 of 12 expectations",
    "evaluated": 12,
    "failed_count": 0,
    "skipped": 0,
    "rows": 800,
    "data_uri": "/w/train.parquet",
    "failed": [],
    "report_uri": "/w/validation.json",
}
TRAINED = {
    "model_uri": "/w/model.joblib",
    "metrics": {"roc_auc": 0.91, "accuracy": 0.85},
    "n_train": 800,
    "n_holdout": 200,
    "estimator": "sklearn.linear_model.LogisticRegression",
    "params": {"C": 1.0},
    "classes": [0, 1],
    "fit_seconds": 0.42,
}
EVALUATED = {
    "passed": False,
    "summary": "failed gate improvement: roc_auc 0.90 < champion 0.91",
    "champion_version": "3",
    "gates": [{"name": "improvement", "passed": False, "message": "roc_auc 0.90 < 0.91"}],
    "champion_metrics": {"roc_auc": 0.91},
    "champion_basis": "champion v3 scored on the same holdout",
}
CONVERTED = {
    "onnx_uri": "/w/model.onnx",
    "size_bytes": 1234,
    "convert_seconds": 0.1,
    "parity": {"max_abs_diff": 1e-7, "label_disagreements": 0, "rows": 200, "message": "ok"},
}
REGISTERED = {
    "name": "churn",
    "version": "4",
    "run_id": "r1",
    "model_uri": "models:/churn/4",
    "aliases": ["challenger"],
    "source": "runs:/r1/model",
    "run_url": "http://mlflow/#/runs/r1",
    "version_url": "http://mlflow/#/models/churn/versions/4",
    "unchanged": False,
    "message": "",
}
PROMOTED = {
    "name": "churn",
    "version": "4",
    "alias": "champion",
    "previous_version": "3",
    "message": "churn v4 is now @champion (was v3)",
}

CASES = [
    (Prepared, PREPARED),
    (Validated, VALIDATED),
    (Trained, TRAINED),
    (Evaluated, EVALUATED),
    (ConversionResult, CONVERTED),
    (Registered, REGISTERED),
    (Promoted, PROMOTED),
]


@pytest.mark.parametrize(("cls", "raw"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_round_trip_keeps_the_xcom_keys_and_values(cls, raw) -> None:
    result = cls.from_dict(raw)
    assert result.to_dict() == raw
    assert json.loads(json.dumps(result.to_dict())) == raw
    assert cls.from_dict(result) is result


def test_fields_are_read_by_name() -> None:
    assert Prepared.from_dict(PREPARED).holdout_uri == "/w/holdout.parquet"
    assert Trained.from_dict(TRAINED).metrics["roc_auc"] == 0.91
    assert Evaluated.from_dict(EVALUATED).passed is False
    assert Registered.from_dict(REGISTERED).aliases == ["challenger"]


def test_unknown_keys_from_another_version_are_ignored() -> None:
    assert Trained.from_dict({**TRAINED, "added_later": 1}).to_dict() == TRAINED


def test_a_missing_key_names_the_result_and_the_key() -> None:
    raw = {k: v for k, v in PREPARED.items() if k != "holdout_uri"}
    with pytest.raises(
        StepResultError, match=r"Prepared: the upstream result lacks \['holdout_uri'\]"
    ):
        Prepared.from_dict(raw)
    with pytest.raises(StepResultError, match="expected an upstream task's result"):
        Trained.from_dict("models:/churn/4")  # type: ignore[arg-type]
    assert issubclass(StepResultError, MLOpsError)  # call_core fails the task, no retry


def test_validation_short_form_and_no_report() -> None:
    short = Validated.from_dict(VALIDATED).xcom()
    assert short == {
        k: VALIDATED[k] for k in ("success", "evaluated", "summary", "rows", "report_uri")
    }
    assert Validated.from_dict(short).summary == VALIDATED["summary"]
    no_report = {k: v for k, v in VALIDATED.items() if k != "report_uri"}
    assert Validated.from_dict(no_report).to_dict() == no_report


def test_the_training_config_hash_ignores_where_data_lives_not_what_trains() -> None:
    from dataclasses import replace

    from airflow_mlops.core.config.data import DataSpec
    from airflow_mlops.core.config.model import ModelConfig
    from airflow_mlops.core.config.training import TrainingSpec
    from airflow_mlops.core.pipeline.steps import training_config_sha256

    base = ModelConfig(
        name="churn",
        data=DataSpec(uri="a.parquet", target="y", numeric_features=("x",)),
        training=TrainingSpec(estimator="sklearn.linear_model.LogisticRegression"),
    )
    moved = replace(base, data=replace(base.data, uri="s3://b/a.parquet"), work_dir="/tmp/w")
    assert training_config_sha256(moved) == training_config_sha256(base)
    tuned = replace(base, training=replace(base.training, params={"C": 0.5}))
    other_split = replace(base, data=replace(base.data, seed=7))
    hashes = {training_config_sha256(c) for c in (base, tuned, other_split)}
    assert len(hashes) == 3
