"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

_CONFIG_DESCRIPTION = (
    "Settings of the MLOps provider. Each option falls back to the environment variable "
    "MLOPS_<OPTION> (MLOPS_HOME for home), then to the default shown."
)

# option: (type, example, what it is). Every default is None: unset, the variable or the
# package's own default applies (see airflow_mlops.settings).
_OPTIONS: dict[str, tuple[str, str, str]] = {
    "home": (
        "string",
        "/var/lib/mlops",
        "Local state folder: work files, monitoring samples, model cache, rollout servers, "
        "events (default .mlops in the working directory).",
    ),
    "mlflow_check_seconds": (
        "float",
        "10",
        "How long a task waits for MLflow's /health before failing the try (default 10).",
    ),
    "code_version": (
        "string",
        "2026.12.1",
        "The code version tagged on registered versions (default: the git commit).",
    ),
    "event_log": (
        "string",
        "/var/log/mlops/events.jsonl",
        "The lifecycle event log (default <home>/events/events.jsonl).",
    ),
    "xcom_file": (
        "string",
        "/airflow/xcom/return.json",
        "Where `airflow-mlops score` also writes its JSON result (a pod's XCom sidecar).",
    ),
    "ui_mlflow_conn_id": (
        "string",
        "mlflow_default",
        "The MLflow connection of the Models view.",
    ),
    "training_config": (
        "string",
        "/opt/airflow/dags/configs/churn.yaml",
        "The model config of dags/ml_training.py.",
    ),
    "scoring_config": ("string", "", "The model config of dags/ml_batch_scoring.py."),
    "rollout_config": ("string", "", "The model config of dags/ml_rollout.py."),
    "monitor_config": (
        "string",
        "",
        "The model config of dags/ml_drift_monitor.py (default: training_config).",
    ),
}


def _config_options() -> dict[str, dict[str, Any]]:
    return {
        name: {
            "description": description,
            "version_added": None,
            "type": kind,
            "example": example or None,
            "default": None,
        }
        for name, (kind, example, description) in _OPTIONS.items()
    }


def get_provider_info() -> dict[str, Any]:
    from airflow_mlops import __version__

    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": "The machine-learning model lifecycle as Airflow tasks: data checks, "
        "training, ONNX, MLflow registry, scoring, drift and rollout.",
        "versions": [__version__],
        "config": {"mlops": {"description": _CONFIG_DESCRIPTION, "options": _config_options()}},
        "integrations": [
            {
                "integration-name": "MLflow",
                "external-doc-url": "https://mlflow.org/docs/latest/",
                "tags": ["software"],
            },
            {"integration-name": "MLOps", "tags": ["software"]},
        ],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_mlops.hooks.mlflow.MLflowHook",
                "hook-name": "MLflow",
                # Declared here, not by the hook's get_ui_field_behaviour(): Airflow 3.2+
                # builds the connection form from provider info without importing hooks.
                "conn-fields": {
                    "tracking_uri": {
                        "label": "Tracking URI",
                        "schema": {"type": ["string", "null"]},
                        "description": "Overrides Host: http(s)://..., sqlite:///..., "
                        "postgresql://...",
                    },
                    "registry_uri": {
                        "label": "Registry URI",
                        "schema": {"type": ["string", "null"]},
                        "description": "A separate model registry (default: the tracking URI)",
                    },
                    "ui_url": {
                        "label": "UI URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "Base URL of the MLflow UI for links (default: the "
                        "tracking URI when it is http(s))",
                    },
                    "token": {
                        "label": "Token",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": "Bearer token (MLFLOW_TRACKING_TOKEN) instead of basic auth",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {
                        "host": "Tracking server (URL or host)",
                        "login": "Username (basic auth)",
                        "password": "Password (basic auth)",
                    },
                    "placeholders": {
                        "host": "http://mlflow:5000",
                        "port": "5000 (when Host has no scheme)",
                    },
                },
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
