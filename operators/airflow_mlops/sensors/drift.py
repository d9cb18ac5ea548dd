"""Wait until drift is confirmed for a model (``mode="reschedule"``: no worker slot held)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_mlops.links.drift import DriftReportLink, report_url
from airflow_mlops.operators.base import MLOpsBaseOperator, airflow_ids
from airflow_mlops.operators.drift import emit_drift_event


class DriftSensor(MLOpsBaseOperator, BaseSensorOperator):
    """Poke until a drift check confirms drift; the summary becomes the sensor's XCom.

    Each poke first asks whether a window not yet judged for this version exists (a file
    listing and one registry read); only then it runs the check, in the worker. The sensor
    defaults to ``mode="reschedule"`` so nothing heavy, and no worker slot, is held between
    pokes, and nothing of the check runs in the triggerer. With ``outlets``, their Asset events
    carry the summary in ``extra``.

    :param ref: the version to compare with (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "ref")
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#fdf1e0"

    def __init__(self, *, ref: str = "champion", **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", timedelta(minutes=30))
        super().__init__(**kwargs)
        self.ref = ref

    def poke(self, context: Any) -> PokeReturnValue | bool:
        from airflow_mlops.core.drift.monitor import monitor, pending_window

        config = self.model_config()
        tracking = self.tracking()
        window = self.call_core(pending_window, tracking, config, self.ref or "champion")
        if window is None:
            self.log.info("no new window of data for %s@%s yet", config.name, self.ref)
            return False
        summary = self.call_core(
            monitor, tracking, config, ref=self.ref or "champion", airflow=airflow_ids(context)
        )
        DriftReportLink.persist(context, report_url(tracking.ui_base, summary["run_id"]))
        self.log.info("window %s: %s", summary["window"], summary["summary"])
        if not summary["confirmed"]:
            return False
        emit_drift_event(context, self.outlets, summary)
        return PokeReturnValue(is_done=True, xcom_value=summary)
