"""airflow-mlops: the machine-learning model lifecycle as Apache Airflow 3 tasks.

Importing the package is cheap: operators, hooks and sensors are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MLflowHook": "airflow_mlops.hooks.mlflow",
    "ModelConfig": "airflow_mlops.core.config.model",
    "load_config": "airflow_mlops.core.config.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_mlops' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
