"""Data checks before training: the declarative :class:`ValidationSpec` run by Great Expectations.

The spec is first translated into plain :class:`ExpectationSpec` records (in
:mod:`airflow_mlops.core.data.expectations`, no GX import, so the
plan can be shown or tested cheaply), then run on a pandas frame with an ephemeral GX context.
The outcome is a small, JSON-able :class:`ValidationResult` whose ``summary`` names every failed
check with its figure and threshold.

Choices worth knowing:

- ``integer`` columns accept int dtypes (NumPy and pandas nullable). pandas turns an integer
  column holding a null into ``float64``, so a float column is accepted as ``integer`` when all
  its non-null values are whole numbers; one fractional value makes the type check fail.
- ``string`` columns accept ``object`` columns whose non-null values are all ``str`` and
  pandas' ``string`` dtype. GX 1.24 cannot match ``string[pyarrow]`` or ``category`` columns by
  dtype, so those are checked as ``object`` copies of themselves.
- A column named in the spec but absent from the data fails ``expect_column_to_exist``; the other
  checks on it are not run (GX would only report a metric error for each) and are counted in
  :attr:`ValidationResult.skipped`, not in ``evaluated``.
- ``min``/``max``/``allowed`` ignore nulls (GX's rule): nulls are governed by
  ``max_null_fraction`` alone, and ``mostly`` is a share of the non-null rows.
- Every configured feature is checked even without a rule of its own: a numeric feature must
  exist and hold numbers, a categorical one must exist (it may be text or integer codes).
- Numbers stored as text (a CSV column that pandas read as strings because of a few stray
  values) are read as numbers first, so the type check names only the values that are not
  numbers. The range and set checks of a column that fails its type check are skipped
  (counted in :attr:`ValidationResult.skipped`): compared with text they could only error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config.validation import ValidationSpec
from airflow_mlops.core.data.expectations import (
    EXAMPLES,
    VALUE_CHECKS,
    ExpectationSpec,
    FailedExpectation,
    ValidationResult,
    build_suite_spec,
    with_feature_rules,
)

if TYPE_CHECKING:
    import pandas as pd


def validate_frame(
    frame: pd.DataFrame,
    spec: ValidationSpec,
    data_uri: str = "<frame>",
    *,
    target: str | None = None,
    features: Mapping[str, str] | None = None,
) -> ValidationResult:
    """Run the spec's checks on ``frame`` with Great Expectations.

    A fresh ephemeral GX context is used per call, so nothing is read from or written to a GX
    project folder. GX's progress bars are off and its INFO logging is muted. Not for concurrent
    use from threads: ``gx.get_context`` records the current context in a module global.

    :param frame: the data, as loaded.
    :param spec: the validation spec of the model config.
    :param data_uri: where the data came from, carried into the result.
    :param target: the label column (see :func:`build_suite_spec`).
    :param features: the model's feature columns (see :func:`with_feature_rules`).
    """
    spec = with_feature_rules(spec, features)
    frame, mistyped = _numbers_from_text(_gx_friendly(frame, spec), spec)
    present = set(frame.columns)
    plan = build_suite_spec(spec, target, whole_number_floats=_whole_number_floats(frame, spec))
    runnable = [
        (i, e)
        for i, e in enumerate(plan)
        if e.column is None
        or e.type == "expect_column_to_exist"
        or (e.column in present and not (e.column in mistyped and e.type in VALUE_CHECKS))
    ]
    skipped_mistyped = sum(1 for e in plan if e.column in mistyped and e.type in VALUE_CHECKS)
    outcome = _run_suite(frame, runnable)
    failed: dict[int, FailedExpectation] = {}
    for result in outcome.results:
        config = result.expectation_config
        if result.success or config is None:
            continue
        index = config.meta["plan_index"]
        planned = plan[index]
        failed[index] = FailedExpectation(
            expectation=planned.type,
            column=planned.column,
            observed=_observed(planned.type, result.result, result.exception_info),
            expected=planned.expected,
            mostly=planned.kwargs.get("mostly"),
        )
    skipped = len(plan) - len(runnable)
    return ValidationResult(
        success=bool(outcome.success) and not failed and not skipped,
        evaluated=len(outcome.results),
        failed=tuple(failed[i] for i in sorted(failed)),
        rows=len(frame),
        data_uri=data_uri,
        skipped=skipped,
        skipped_mistyped=skipped_mistyped,
    )


def _run_suite(frame: pd.DataFrame, runnable: list[tuple[int, ExpectationSpec]]) -> Any:
    """Run the planned expectations on ``frame`` in a fresh ephemeral GX context.

    :param runnable: ``(plan index, expectation)`` pairs; each result's ``meta["plan_index"]``
        names its plan entry.
    :returns: GX's validation result (``success``, ``results``).
    """
    _quiet_gx_logging()  # before the import: GX logs some hundred INFO lines while importing
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # In-memory stores, no data docs site, and no tqdm bars in the task log.
    project_config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(project_config=project_config, mode="ephemeral")
    batch_definition = (
        context.data_sources.add_pandas("airflow_mlops")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name="airflow_mlops_validation")
    for index, planned in runnable:
        expectation_cls = getattr(gxe, _class_name(planned.type))
        # The index in meta maps each result back to its plan entry: GX reorders results.
        suite.add_expectation(expectation_cls(**planned.kwargs, meta={"plan_index": index}))
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="airflow_mlops_validation", data=batch_definition, suite=suite)
    )
    # BASIC keeps counts and a few examples without the costlier value counts of SUMMARY.
    return definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES},
    )


def write_report(result: ValidationResult, path: str) -> str:
    """Write ``result`` as a JSON report and return where it went.

    The report is written under a temporary name and renamed, so a reader never sees half a file.

    :param result: the validation result.
    :param path: local path or fsspec URI of the report file; missing folders are created.
    """
    import fsspec

    fs, fs_path = fsspec.core.url_to_fs(path)
    parent, base = posixpath.split(fs_path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f".{base}.{uuid.uuid4().hex}.tmp")
    text = json.dumps(result.to_dict(), indent=2, sort_keys=True)
    try:
        with fs.open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        fs.mv(tmp, fs_path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return path


def _class_name(expectation_type: str) -> str:
    return "".join(word.capitalize() for word in expectation_type.split("_"))


def _quiet_gx_logging() -> None:
    # GX logs at INFO per metric; leave it alone only if someone configured it on purpose.
    logger = logging.getLogger("great_expectations")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _gx_friendly(frame: pd.DataFrame, spec: ValidationSpec) -> pd.DataFrame:
    """Copy ``string[pyarrow]`` and ``category`` string columns to ``object``.

    GX 1.24 compares a column's dtype with the names in the type list and has no name that
    matches these two; as ``object`` they are checked value by value instead.
    """
    import pandas as pd

    convert = [
        name
        for name, col in spec.columns.items()
        if col.type == "string"
        and name in frame.columns
        and (
            isinstance(frame[name].dtype, pd.CategoricalDtype)
            or (
                isinstance(frame[name].dtype, pd.StringDtype)
                and frame[name].dtype.storage != "python"
            )
        )
    ]
    if not convert:
        return frame
    frame = frame.copy(deep=False)  # shares the other columns' data
    for name in convert:
        frame[name] = frame[name].astype(object)
    return frame


def _number_or_text(value: Any) -> tuple[Any, bool]:
    """``(value as a number, True)`` for numbers and text that reads as one; ``(value, False)``
    for anything else (nulls count as numbers: the null check governs them)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return value, True
    if isinstance(value, bool):
        return value, False
    if isinstance(value, int | float):
        return value, True
    if isinstance(value, str):
        for parse in (int, float):
            with contextlib.suppress(ValueError):
                return parse(value), True
        if not value.strip():
            return None, True  # an empty CSV cell
    return value, False


def _numbers_from_text(frame: pd.DataFrame, spec: ValidationSpec) -> tuple[pd.DataFrame, set[str]]:
    """Read the text values of ``object`` columns declared numeric as numbers.

    Returns the frame (a shallow copy when anything changed) and the columns that still hold
    values that are not numbers: those keep them, as text, for the type check to name.
    """
    import pandas as pd

    numeric = [
        name
        for name, col in spec.columns.items()
        if col.type in ("numeric", "integer")
        and name in frame.columns
        and frame[name].dtype == object
    ]
    if not numeric:
        return frame, set()
    frame = frame.copy(deep=False)
    mistyped = set()
    for name in numeric:
        parsed = [_number_or_text(v) for v in frame[name].tolist()]
        values = [v for v, _ in parsed]
        if all(ok for _, ok in parsed):
            frame[name] = pd.to_numeric(pd.Series(values, index=frame.index, dtype=object))
        else:
            mistyped.add(name)
            frame[name] = pd.Series(values, index=frame.index, dtype=object)
    return frame, mistyped


def _whole_number_floats(frame: pd.DataFrame, spec: ValidationSpec) -> list[str]:
    import numpy as np
    import pandas as pd

    found = []
    for name, col in spec.columns.items():
        if col.type != "integer" or name not in frame.columns:
            continue
        if not pd.api.types.is_float_dtype(frame[name].dtype):
            continue
        values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        values = values[~np.isnan(values)]
        if np.array_equal(values, np.round(values)):
            found.append(name)
    return found


def _observed(
    expectation: str, result: Mapping[str, Any], exception_info: Mapping[str, Any] | None
) -> Any:
    error = _error_message(exception_info)
    if error:
        return {"error": error}
    if "unexpected_count" in result:
        observed = {
            "unexpected_count": _jsonable(result["unexpected_count"]),
            "unexpected_percent": _jsonable(round(float(result.get("unexpected_percent") or 0), 4)),
        }
        # The examples of a null check are all nulls: they say nothing.
        if expectation != "expect_column_values_to_not_be_null":
            examples = (result.get("partial_unexpected_list") or [])[:EXAMPLES]
            observed["partial_unexpected_list"] = [_jsonable(v) for v in examples]
        return observed
    if "observed_value" in result:
        return {"observed_value": _jsonable(result["observed_value"])}
    return None


def _error_message(info: Mapping[str, Any] | None) -> str | None:
    # GX reports an error either directly or nested under the metric that raised it.
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    nested: Iterable[Any] = info.values()
    for value in nested:
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()  # NumPy scalars
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else str(value)  # JSON has no infinity
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
