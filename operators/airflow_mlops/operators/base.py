"""What every lifecycle operator shares: the model config, MLflow settings, the run folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import settings
from airflow_mlops.exceptions import MLOpsError, is_permanent

if TYPE_CHECKING:
    from airflow_mlops.core.config.model import ModelConfig
    from airflow_mlops.core.registry.tracking import TrackingConfig

T = TypeVar("T")

# An upstream task's result: the dict itself, or (when building a DAG) the upstream operator's
# ``.output``, which Airflow resolves to the dict before ``execute()`` runs.
Result = Any


class MLOpsBaseOperator(BaseOperator):
    """Base of the lifecycle operators.

    :param config: path of a model config YAML file, or the config as a dict (templated).
    :param mlflow_conn_id: the ``mlflow`` connection (default ``mlflow_default``).
    :param work_dir: folder or URI shared by the run's tasks for intermediate files; defaults
        to the config's ``work_dir`` (templated).
    :param storage_conn_id: an ``aws`` connection whose credentials (and ``extra.endpoint_url``)
        serve every ``s3://`` URI the task opens; when it does not exist, the environment's
        credentials apply (default ``aws_default``; ``None``: never look).
    """

    template_fields: Sequence[str] = ("config", "work_dir")
    ui_color = "#e8f4fb"

    def __init__(
        self,
        *,
        config: str | dict[str, Any],
        mlflow_conn_id: str = "mlflow_default",
        work_dir: str | None = None,
        storage_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.mlflow_conn_id = mlflow_conn_id
        self.work_dir = work_dir
        self.storage_conn_id = storage_conn_id

    def pre_execute(self, context: Any) -> None:
        from airflow_mlops.hooks.storage import configure_object_storage

        super().pre_execute(context)
        configure_object_storage(self.storage_conn_id)

    def model_config(self) -> ModelConfig:
        from airflow_mlops.core.config.model import config_from_dict, load_config

        if isinstance(self.config, dict):
            return self.call_core(config_from_dict, self.config, source=f"task {self.task_id}")
        return self.call_core(load_config, self.config)

    def tracking(self) -> TrackingConfig:
        """MLflow from the connection, checked on each call: a server that does not answer
        fails the try within seconds, naming it, instead of after the client's minutes of
        retries (the task's own retries still apply). The check is one ``/health`` request;
        nothing is kept on the operator between calls."""
        from airflow_mlops.hooks.mlflow import MLflowHook

        config = MLflowHook(mlflow_conn_id=self.mlflow_conn_id).config
        config.check_reachable(timeout=settings.mlflow_check_seconds())
        return config

    def run_folder(self, config: ModelConfig, context: Any) -> str:
        from airflow_mlops.core.pipeline.steps import run_dir

        base = self.work_dir or config.work_dir
        if not base:
            base = os.path.join(settings.mlops_home(), "work")
        return run_dir(base, context["dag"].dag_id, context["run_id"])

    def call_core(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a core step, mapping its errors to what a retry can do about them.

        An :class:`~airflow_mlops.exceptions.MLOpsError` (bad data, a bad config, a failed
        gate, a missing version: the same inputs give the same answer) fails the task at once
        instead of burning its retries. An
        :class:`~airflow_mlops.exceptions.MLOpsTransientError` (MLflow or storage did not
        answer) propagates: the retries apply. A library error fails at once when the same
        call would reproduce it (:func:`~airflow_mlops.exceptions.is_permanent`: no
        object-store credentials, a graph ONNX Runtime refuses, a request MLflow refuses as
        invalid); any other error propagates.
        """
        try:
            return func(*args, **kwargs)
        except MLOpsError as exc:
            self.log.error("%s", exc)
            raise AirflowFailException(str(exc)) from exc
        except Exception as exc:
            if not is_permanent(exc):
                raise
            message = f"{type(exc).__name__}: {exc}"
            self.log.error("%s (a retry would fail the same way)", message)
            raise AirflowFailException(message) from exc


def airflow_ids(context: Any) -> dict[str, Any]:
    """The ids that tie a registered version back to the Airflow task that made it."""
    ti = context["ti"]
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": getattr(ti, "try_number", None),
    }


def trigger_info(context: Any) -> dict[str, Any]:
    """Why this run started: its run type and, for Asset-triggered runs, the triggering events."""
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    info: dict[str, Any] = {"type": str(getattr(run_type, "value", run_type) or "manual")}
    events = context.get("triggering_asset_events") or {}
    found = []
    try:
        for asset, asset_events in events.items():
            for event in asset_events:
                found.append(
                    {
                        "asset": getattr(asset, "uri", str(asset)),
                        "extra": dict(getattr(event, "extra", None) or {}),
                        "timestamp": str(getattr(event, "timestamp", "")),
                    }
                )
    except Exception:  # the accessor is lazy and may be unavailable outside a scheduler run
        found = []
    if found:
        info["type"] = "asset"
        info["events"] = found
    return info
