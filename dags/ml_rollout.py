"""Rollout of the new candidate for the model in ``configs/`` (``MLOPS_ROLLOUT_CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops import settings
from airflow_mlops.dags.rollout import rollout_dag

DEMO_CONFIG = str(Path(__file__).parent / "configs" / "demo_churn.yaml")
dag = rollout_dag(settings.dag_config("rollout", DEMO_CONFIG), dag_id="ml_rollout")
