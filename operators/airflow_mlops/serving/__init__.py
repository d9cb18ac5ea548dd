"""The scoring server: ONNX model versions behind one endpoint (no Airflow import here).

- :mod:`~airflow_mlops.serving.app` — the ASGI app (MLflow scoring protocol, Open Inference
  Protocol, health, metrics, admin); :func:`create_app`.
- :mod:`~airflow_mlops.serving.models` — loading versions; :func:`write_model_folder`,
  :func:`read_model_folder`.
- :mod:`~airflow_mlops.serving.metrics` — Prometheus metrics and :func:`parse_prometheus`.
- :mod:`~airflow_mlops.serving.main` — ``python -m airflow_mlops.serving`` / :func:`serve`.

Names are imported on first use so that ``import airflow_mlops.serving`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ServingConfig",
    "create_app",
    "parse_prometheus",
    "read_model_folder",
    "serve",
    "write_model_folder",
]

_LAZY = {
    "ServingConfig": "airflow_mlops.serving.config",
    "create_app": "airflow_mlops.serving.app",
    "parse_prometheus": "airflow_mlops.serving.metrics",
    "read_model_folder": "airflow_mlops.serving.models",
    "write_model_folder": "airflow_mlops.serving.models",
    "serve": "airflow_mlops.serving.main",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_mlops.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
