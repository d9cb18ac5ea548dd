"""Training → registry for the model described in ``configs/`` (``MLOPS_TRAINING_CONFIG``)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_mlops.dags.training import training_dag

CONFIG = os.environ.get(
    "MLOPS_TRAINING_CONFIG", str(Path(__file__).parent / "configs" / "demo_churn.yaml")
)

dag = training_dag(CONFIG, dag_id="ml_training")
