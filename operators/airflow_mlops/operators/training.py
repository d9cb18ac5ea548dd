"""Train, evaluate against the champion, convert to ONNX with a parity check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.operators.base import MLOpsBaseOperator, Result


class TrainModelOperator(MLOpsBaseOperator):
    """Fit the configured estimator pipeline on the train split; holdout metrics are returned.

    :param prepared: the ``PrepareDataOperator`` result (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "prepared")

    def __init__(self, *, prepared: Result, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import Trained

        config = self.model_config()
        trained = Trained.from_dict(
            self.call_core(steps.train, config, self.prepared, self.run_folder(config, context))
        )
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(trained.metrics.items()))
        self.log.info("trained %s in %.1fs: %s", trained.estimator, trained.fit_seconds, metrics)
        return trained.to_dict()


class EvaluateModelOperator(MLOpsBaseOperator):
    """Compare the challenger with the current champion on the same holdout.

    Never fails on a lost comparison: the verdict and each gate's figures are returned so that
    registration can record them and promotion can act on them.

    :param prepared: the ``PrepareDataOperator`` result (templated).
    :param trained: the ``TrainModelOperator`` result (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "prepared", "trained")

    def __init__(self, *, prepared: Result, trained: Result, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.trained = trained

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import Evaluated

        config = self.model_config()
        result = Evaluated.from_dict(
            self.call_core(steps.evaluate, self.tracking(), config, self.prepared, self.trained)
        )
        self.log.info("evaluation (%s): %s", result.champion_basis, result.summary)
        for gate in result.gates:
            self.log.info("  %s %s", "PASS" if gate["passed"] else "FAIL", gate["message"])
        return result.to_dict()


class ConvertToOnnxOperator(MLOpsBaseOperator):
    """Convert the trained pipeline to ONNX and check parity with the native model.

    Fails without retries when parity is past the config's tolerances, or when a pipeline step
    cannot be converted (the step is named).

    :param prepared: the ``PrepareDataOperator`` result (templated).
    :param trained: the ``TrainModelOperator`` result (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "prepared", "trained")

    def __init__(self, *, prepared: Result, trained: Result, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.trained = trained

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import ConversionResult

        config = self.model_config()
        out_dir = self.run_folder(config, context)
        result = ConversionResult.from_dict(
            self.call_core(steps.convert, config, self.prepared, self.trained, out_dir)
        )
        self.log.info(
            "%s; ONNX file %s (%d bytes)",
            result.parity["message"],
            result.onnx_uri,
            result.size_bytes,
        )
        return result.to_dict()
