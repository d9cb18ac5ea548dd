"""Registering refuses, before any MLflow run exists, what MLflow would refuse at serving."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.config.data import DataSpec
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.training import TrainingSpec
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.registry.versions import RegistryError, _signature, register_model


def _config() -> ModelConfig:
    return ModelConfig(
        name="churn",
        data=DataSpec(
            uri="unused.parquet",
            target="churn",
            numeric_features=("age", "visits"),
            categorical_features=("plan",),
        ),
        training=TrainingSpec(estimator="sklearn.linear_model.LogisticRegression"),
    )


def test_an_example_that_matches_its_signature_passes_the_check() -> None:
    from airflow_mlops.core.registry.versions import check_example

    example = pd.DataFrame({"age": [31.5, 40.0], "visits": [3, 4], "plan": ["free", None]})
    check_example("churn", _signature(_config(), example, [0, 1]), example)


def test_an_example_the_signature_refuses_fails_before_any_run(tmp_path) -> None:
    # Numbers that arrived as text: the signature says double, MLflow cannot convert the text.
    example = pd.DataFrame({"age": ["31.5", "forty"], "visits": [3, 4], "plan": ["free", "pro"]})
    # Nothing listens on the tracking URI: reaching MLflow at all would be a different error.
    tracking = TrackingConfig(tracking_uri="http://127.0.0.1:9")
    with pytest.raises(RegistryError, match=r"cannot register churn: .*column age"):
        register_model(
            tracking,
            _config(),
            pipeline=None,
            onnx_path=str(tmp_path / "model.onnx"),
            input_example=example,
            classes=[0, 1],
            metrics={},
            params={},
            tags={},
        )
