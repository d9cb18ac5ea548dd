"""The validation plan and its outcome as plain values (no Great Expectations import): the
:class:`ExpectationSpec` checks planned from a :class:`ValidationSpec`, and the
:class:`FailedExpectation` / :class:`ValidationResult` records whose messages a person can act on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_mlops.core.config.validation import ColumnSpec, ValidationSpec

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
VALUE_CHECKS = frozenset(
    {"expect_column_values_to_be_between", "expect_column_values_to_be_in_set"}
)
EXAMPLES = 5  # unexpected values kept per failed check: enough to recognise a problem
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


def _bounds_text(low: float | None, high: float | None) -> str:
    parts = [
        f"{label} {value:g}" for label, value in (("min", low), ("max", high)) if value is not None
    ]
    return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
