"""Batch scoring of a day's partitions with the champion (``MLOPS_SCORING_CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops import settings
from airflow_mlops.dags.batch_scoring import scoring_dag

DEMO_CONFIG = str(Path(__file__).parent / "configs" / "demo_churn.yaml")
dag = scoring_dag(settings.dag_config("scoring", DEMO_CONFIG), dag_id="ml_batch_scoring")
