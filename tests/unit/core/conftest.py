"""Fixtures shared by the core unit tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A logistic regression on 3k demo rows, converted with the project's own converter."""
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.training.convert import convert_to_onnx
    from airflow_mlops.core.training.pipeline import build_pipeline
    from airflow_mlops.devstack.demo_data import generate

    config = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    config = replace(
        config,
        training=replace(
            config.training, estimator="sklearn.linear_model.LogisticRegression", params={}
        ),
    )
    frame = generate(3_000, seed=0)
    pipeline = build_pipeline(config).fit(frame[list(config.data.features)], frame["churned"])
    path = tmp_path_factory.mktemp("model") / "churn.onnx"
    path.write_bytes(convert_to_onnx(pipeline, config))
    return str(path)
