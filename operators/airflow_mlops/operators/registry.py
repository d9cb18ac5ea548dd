"""Register a version with lineage in the MLflow registry, and promote it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_mlops.links.mlflow import MLflowModelVersionLink, MLflowRunLink
from airflow_mlops.operators.base import MLOpsBaseOperator, Result, airflow_ids, trigger_info
from airflow_mlops.operators.events import announce


class RegisterModelOperator(MLOpsBaseOperator):
    """Log the native and the ONNX model in one MLflow run and register a version.

    The version is tagged with its lineage (Airflow ids, code version, data URI + sha256 + rows,
    validation summary, parity figures, metrics, evaluation verdict, what triggered the run) and
    gets the ``challenger`` alias.

    :param prepared: the ``PrepareDataOperator`` result (templated).
    :param validation: the ``ValidateDataOperator`` result (templated).
    :param trained: the ``TrainModelOperator`` result (templated).
    :param evaluation: the ``EvaluateModelOperator`` result (templated).
    :param converted: the ``ConvertToOnnxOperator`` result (templated).
    :param register_identical: register a new version even when an existing one was trained
        on the same data bytes with the same training config and has the same holdout metrics
        (templated; ``"True"``/``"true"`` count; default ``False``: the result names the
        existing version, with ``unchanged`` set, and the downstream profile and promotion
        are skipped).
    """

    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "prepared",
        "validation",
        "trained",
        "evaluation",
        "converted",
        "register_identical",
    )
    operator_extra_links = (MLflowModelVersionLink(), MLflowRunLink())
    announces_events: ClassVar[bool] = True  # model_registered

    def __init__(
        self,
        *,
        prepared: Result,
        trained: Result,
        converted: Result,
        validation: Result = None,
        evaluation: Result = None,
        register_identical: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.register_identical = register_identical
        self.prepared = prepared
        self.validation = validation
        self.trained = trained
        self.evaluation = evaluation
        self.converted = converted

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import Evaluated, Registered, Trained

        config = self.model_config()
        registered = self.call_core(
            steps.register,
            self.tracking(),
            config,
            prepared=self.prepared,
            validation=self.validation,
            trained=self.trained,
            evaluation=self.evaluation,
            converted=self.converted,
            airflow=airflow_ids(context),
            trigger=trigger_info(context),
            register_identical=_flag(self.register_identical),
        )
        version = Registered.from_dict(registered)
        MLflowModelVersionLink.persist(context, version.version_url)
        MLflowRunLink.persist(context, version.run_url)
        if version.unchanged:
            self.log.info("%s: %s", version.message, version.version_url or version.model_uri)
            return version.to_dict()
        announce(
            context,
            kind="model_registered",
            model=version.name,
            version=version.version,
            message=f"{version.name} v{version.version} registered as challenger",
            details={
                "metrics": Trained.from_dict(self.trained).metrics,
                "evaluation": Evaluated.from_dict(self.evaluation).summary
                if self.evaluation
                else None,
                "run_id": version.run_id,
            },
        )
        self.log.info(
            "registered %s v%s (aliases: %s) from run %s",
            version.name,
            version.version,
            ", ".join(version.aliases),
            version.run_id,
        )
        return version.to_dict()


class PromoteModelOperator(MLOpsBaseOperator):
    """Give the registered version the ``champion`` alias if every evaluation gate passed.

    A rejected version is an expected outcome, not an error: the task is skipped with a message
    naming the failed gate, the version keeps ``challenger`` (tagged ``mlops.promotion``) and the
    champion is untouched.

    :param registered: the ``RegisterModelOperator`` result (templated).
    :param evaluation: the ``EvaluateModelOperator`` result (templated).
    :param require_gates: promote only when the evaluation passed (default ``True``).
    :param via_rollout: give ``candidate`` instead of ``champion`` when a champion exists; the
        rollout DAG moves ``champion`` after its last traffic step.
    :param profile: the ``ProfileModelOperator`` result; its SLO verdict gates promotion when
        the config's ``profiling.gate`` is on (templated).
    """

    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "registered",
        "evaluation",
        "profile",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    announces_events: ClassVar[bool] = True  # model_promoted, promotion_rejected

    def __init__(
        self,
        *,
        registered: Result,
        evaluation: Result = None,
        require_gates: bool = True,
        via_rollout: bool = False,
        profile: Result = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered = registered
        self.evaluation = evaluation
        self.require_gates = require_gates
        self.via_rollout = via_rollout
        self.profile = profile

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import Evaluated, Promoted, Registered

        config = self.model_config()
        registered = self.call_core(Registered.from_dict, self.registered)
        MLflowModelVersionLink.persist(context, registered.version_url)
        if registered.unchanged:
            raise AirflowSkipException(registered.message)
        try:
            result = steps.promote(
                self.tracking(),
                config,
                self.registered,
                self.evaluation,
                require_gates=self.require_gates,
                via_rollout=self.via_rollout,
                profile=self.profile,
            )
        except steps.GateFailed as exc:
            self.log.warning("%s", exc)
            evaluation = Evaluated.from_dict(self.evaluation) if self.evaluation else None
            announce(
                context,
                kind="promotion_rejected",
                model=registered.name,
                version=registered.version,
                message=str(exc),
                details={"evaluation": evaluation.summary if evaluation else None},
            )
            raise AirflowSkipException(str(exc)) from exc
        promoted = Promoted.from_dict(result)
        self.log.info("%s", promoted.message)
        announce(
            context,
            kind="model_promoted",
            model=promoted.name,
            version=promoted.version,
            message=promoted.message,
            details={
                "previous_version": promoted.previous_version,
                "alias": promoted.alias or "champion",
            },
        )
        return promoted.to_dict()


def _flag(value: bool | str | None) -> bool:
    """A templated boolean: Jinja renders ``params.x`` as the text ``True``/``False``."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
