"""Extra link from a profiling task to its report in MLflow."""

from __future__ import annotations

from airflow_mlops.links.mlflow import _PersistedLink


class MLflowProfileReportLink(_PersistedLink):
    """The profile chart (``profile/profile.png``) among the version run's artifacts; the JSON
    report sits beside it."""

    name = "Profile report"
    key = "mlflow_profile_report_url"
