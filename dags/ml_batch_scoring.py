"""Batch scoring of a day's partitions with the champion (``MLOPS_SCORING_CONFIG``)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_mlops.dags.batch_scoring import scoring_dag

CONFIG = os.environ.get(
    "MLOPS_SCORING_CONFIG", str(Path(__file__).parent / "configs" / "demo_churn.yaml")
)

dag = scoring_dag(CONFIG, dag_id="ml_batch_scoring")
