"""Drift monitoring (``ml_drift_monitor``): on confirmed drift, emit ``drift/<model>``.

The model config's ``monitoring`` section holds the drift policy, the schedule and where
current data is; see ``docs/drift.md``. ``ml_training`` is scheduled on the same Asset, so
confirmed drift starts a retraining run whose lineage records this event.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, Param

from airflow_mlops.dags.assets import drift_asset
from airflow_mlops.dags.common import START_DATE, default_args, operator_args, read_config
from airflow_mlops.operators.drift import DriftCheckOperator


def drift_monitor_dag(
    config_path: str | os.PathLike[str],
    *,
    dag_id: str = "ml_drift_monitor",
    mlflow_conn_id: str = "mlflow_default",
) -> DAG:
    """Build the drift-monitoring DAG for one model config.

    :param config_path: the model config YAML (``monitoring.schedule``, default ``@daily``).
    :param dag_id: the DAG id.
    :param mlflow_conn_id: the ``mlflow`` connection the task uses.
    """
    config_file, config = read_config(config_path)
    with DAG(
        dag_id=dag_id,
        schedule=config.monitoring.get("schedule", "@daily"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(retry_delay=timedelta(minutes=2)),
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
            ref="{{ params.ref }}",
            day="{{ params.day or '' }}",
            outlets=[drift_asset(config.name)],
            **operator_args(config_file, mlflow_conn_id),
        )
    return dag
