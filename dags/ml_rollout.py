"""Rollout of the new candidate for the model in ``configs/`` (``MLOPS_ROLLOUT_CONFIG``)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_mlops.dags.rollout import rollout_dag

CONFIG = os.environ.get(
    "MLOPS_ROLLOUT_CONFIG", str(Path(__file__).parent / "configs" / "demo_churn.yaml")
)

dag = rollout_dag(CONFIG, dag_id="ml_rollout")
