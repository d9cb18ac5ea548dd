"""Data checks before training: the declarative :class:`ValidationSpec` run by Great Expectations.

The spec is first translated into plain :class:`ExpectationSpec` records (no GX import, so the
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
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config.validation import ColumnSpec, ValidationSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ExpectationSpec",
    "FailedExpectation",
    "ValidationResult",
    "build_suite_spec",
    "validate_frame",
    "write_report",
]

_INT_DTYPES = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype",
    "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype",
)  # fmt: skip
_FLOAT_DTYPES = ("float16", "float32", "float64", "Float32Dtype", "Float64Dtype")
# GX compares a column's dtype with these names, except for object columns, which it checks
# value by value against the Python types ("int", "float", "str", "bool").
_TYPE_LISTS: dict[str, tuple[str, ...]] = {
    "numeric": (*_INT_DTYPES, *_FLOAT_DTYPES, "int", "float"),
    "integer": (*_INT_DTYPES, "int"),
    "string": ("str", "StringDtype"),
    "boolean": ("bool", "BooleanDtype"),
}
_TYPE_WORDS = {
    "numeric": "numeric (int or float dtype)",
    "integer": "integer (int dtype)",
    "string": "string (str values)",
    "boolean": "boolean (bool dtype)",
}
# Checks that compare values: not run on a column whose values failed their type check.
_VALUE_CHECKS = frozenset(
    {"expect_column_values_to_be_between", "expect_column_values_to_be_in_set"}
)
_EXAMPLES = 5  # unexpected values kept per failed check: enough to recognise a problem
_MESSAGES_IN_SUMMARY = 5


@dataclass(frozen=True)
class ExpectationSpec:
    """One Great Expectations check planned from the spec.

    :param type: GX expectation type, e.g. ``expect_column_values_to_not_be_null``.
    :param kwargs: the expectation's arguments (``column``, ``min_value``, ``mostly`` ...).
    :param expected: what is allowed, in words, e.g. ``min 0, max 120``.
    """

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    expected: str = ""

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")


@dataclass(frozen=True)
class FailedExpectation:
    """A check that did not pass, with the figure that failed it.

    :param expectation: GX expectation type.
    :param column: the column checked (``None`` for table checks).
    :param observed: a short JSON-able figure: ``unexpected_count``, ``unexpected_percent`` and
        up to five ``partial_unexpected_list`` values, or ``observed_value``, or ``error``.
    :param expected: what was allowed, e.g. ``max_null_fraction 0.0`` or ``min 0, max 120``.
    :param mostly: the share of rows that had to pass (``None`` where it does not apply).
    """

    expectation: str
    column: str | None
    observed: Any
    expected: str
    mostly: float | None = None

    @property
    def message(self) -> str:
        """One sentence a person can act on: what, the figure and the threshold."""
        obs = self.observed if isinstance(self.observed, dict) else {}
        where = f"column `{self.column}`" if self.column is not None else "table"
        if "error" in obs:
            return f"{where}: {self.expectation} could not run: {str(obs['error']).rstrip('.')}"
        if self.expectation == "expect_column_to_exist":
            return f"{where} is missing"
        if self.expectation == "expect_table_row_count_to_be_between":
            return f"table has {obs.get('observed_value')} rows (allowed {self.expected})"
        if (
            self.expectation == "expect_column_values_to_be_in_type_list"
            and "observed_value" in obs
        ):
            return f"{where} has dtype {obs['observed_value']} (expected {self.expected})"
        if "unexpected_count" not in obs:
            return f"{where}: observed {obs.get('observed_value')!r} (expected {self.expected})"
        count, pct = obs["unexpected_count"], obs.get("unexpected_percent") or 0.0
        if self.expectation == "expect_column_values_to_not_be_null":
            allowed = 1.0 - (self.mostly if self.mostly is not None else 1.0)
            return f"{where} has {_plural(count, 'null')} ({pct:.2f}%, allowed {allowed * 100:g}%)"
        what, limit = {
            "expect_column_values_to_be_between": ("out of range", "allowed"),
            "expect_column_values_to_be_in_set": ("not allowed", "allowed"),
            "expect_column_values_to_be_in_type_list": ("of the wrong type", "expected"),
        }.get(self.expectation, (f"failing {self.expectation}", "expected"))
        examples = ", ".join(repr(v) for v in obs.get("partial_unexpected_list", [])[:3])
        limit += f" {self.expected}"
        if self.mostly is not None and self.mostly < 1.0:
            limit += f" for {self.mostly * 100:g}% of non-null rows"
        return (
            f"{where} has {_plural(count, 'value')} {what} "
            f"({pct:.2f}% of non-null, e.g. {examples}; {limit})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the message spelled out."""
        return {
            "expectation": self.expectation,
            "column": self.column,
            "observed": self.observed,
            "expected": self.expected,
            "mostly": self.mostly,
            "message": self.message,
        }


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating one dataset.

    :param success: every check passed and none was skipped.
    :param evaluated: checks GX ran.
    :param failed: the checks that failed, in spec order.
    :param rows: rows in the dataset.
    :param data_uri: where the data came from.
    :param skipped: checks not run because their column is missing (each such column already
        fails ``expect_column_to_exist``) or fails its type check.
    :param skipped_mistyped: how many of ``skipped`` are on columns that failed their type check.
    """

    success: bool
    evaluated: int
    failed: tuple[FailedExpectation, ...]
    rows: int
    data_uri: str
    skipped: int = 0
    skipped_mistyped: int = 0

    @property
    def summary(self) -> str:
        """``validation passed: 12 of 12 expectations`` or ``validation failed: 3 of 12 ...``."""
        where = {
            (True, False): "missing",
            (False, True): "mistyped",
            (True, True): "missing or mistyped",
        }.get((self.skipped > self.skipped_mistyped, self.skipped_mistyped > 0))
        skipped = f" ({self.skipped} skipped on {where} columns)" if where else ""
        if self.success:
            return f"validation passed: {self.evaluated} of {self.evaluated} expectations"
        head = f"validation failed: {len(self.failed)} of {self.evaluated} expectations{skipped}"
        messages = [f.message for f in self.failed[:_MESSAGES_IN_SUMMARY]]
        if len(self.failed) > _MESSAGES_IN_SUMMARY:
            messages.append(f"and {len(self.failed) - _MESSAGES_IN_SUMMARY} more")
        return "; ".join([head, *messages])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for MLflow tags, XCom and the report file."""
        return {
            "success": self.success,
            "summary": self.summary,
            "evaluated": self.evaluated,
            "failed_count": len(self.failed),
            "skipped": self.skipped,
            "skipped_mistyped": self.skipped_mistyped,
            "rows": self.rows,
            "data_uri": self.data_uri,
            "failed": [f.to_dict() for f in self.failed],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ValidationResult:
        """Rebuild a result from :meth:`to_dict` output (e.g. a report read back)."""
        failed = tuple(
            FailedExpectation(
                expectation=f["expectation"],
                column=f.get("column"),
                observed=f.get("observed"),
                expected=f.get("expected", ""),
                mostly=f.get("mostly"),
            )
            for f in raw.get("failed", ())
        )
        return cls(
            success=bool(raw["success"]),
            evaluated=int(raw["evaluated"]),
            failed=failed,
            rows=int(raw["rows"]),
            data_uri=str(raw["data_uri"]),
            skipped=int(raw.get("skipped", 0)),
            skipped_mistyped=int(raw.get("skipped_mistyped", 0)),
        )


def build_suite_spec(
    spec: ValidationSpec,
    target: str | None = None,
    *,
    whole_number_floats: Collection[str] = (),
    features: Mapping[str, str] | None = None,
) -> list[ExpectationSpec]:
    """Translate the declarative spec into the list of GX checks, in a stable order.

    :param spec: the validation spec of the model config.
    :param target: the label column; when the spec does not list it, it must still exist and
        hold no nulls, since no model can be trained on a missing label.
    :param whole_number_floats: ``integer`` columns found as float holding only whole numbers
        (pandas' form of an integer column with nulls); their float dtype is accepted.
    :param features: the model's feature columns, ``{name: "numeric" | "categorical"}``; those
        without a rule in ``spec`` get one (see :func:`with_feature_rules`).
    """
    spec = with_feature_rules(spec, features)
    plan = [
        ExpectationSpec(
            "expect_table_row_count_to_be_between",
            {"min_value": spec.min_rows, "max_value": spec.max_rows},
            _bounds_text(spec.min_rows, spec.max_rows),
        )
    ]
    columns = dict(spec.columns)
    if target is not None and target not in columns:
        columns[target] = ColumnSpec(type="")  # no type check: the label may be any type
    for name, col in columns.items():
        plan.extend(_column_plan(name, col, name in whole_number_floats))
    return plan


def with_feature_rules(spec: ValidationSpec, features: Mapping[str, str] | None) -> ValidationSpec:
    """``spec`` plus a rule for each feature it does not name: a numeric feature must exist and
    hold numbers, a categorical one must exist (text or integer codes). Nulls stay allowed:
    the model handles missing values."""
    extra = {
        name: ColumnSpec(type="numeric" if kind == "numeric" else "", max_null_fraction=1.0)
        for name, kind in (features or {}).items()
        if name not in spec.columns
    }
    return replace(spec, columns={**spec.columns, **extra}) if extra else spec


def _column_plan(name: str, col: ColumnSpec, float_ok: bool) -> list[ExpectationSpec]:
    plan = [ExpectationSpec("expect_column_to_exist", {"column": name}, "column present")]
    if col.type:
        types = _TYPE_LISTS[col.type]
        words = _TYPE_WORDS[col.type]
        if col.type == "integer" and float_ok:
            types = (*types, *_FLOAT_DTYPES)
            words = "integer (int dtype, or float holding whole numbers)"
        plan.append(
            ExpectationSpec(
                "expect_column_values_to_be_in_type_list",
                {"column": name, "type_list": list(types)},
                words,
            )
        )
    # A limit of 1 allows anything; GX would also reject mostly=0.
    if col.max_null_fraction < 1.0:
        plan.append(
            ExpectationSpec(
                "expect_column_values_to_not_be_null",
                # Rounded: in floats 1 - 0.7 is 0.30000000000000004, above GX's 3 in 10.
                {"column": name, "mostly": round(1.0 - col.max_null_fraction, 12)},
                f"max_null_fraction {col.max_null_fraction}",
            )
        )
    if col.min is not None or col.max is not None:
        plan.append(
            ExpectationSpec(
                "expect_column_values_to_be_between",
                {"column": name, "min_value": col.min, "max_value": col.max, "mostly": col.mostly},
                _bounds_text(col.min, col.max),
            )
        )
    if col.allowed is not None:
        plan.append(
            ExpectationSpec(
                "expect_column_values_to_be_in_set",
                {"column": name, "value_set": list(col.allowed), "mostly": col.mostly},
                f"one of {list(col.allowed)!r}",
            )
        )
    return plan


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
        or (e.column in present and not (e.column in mistyped and e.type in _VALUE_CHECKS))
    ]
    skipped_mistyped = sum(1 for e in plan if e.column in mistyped and e.type in _VALUE_CHECKS)
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
        result_format={"result_format": "BASIC", "partial_unexpected_count": _EXAMPLES},
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


def _bounds_text(low: float | None, high: float | None) -> str:
    parts = [
        f"{label} {value:g}" for label, value in (("min", low), ("max", high)) if value is not None
    ]
    return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
            examples = (result.get("partial_unexpected_list") or [])[:_EXAMPLES]
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
