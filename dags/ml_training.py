"""Training → registry for the model described in ``configs/`` (``MLOPS_TRAINING_CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops import settings
from airflow_mlops.dags.factory import training_dag

CONFIG = settings.dag_config("training", str(Path(__file__).parent / "configs" / "demo_churn.yaml"))

dag = training_dag(CONFIG, dag_id="ml_training")
