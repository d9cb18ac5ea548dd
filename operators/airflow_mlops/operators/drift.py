"""Check the data a model scored for drift; emit the drift Asset event when drift is confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_mlops.links.drift import DriftReportLink, report_url
from airflow_mlops.links.mlflow import MLflowRunLink
from airflow_mlops.operators.base import MLOpsBaseOperator, airflow_ids
from airflow_mlops.operators.events import announce

#: The keys of the check's summary that go into the Asset event's ``extra``.
EVENT_KEYS = (
    "model",
    "version",
    "window",
    "drifted_columns",
    "drift_share",
    "prediction_drift",
    "report_uri",
    "run_id",
    "consecutive",
    "summary",
)


class DriftCheckOperator(MLOpsBaseOperator):
    """Compare the latest window of scored data with the reference of a model version.

    Runs :func:`airflow_mlops.core.drift_monitor.monitor`: the statistics on every row, the
    Evidently HTML report on a sample, a monitoring run in MLflow (``<model>-monitoring``), and
    the streak of drifting windows kept on the model version. Returns a small summary (status,
    confirmed, drifted columns, share, prediction drift, report URI, run id).

    When the task has ``outlets`` (e.g. ``airflow_mlops.dags.assets.drift_asset(name)``), their
    Asset events carry the summary in ``extra`` and happen only on *confirmed* drift: without
    it the task pushes its summary to XCom and ends *skipped*, because Airflow records an event
    for every outlet of a successful task.

    :param ref: the version to compare with: ``champion`` (default), another alias or a number
        (templated).
    :param day: check this ``YYYY-MM-DD`` window instead of the config's ``monitoring.window``
        (templated; empty means the config's choice).
    :param fail_on_unusable: fail the task when the data could not be compared (default: the
        summary says ``unusable`` and the task succeeds or skips).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "ref", "day")
    operator_extra_links = (DriftReportLink(), MLflowRunLink())
    announces_events: ClassVar[bool] = True  # drift_detected
    ui_color = "#fdf1e0"

    def __init__(
        self,
        *,
        ref: str = "champion",
        day: str | None = None,
        fail_on_unusable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.day = day
        self.fail_on_unusable = fail_on_unusable

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airflow_mlops.core.drift.monitor import NothingToMonitor, monitor

        config = self.model_config()
        tracking = self.tracking()

        def check() -> dict[str, Any]:
            # Nothing to compare with is an outcome, not a failure: skip before call_core
            # would fail the task for it (NothingToMonitor is a permanent MLOpsError).
            try:
                return monitor(
                    tracking,
                    config,
                    ref=self.ref or "champion",
                    day=self.day or None,
                    airflow=airflow_ids(context),
                )
            except NothingToMonitor as exc:
                raise AirflowSkipException(str(exc)) from exc

        summary = self.call_core(check)
        DriftReportLink.persist(context, report_url(tracking.ui_base, summary["run_id"]))
        MLflowRunLink.persist(context, summary.get("run_url"))
        self.log.info(
            "%s v%s, window %s: %s", summary["model"], summary["version"], summary["window"],
            summary["summary"],
        )  # fmt: skip
        if summary["status"] == "unusable" and self.fail_on_unusable:
            raise AirflowFailException(summary["summary"])
        if summary.get("confirmed"):
            announce(
                context,
                kind="drift_detected",
                model=summary["model"],
                version=summary["version"],
                message=summary["summary"],
                details={key: summary.get(key) for key in EVENT_KEYS},
            )
        if self.outlets:
            if not summary["confirmed"]:
                context["ti"].xcom_push(key="return_value", value=summary)
                raise AirflowSkipException(_not_confirmed(summary))
            emit_drift_event(context, self.outlets, summary)
        return summary


def _not_confirmed(summary: dict[str, Any]) -> str:
    if summary.get("already_confirmed"):
        return (
            f"window {summary['window']} had already confirmed drift for v{summary['version']}: "
            "no second event (its retraining was already started)"
        )
    if summary["status"] == "drift":
        return (
            f"drift in {summary['consecutive']} of {summary['consecutive_required']} "
            "consecutive windows needed: not confirmed yet, no event"
        )
    return f"no drift event: {summary['status']}"


def emit_drift_event(context: Any, outlets: Sequence[Any], summary: dict[str, Any]) -> None:
    """Put the summary into the ``extra`` of every Asset outlet's event."""
    from airflow.sdk import Asset

    extra = {key: summary.get(key) for key in EVENT_KEYS}
    for outlet in outlets:
        if isinstance(outlet, Asset):
            context["outlet_events"][outlet].extra = extra
