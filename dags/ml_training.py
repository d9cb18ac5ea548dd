"""Training → registry for the model described in ``configs/`` (``MLOPS_TRAINING_CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops import settings
from airflow_mlops.dags.training import training_dag

DEMO_CONFIG = str(Path(__file__).parent / "configs" / "demo_churn.yaml")
dag = training_dag(settings.dag_config("training", DEMO_CONFIG), dag_id="ml_training")
