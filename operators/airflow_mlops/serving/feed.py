"""Check parsed rows against a version's signature and build its ONNX Runtime feed.

The feed follows :mod:`airflow_mlops.core.model.feed` (its dtype, missing marker and float32
range rules), from the JSON values as Python lists.

Validation rules (a violation is a 4xx whose message names the column and the first bad row):

- every feature column must be present; extra columns are ignored (as ``mlflow models serve``
  does, so key columns may ride along) or refused with ``extra_columns: reject``;
- numeric columns take JSON numbers; ``null`` (or NaN) means missing and the model imputes it,
  except in ``long`` columns: an integer column had no missing values in training (pandas would
  have made it float), so a missing value there is refused, as MLflow's schema check does;
  strings, booleans, nested values, infinities and numbers beyond the float32 range (which the
  model's float32 input would turn into infinities) are refused; ``long`` columns also refuse
  non-integral numbers;
- categorical columns take strings; ``null`` means missing (fed as ``""``); numbers are refused,
  not coerced: ``1`` and ``"1"`` and ``1.0`` would silently become different categories;
- at most ``max_rows`` rows; the body size is limited before parsing (see ``app.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_mlops.core.model.feed import fill_missing_categories, not_float32, to_float32
from airflow_mlops.core.model.folder import ModelMeta
from airflow_mlops.serving.protocol import (
    ABSENT,
    NUMBER_TYPES,
    STRING_TYPES,
    ColumnBatch,
    ProtocolError,
)

__all__ = ["Feed", "build_feed"]


@dataclass
class Feed:
    """The ONNX feed plus the checked values kept for capture."""

    inputs: dict[str, np.ndarray]
    numeric: np.ndarray  # float64 [n_numeric, rows]; NaN = missing
    categorical: np.ndarray  # object [n_categorical, rows]; "" = missing
    rows: int


def _first_bad(values: Sequence[Any], allowed: frozenset[type]) -> tuple[int, Any]:
    for i, v in enumerate(values):
        if type(v) not in allowed:
            return i, v
    return -1, None  # pragma: no cover - only called when a bad value exists


class _Plan:
    """What :func:`build_feed` needs about a version, computed once per metadata object."""

    def __init__(self, meta: ModelMeta) -> None:
        self.meta = meta
        self.numeric = meta.numeric_features
        self.categorical = meta.categorical_features
        self.wanted = (*meta.numeric_features, *meta.categorical_features)
        self.long_idx = np.array(
            [
                i
                for i, c in enumerate(meta.numeric_features)
                if meta.input_types.get(c) in ("long", "integer")
            ],
            dtype=np.intp,
        )


_plans: dict[int, _Plan] = {}


def _plan(meta: ModelMeta) -> _Plan:
    plan = _plans.get(id(meta))
    if plan is None or plan.meta is not meta:
        if len(_plans) > 64:  # versions come and go over a long run; keep the cache small
            _plans.clear()
        plan = _plans[id(meta)] = _Plan(meta)
    return plan


def _wrong_type(name: str, values: Sequence[Any], allowed: frozenset[type], what: str) -> None:
    i, bad = _first_bad(values, allowed)
    if i >= 0:
        got = "absent" if bad is ABSENT else f"{type(bad).__name__} {bad!r:.40}"
        raise ProtocolError(
            f"column {name!r} row {i}: expected {what} (or null), got {got}",
            reason="wrong_type",
        )


def build_feed(batch: ColumnBatch, meta: ModelMeta, extra_columns: str = "ignore") -> Feed:
    """Check ``batch`` against ``meta`` and build the ONNX feed (rules in the module docstring).

    The common case costs a handful of vectorised checks; the per-value diagnosis (which
    column, which row) runs only once something is known to be wrong.
    """
    plan = _plan(meta)
    cols = batch.columns
    if len(cols) != len(plan.wanted) or not all(c in cols for c in plan.wanted):
        missing = [c for c in plan.wanted if c not in cols]
        extra = [c for c in cols if c not in meta.input_types]
        if missing:
            hint = f"; unexpected column(s) {extra}" if extra else ""
            raise ProtocolError(f"missing column(s) {missing}{hint}", reason="missing_column")
        if extra and extra_columns == "reject":
            raise ProtocolError(
                f"unexpected column(s) {extra}; expected {list(plan.wanted)}",
                reason="unexpected_column",
            )
    rows = batch.rows
    numeric_values = [cols[c] for c in plan.numeric]
    if not set(map(type, itertools.chain.from_iterable(numeric_values))) <= NUMBER_TYPES:
        for name, values in zip(plan.numeric, numeric_values, strict=True):
            _wrong_type(name, values, NUMBER_TYPES, "a number")
    try:
        matrix = np.array(numeric_values, dtype=np.float64).reshape(len(numeric_values), rows)
    except (OverflowError, ValueError) as exc:
        raise ProtocolError(f"numeric columns: {exc}", reason="wrong_type") from exc
    f32 = to_float32(matrix)
    outside = not_float32(f32)
    if outside.any():
        c, r = np.argwhere(outside)[0]
        problem = (
            "infinite values are not allowed"
            if np.isinf(matrix[c, r])
            else f"{float(matrix[c, r])!r} is beyond the float32 range the model takes"
        )
        raise ProtocolError(f"column {plan.numeric[c]!r} row {r}: {problem}", reason="not_finite")
    if plan.long_idx.size:
        longs = matrix[plan.long_idx]
        # NaN != trunc(NaN): one comparison catches both a missing and a fractional value.
        if (longs != np.trunc(longs)).any():
            _diagnose_long(longs, [plan.numeric[i] for i in plan.long_idx])
    # Iterating a [k, rows, 1] array yields contiguous [rows, 1] views: no per-column reshape.
    inputs: dict[str, np.ndarray] = dict(
        zip(plan.numeric, f32.reshape(len(plan.numeric), rows, 1), strict=True)
    )
    categorical = [cols[c] for c in plan.categorical]
    strings = np.empty((len(categorical), rows), dtype=object)
    if categorical:
        kinds = set(map(type, itertools.chain.from_iterable(categorical)))
        if not kinds <= STRING_TYPES:
            for name, values in zip(plan.categorical, categorical, strict=True):
                _wrong_type(name, values, STRING_TYPES, "a string")
        strings[:] = categorical
        if type(None) in kinds:
            fill_missing_categories(strings)
        inputs.update(
            zip(plan.categorical, strings.reshape(len(categorical), rows, 1), strict=True)
        )
    return Feed(inputs, matrix, strings, rows)


def _diagnose_long(longs: np.ndarray, names: list[str]) -> None:
    for row_values, name in zip(longs, names, strict=True):
        nan = np.isnan(row_values)
        if nan.any():
            r = int(np.argmax(nan))
            raise ProtocolError(
                f"column {name!r} row {r}: null/NaN is not allowed in an integer (long) column",
                reason="missing_value",
            )
        frac = row_values != np.trunc(row_values)
        if frac.any():
            r = int(np.argmax(frac))
            raise ProtocolError(
                f"column {name!r} row {r}: expected an integer, got {row_values[r]!r}",
                reason="wrong_type",
            )
