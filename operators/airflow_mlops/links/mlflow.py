"""Extra links from a task to what it made in MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class _PersistedLink(BaseOperatorLink):
    """A link whose URL the task computed while it ran and pushed to XCom under ``key``.

    The URL goes through XCom, not the operator object, so it reaches whatever process asks
    for it (the provider's pattern, as in the amazon provider's ``BaseAwsLink``).
    """

    name: ClassVar[str] = ""  # type: ignore[misc]
    key: ClassVar[str] = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Airflow 3 calls this in the worker once the task ends and stores what it returns
        # under ``xcom_key`` for the UI; a task that ended before persisting has no link.
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=self.key)
        return str(url) if url else ""

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        """Record the URL for this task instance; a missing URL (no MLflow UI) is skipped."""
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)


class MLflowRunLink(_PersistedLink):
    """The MLflow run that logged the models."""

    name = "MLflow run"
    key = "mlflow_run_url"


class MLflowModelVersionLink(_PersistedLink):
    """The registered model version."""

    name = "MLflow model version"
    key = "mlflow_model_version_url"
