"""Per-column drift verdicts on two DataFrames: usable or not (and why), method, statistic."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from airflow_mlops.core.drift import stats as drift_stats


@dataclass(frozen=True)
class ColumnRule:
    """Method and threshold for one column (drift when ``statistic >= threshold``)."""

    method: str
    threshold: float


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column; ``usable`` is false when it could not be compared."""

    column: str
    kind: str
    method: str
    threshold: float
    statistic: float | None = None
    drifted: bool = False
    usable: bool = True
    reason: str = ""
    exact: bool = True
    weight: float = 1.0
    null_share: dict[str, float] = field(default_factory=dict)


def column_drift(
    column: str,
    kind: str,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    rule: ColumnRule,
    weight: float = 1.0,
    min_values: int = 1,
) -> ColumnDrift:
    """The verdict on one column of two frames (unusable, with the reason, if it cannot be
    compared: missing, of another type, or with fewer than ``min_values`` non-null values)."""
    base = ColumnDrift(column, kind, rule.method, rule.threshold, weight=weight)
    reason = unusable_reason(column, kind, ref, cur, min_values)
    if reason:
        return replace(base, usable=False, reason=reason)
    r, c = ref[column], cur[column]
    nulls = {
        "reference": round(float(r.isna().mean()), 6),
        "current": round(float(c.isna().mean()), 6),
    }
    if kind == "numeric":
        stat = drift_stats.numeric_statistic(rule.method, _numbers(r), _numbers(c), rule.threshold)
    else:
        rc = r.dropna().astype(str).value_counts().to_dict()
        cc = c.dropna().astype(str).value_counts().to_dict()
        stat = drift_stats.categorical_statistic(rule.method, rc, cc, rule.threshold)
    return replace(
        base,
        statistic=round(stat.value, 6),
        drifted=stat.drifted,
        exact=stat.exact,
        null_share=nulls,
    )


def _numbers(series: pd.Series) -> np.ndarray:
    """Finite values of a numeric column; NumPy integer columns stay integer (exact counting)."""
    if series.dtype.kind in "iu":
        return drift_stats.finite_values(series.to_numpy())
    return drift_stats.finite_values(series.to_numpy(dtype=np.float64, na_value=np.nan))


def unusable_reason(
    column: str, kind: str, ref: pd.DataFrame, cur: pd.DataFrame, min_values: int
) -> str:
    """Why ``column`` cannot be compared, or ``""``."""
    if column not in cur.columns:
        return f"column {column!r} is missing from the current data"
    if column not in ref.columns:
        return f"column {column!r} is missing from the reference sample"
    r, c = ref[column], cur[column]
    is_num = pd.api.types.is_numeric_dtype
    if kind == "numeric":
        for side, s in (("reference", r), ("current", c)):
            if not is_num(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                return f"column {column!r} is {s.dtype} in the {side} data, expected numeric"
    elif is_num(r.dtype) != is_num(c.dtype):
        return (
            f"column {column!r} changed type: {r.dtype} in the reference, {c.dtype} in the "
            "current data"
        )
    for side, s in (("reference", r), ("current", c)):
        valid = int(s.notna().sum())
        if kind == "numeric" and valid:
            valid = int(np.isfinite(s.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
        if valid == 0:
            return f"column {column!r} is entirely null in the {side} data ({len(s):,} rows)"
        if valid < min_values:
            return (
                f"column {column!r} has {valid:,} non-null values in the {side} data, fewer "
                f"than min_column_values={min_values}"
            )
    return ""


def sample_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``frame`` drawn with ``seed`` (in their order), or all when fewer."""
    if len(frame) <= rows:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    return frame.iloc[keep]
