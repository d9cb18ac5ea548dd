"""Profile a registered model version: latency, throughput, memory, resource recommendations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_mlops.links.mlflow import MLflowModelVersionLink
from airflow_mlops.links.profiling import MLflowProfileReportLink
from airflow_mlops.operators.base import MLOpsBaseOperator, Result


class ProfileModelOperator(MLOpsBaseOperator):
    """Measure a registered version with ONNX Runtime and record the profile on it.

    The JSON report and a PNG chart are logged under ``profile/`` on the version's run, the key
    figures and Kubernetes resource recommendations become ``mlops.profile.*`` version tags, and
    the result carries the SLO verdict (``passed``, ``slo_met``, ``message``) that
    ``PromoteModelOperator`` can gate on. A missed SLO never fails this task: whether it blocks
    promotion is the config's ``profiling.gate``.

    :param model: the ``RegisterModelOperator`` result, ``models:/<name>/<version>``,
        ``models:/<name>@<alias>``, or a version number / alias of the config's model
        (default ``champion``) (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "model")
    operator_extra_links = (MLflowProfileReportLink(), MLflowModelVersionLink())
    ui_color = "#fdf2e0"

    def __init__(self, *, model: Result = "champion", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context: Any) -> dict[str, Any]:

        from airflow_mlops.core.profiling.profile import parse_model_ref, profile_registered

        if isinstance(self.model, Mapping) and self.model.get("unchanged"):
            from airflow.sdk.exceptions import AirflowSkipException

            # The version was profiled when it was registered; nothing new to measure.
            raise AirflowSkipException(str(self.model.get("message") or "model unchanged"))
        config = self.model_config()
        # A missing version or a model that rejects its own sample (ProfilingError): retrying
        # cannot help, call_core fails the task at once.
        name, version = self.call_core(parse_model_ref, self.model, config.name)
        result = self.call_core(profile_registered, self.tracking(), config, name, version)
        MLflowProfileReportLink.persist(context, result.get("report_url"))
        MLflowModelVersionLink.persist(context, result.get("version_url"))
        self.log.info(
            "%s v%s: p50 %s ms, p99 %s ms, %s rows/s at batch %s; cpu %s/%s, memory %s/%s; "
            "report %s",
            name,
            result["version"],
            result["p50_ms"],
            result["p99_ms"],
            result["max_rows_per_s"],
            result["batch_size"],
            result["cpu_request"],
            result["cpu_limit"],
            result["memory_request"],
            result["memory_limit"],
            result.get("report_uri"),
        )
        if result["passed"]:
            self.log.info("%s", result["message"])
        else:
            self.log.warning("%s", result["message"])
        return result
