"""Drift monitoring; the config is ``MLOPS_MONITOR_CONFIG``, else ``MLOPS_TRAINING_CONFIG``."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops import settings
from airflow_mlops.dags.drift_monitor import drift_monitor_dag

DEMO_CONFIG = str(Path(__file__).parent / "configs" / "demo_churn.yaml")
dag = drift_monitor_dag(settings.dag_config("monitor", DEMO_CONFIG), dag_id="ml_drift_monitor")
