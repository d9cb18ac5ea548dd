"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from airflow_mlops import __version__

    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": "The machine-learning model lifecycle as Airflow tasks: data checks, "
        "training, ONNX, MLflow registry, scoring, drift and rollout.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_mlops.hooks.mlflow.MLflowHook",
            }
        ],
        "extra-links": [
            "airflow_mlops.links.mlflow.MLflowRunLink",
            "airflow_mlops.links.mlflow.MLflowModelVersionLink",
            "airflow_mlops.links.profiling.MLflowProfileReportLink",
            "airflow_mlops.links.drift.DriftReportLink",
            "airflow_mlops.links.rollout.RolloutEndpointLink",
            "airflow_mlops.links.rollout.ServingImageLink",
        ],
        "hooks": [{"integration-name": "MLflow", "python-modules": ["airflow_mlops.hooks.mlflow"]}],
        "operators": [
            {
                "integration-name": "MLOps",
                "python-modules": [
                    "airflow_mlops.operators.data",
                    "airflow_mlops.operators.training",
                    "airflow_mlops.operators.registry",
                    "airflow_mlops.operators.profiling",
                    "airflow_mlops.operators.scoring",
                    "airflow_mlops.operators.drift",
                    "airflow_mlops.operators.rollout",
                    "airflow_mlops.operators.approval",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "MLOps", "python-modules": ["airflow_mlops.sensors.drift"]}
        ],
        # Airflow reads this list only with ``[core] lazy_discover_providers = False``; by
        # default the ``airflow.plugins`` entry points register them (plugins/entry_points.py).
        "plugins": [
            {
                "name": "mlops_events",
                "plugin-class": "airflow_mlops.plugins.events.MLOpsEventsPlugin",
            },
            {"name": "mlops_ui", "plugin-class": "airflow_mlops.plugins.ui.MLOpsUIPlugin"},
        ],
    }
