"""Tiny real models for the serving tests: trained, converted to ONNX, written as model folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config.data import DataSpec
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.training import TrainingSpec
from airflow_mlops.core.training.convert import convert_to_onnx
from airflow_mlops.core.training.pipeline import build_pipeline
from airflow_mlops.serving.models import write_model_folder

NUMERIC = ("age", "income", "visits")
CATEGORICAL = ("city", "plan")


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.lognormal(10, 0.5, n),
            "visits": rng.integers(0, 30, n),
            "city": rng.choice(np.array(["paris", "rome", "oslo", None], dtype=object), n),
            "plan": rng.choice(np.array(["free", "pro"], dtype=object), n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    score = 0.05 * (frame["age"].fillna(40) - 40) + 0.1 * (frame["visits"] - 15)
    score += np.where(frame["city"] == "oslo", 1.0, 0.0) + rng.normal(0, 1, n)
    frame["churn"] = (score > 0).astype(int)
    return frame


def _folder(root: Path, version: str, estimator: str, params: dict) -> Path:
    config = ModelConfig(
        name="toy",
        data=DataSpec(
            uri="unused.parquet",
            target="churn",
            numeric_features=NUMERIC,
            categorical_features=CATEGORICAL,
        ),
        training=TrainingSpec(estimator=estimator, params=params),
    )
    frame = make_frame(800, seed=int(version))
    pipeline = build_pipeline(config).fit(frame, frame["churn"])
    onnx_path = root / f"toy-{version}.onnx"
    onnx_path.write_bytes(convert_to_onnx(pipeline, config))
    meta = {
        "name": "toy",
        "version": version,
        "numeric_features": list(NUMERIC),
        "categorical_features": list(CATEGORICAL),
        "classes": [0, 1],
        "input_types": {
            "age": "double",
            "income": "double",
            "visits": "long",
            "city": "string",
            "plan": "string",
        },
    }
    return write_model_folder(root / f"toy-{version}", onnx_path, meta)


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two versions of a toy churn model: "1" (logistic regression), "2" (gradient boosting)."""
    root = tmp_path_factory.mktemp("serving-models")
    return {
        "1": _folder(root, "1", "sklearn.linear_model.LogisticRegression", {"max_iter": 300}),
        "2": _folder(
            root, "2", "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}
        ),
    }


@pytest.fixture()
def rows() -> list[dict]:
    return [
        {"age": 31.5, "income": 42000.0, "visits": 3, "city": "oslo", "plan": "pro"},
        {"age": None, "income": 18000.0, "visits": 25, "city": None, "plan": "free"},
    ]
