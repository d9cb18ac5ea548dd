"""Extra links from a task to what it made in MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class _PersistedLink(BaseOperatorLink):
    """A link whose URL the task computed and pushed to XCom while it ran."""

    name: ClassVar[str] = ""  # type: ignore[misc]
    key: ClassVar[str] = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Airflow 3 calls this in the worker once the task ends and stores the result for the
        # UI; the URL is on the operator instance that ran, if the task got that far.
        return getattr(operator, "_mlops_links", {}).get(self.key, "")

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        """Record the URL for this task instance; a missing URL (no MLflow UI) is skipped."""
        if url:
            task = context["task"]
            links = getattr(task, "_mlops_links", None)
            if links is None:
                links = {}
                task._mlops_links = links
            links[cls.key] = url


class MLflowRunLink(_PersistedLink):
    """The MLflow run that logged the models."""

    name = "MLflow run"
    key = "mlflow_run_url"


class MLflowModelVersionLink(_PersistedLink):
    """The registered model version."""

    name = "MLflow model version"
    key = "mlflow_model_version_url"
