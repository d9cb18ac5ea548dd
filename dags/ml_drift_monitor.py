"""Drift monitoring for the model in ``configs/``: on confirmed drift, emit ``drift/<model>``.

The config is ``MLOPS_MONITOR_CONFIG`` (default: ``MLOPS_TRAINING_CONFIG``, then the demo
model). Its ``monitoring`` section holds the drift policy and where current data is; see
``docs/drift.md``. ``ml_training`` is scheduled on the same Asset, so confirmed drift starts a
retraining run whose lineage records this event.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from airflow_mlops import settings
from airflow_mlops.core.config.model import load_config
from airflow_mlops.dags.assets import drift_asset
from airflow_mlops.operators.drift import DriftCheckOperator

CONFIG = settings.dag_config("monitor", str(Path(__file__).parent / "configs" / "demo_churn.yaml"))
config = load_config(CONFIG)

with DAG(
    dag_id="ml_drift_monitor",
    schedule=config.monitoring.get("schedule", "@daily"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mlops", "retries": 1, "retry_delay": timedelta(minutes=2)},
    description=f"Compare what {config.name}'s champion scored with its training reference",
    doc_md=__doc__,
    tags=["mlops", "monitoring", config.name],
    params={
        "day": Param(None, type=["null", "string"], description="Check this YYYY-MM-DD window"),
        "ref": Param("champion", type="string", description="Version or alias to compare with"),
    },
) as dag:
    DriftCheckOperator(
        task_id="check_drift",
        config=str(Path(CONFIG).resolve()),
        ref="{{ params.ref }}",
        day="{{ params.day or '' }}",
        outlets=[drift_asset(config.name)],
    )
