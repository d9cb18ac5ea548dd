"""Prepare and validate the training data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.operators.base import MLOpsBaseOperator, Result


class PrepareDataOperator(MLOpsBaseOperator):
    """Load the dataset, fingerprint it (sha256, rows) and split it into train and holdout.

    Returns the split's file URIs and the lineage figures; no data goes to XCom.

    :param data_uri: overrides the config's ``data.uri`` (templated), e.g. a dated partition.
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "data_uri")

    def __init__(self, *, data_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_uri = data_uri

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import Prepared

        config = self.model_config()
        out_dir = self.run_folder(config, context)
        prepared = Prepared.from_dict(
            self.call_core(steps.prepare, config, out_dir, data_uri=self.data_uri)
        )
        self.log.info(
            "dataset %s: %s rows (sha256 %s) -> %s train / %s holdout rows in %s",
            prepared.data_uri,
            prepared.rows,
            prepared.sha256[:12],
            prepared.train_rows,
            prepared.holdout_rows,
            out_dir,
        )
        return prepared.to_dict()


class ValidateDataOperator(MLOpsBaseOperator):
    """Check the prepared data with Great Expectations against the config's validation spec.

    Fails (without retries) when an expectation fails, naming each failed expectation and its
    observed figure; the JSON report is written beside the run's files.

    :param prepared: the ``PrepareDataOperator`` result (templated; usually ``prepare.output``):
        its train and holdout splits are checked as one dataset.
    :param data_uri: validate this file instead (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "prepared", "data_uri")

    def __init__(
        self,
        *,
        prepared: Result = None,
        data_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.data_uri = data_uri

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.pipeline import steps
        from airflow_mlops.core.pipeline.results import Prepared, Validated

        config = self.model_config()
        data_uri: str | list[str] = self.data_uri or config.data.uri
        if not self.data_uri and self.prepared:
            # Both splits: the holdout decides promotion, so it passes the same checks.
            split = self.call_core(Prepared.from_dict, self.prepared)
            data_uri = [split.train_uri, split.holdout_uri]
        report = f"{self.run_folder(config, context)}/validation.json"
        result = Validated.from_dict(
            self.call_core(steps.validate, config, data_uri, report_uri=report)
        )
        self.log.info("%s (report: %s)", result.summary, report)
        return result.xcom()
