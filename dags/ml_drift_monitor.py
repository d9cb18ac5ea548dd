"""Drift monitoring; the config is ``MLOPS_MONITOR_CONFIG``, else ``MLOPS_TRAINING_CONFIG``."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_mlops.dags.drift_monitor import drift_monitor_dag

CONFIG = os.environ.get(
    "MLOPS_MONITOR_CONFIG",
    os.environ.get(
        "MLOPS_TRAINING_CONFIG", str(Path(__file__).parent / "configs" / "demo_churn.yaml")
    ),
)

dag = drift_monitor_dag(CONFIG, dag_id="ml_drift_monitor")
