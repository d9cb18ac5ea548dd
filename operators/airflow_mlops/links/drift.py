"""Extra link from a drift check to its Evidently HTML report in MLflow."""

from __future__ import annotations

from airflow_mlops.links.mlflow import _PersistedLink


class DriftReportLink(_PersistedLink):
    """The HTML drift report (``drift/report.html``) of the monitoring run, served by the
    MLflow server; the JSON summary sits beside it."""

    name = "Drift report"
    key = "mlflow_drift_report_url"


def report_url(ui_base: str | None, run_id: str | None, path: str = "drift/report.html") -> str:
    """The MLflow server URL that serves one artifact of a run (empty without a UI base)."""
    if not ui_base or not run_id:
        return ""
    return f"{ui_base}/get-artifact?path={path}&run_uuid={run_id}"
