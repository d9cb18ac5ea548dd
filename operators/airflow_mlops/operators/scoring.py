"""Batch scoring tasks: pin the model version once, then score partitions (mappable)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.links.mlflow import MLflowModelVersionLink
from airflow_mlops.operators.base import MLOpsBaseOperator

_DATE_PART = re.compile(r"(?:^|/)date=([^/]+)")


class ResolveModelOperator(MLOpsBaseOperator):
    """Resolve the model reference (e.g. ``champion``) to one concrete version, once per run.

    Every scoring task of the run then uses the returned version, so a champion that changes
    while the run is in progress cannot mix versions. Returns ``{name, version, model_uri,
    reference}``.

    :param model: alias, version or ``models:/`` URI, or a local ``.onnx`` path; default the
        config's ``scoring.model`` (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "model")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fdf1e0"

    def __init__(self, *, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.model_ref import ModelRefError, parse_reference, resolve_version
        from airflow_mlops.core.scoring import ScoringSpec

        config = self.model_config()
        spec = self.call_core(ScoringSpec.from_dict, config.scoring, f"task {self.task_id}")
        reference = self.model or spec.model
        try:
            kind = parse_reference(reference, config.name)[0]
            tracking = self.tracking() if kind == "registry" else None
            pinned = resolve_version(reference, tracking, name=config.name)
        except ModelRefError as exc:
            raise AirflowFailException(str(exc)) from exc
        if tracking is not None:
            MLflowModelVersionLink.persist(
                context, tracking.model_version_url(pinned.name, pinned.version)
            )
        self.log.info("scoring with %s v%s (%s)", pinned.name, pinned.version, reference)
        return pinned.to_dict()


class BatchScoreOperator(MLOpsBaseOperator):
    """Score one partition with ONNX Runtime and write predictions, rejects and a sample.

    Designed for dynamic task mapping:
    ``BatchScoreOperator.partial(model=resolve.output, output_uri=...).expand(input_uri=...)``.
    Returns :class:`airflow_mlops.core.scoring.ScoreResult` as a dict (with the model version
    the partition was scored with).

    :param input_uri: the partition: a Parquet/CSV file, a folder or a hive dataset (templated).
    :param output_uri: the predictions file; ``{partition}`` is replaced by the partition's
        name and ``{date}`` by the ``date=`` folder of the input (templated).
    :param model: a reference (``champion``, ``"3"``, ``models:/...``, a local ``.onnx`` path)
        or the ``ResolveModelOperator`` result; default the config's ``scoring.model``
        (templated).
    :param partition: the name used in logs, errors and the sample file (default: from the
        input URI) (templated).
    :param sample_date: the ``date=`` of the monitoring sample (default: the input's ``date=``
        folder, else today) (templated).
    :param rejects_uri: the rejects file (default ``<output folder>/_rejects/<file>``)
        (templated).
    :param key_columns: columns copied to the output (default ``scoring.key_columns``, else the
        config's ``data.key_columns``).
    """

    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "input_uri",
        "output_uri",
        "model",
        "partition",
        "sample_date",
        "rejects_uri",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fdf1e0"

    def __init__(
        self,
        *,
        input_uri: str,
        output_uri: str,
        model: str | dict[str, Any] | None = None,
        partition: str | None = None,
        sample_date: str | None = None,
        rejects_uri: str | None = None,
        key_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.model = model
        self.partition = partition
        self.sample_date = sample_date
        self.rejects_uri = rejects_uri
        self.key_columns = key_columns

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.model_ref import ModelRefError, parse_reference, resolve_model
        from airflow_mlops.core.scoring import (
            ScoringError,
            ScoringSpec,
            partition_name,
            score_partition,
        )

        config = self.model_config()
        spec = self.call_core(ScoringSpec.from_dict, config.scoring, f"task {self.task_id}")
        model_ref = self.model or spec.model
        partition = self.partition or partition_name(self.input_uri)
        found = _DATE_PART.search(self.input_uri)
        date = found.group(1) if found else None
        output_uri = self.output_uri.replace("{partition}", partition)
        if "{date}" in output_uri:
            if date is None:
                raise AirflowFailException(
                    f"output_uri {self.output_uri!r} uses {{date}} but input {self.input_uri} "
                    "has no date=... folder"
                )
            output_uri = output_uri.replace("{date}", date)
        try:
            registry = isinstance(model_ref, dict) and not str(model_ref["version"]).startswith(
                "local-"
            )
            if isinstance(model_ref, str):
                registry = parse_reference(model_ref, config.name)[0] == "registry"
            tracking = self.tracking() if registry else None
            model = resolve_model(model_ref, tracking, name=config.name)
        except ModelRefError as exc:
            raise AirflowFailException(str(exc)) from exc
        if tracking is not None:
            MLflowModelVersionLink.persist(
                context, tracking.model_version_url(model.name, model.version)
            )
        keys = self.key_columns or spec.key_columns or config.data.key_columns
        try:
            result = self.call_core(
                score_partition,
                self.input_uri,
                output_uri,
                model,
                key_columns=tuple(keys),
                rejects_uri=self.rejects_uri,
                batch_rows=spec.batch_rows,
                threads=spec.threads,
                monitoring_dir=spec.monitoring_root() if spec.sample_rows else None,
                sample_rows=spec.sample_rows,
                sample_date=self.sample_date or date,
                seed=config.data.seed,
                partition=partition,
                progress_seconds=spec.progress_seconds,
                format=spec.format,
            )
        except ScoringError as exc:
            # Bad input does not get better on retry: fail this partition now.
            self.log.error("%s", exc)
            raise AirflowFailException(str(exc)) from exc
        return result.to_dict()
