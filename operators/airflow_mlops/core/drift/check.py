"""Drift policy and the drift check: does the current data still look like the reference?

The policy (``monitoring`` section of a model config) makes every choice explicit: how many rows
are needed, how many are used, which columns count and how much, the method and threshold of
each column, the share of (weighted) drifted columns that means "dataset drift", prediction
drift as a signal of its own, and how many consecutive drifting windows confirm drift.

Statistics are Evidently's (normed Wasserstein distance for numbers, Jensen-Shannon distance for
categories, PSI on request), computed on every row by :mod:`airflow_mlops.core.drift.stats`;
Evidently itself renders the HTML report on a bounded sample (:mod:`.report`). Evidently's
default p-value tests flag almost every column once samples are large; distances with a
threshold measure *how much* a distribution moved, which is what a retraining decision needs.

A check never answers "no drift" for data it could not compare: too few rows gives
``insufficient_data``, a counted column that is missing, all null or of another type gives
``unusable`` (unless the columns that could be compared already show drift).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.drift.columns import ColumnDrift, ColumnRule, column_drift, sample_rows
from airflow_mlops.core.drift.types import DriftPolicy, DriftResult

log = logging.getLogger(__name__)

__all__ = ["check_drift"]


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    policy: DriftPolicy,
    *,
    numeric: list[str] | tuple[str, ...],
    categorical: list[str] | tuple[str, ...],
    prediction_column: str | None = None,
    report_path: str | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` under ``policy``.

    :param reference: the reference sample (what the model version was trained on).
    :param current: the window of data the model scored.
    :param policy: the drift policy.
    :param numeric: the model's numeric features; ``categorical`` likewise.
    :param prediction_column: the model output to check for prediction drift (numeric if it is a
        probability, categorical otherwise); ``None``: no prediction drift.
    :param report_path: write Evidently's HTML report here (from ``report_rows`` per side),
        computed in a thread while the statistics run.
    """
    kinds = {c: "numeric" for c in numeric} | {c: "categorical" for c in categorical}
    counted = list(policy.columns) if policy.columns is not None else list(kinds)
    unknown = [c for c in counted if c not in kinds]
    if unknown:
        raise ConfigError(
            f"monitoring.columns names {unknown}, which are not features of the model "
            f"(features: {sorted(kinds)})"
        )
    extra_ok = {"prediction", "scored_at", "timestamp", "source", "version", "date", "model"}
    ignored = sorted(c for c in current.columns if c not in reference.columns and c not in extra_ok)
    rows_ref, rows_cur = len(reference), len(current)
    short = [
        f"{side} has {rows:,} rows"
        for side, rows in (("current window", rows_cur), ("reference", rows_ref))
        if rows < policy.min_rows
    ]
    if short:
        summary = (
            f"insufficient data: {' and '.join(short)}; the policy needs min_rows="
            f"{policy.min_rows} per side to decide (this is not a 'no drift' verdict)"
        )
        return DriftResult(
            "insufficient_data", False, 0.0, {}, None, [], ignored, rows_ref, rows_cur,
            {"reference": 0, "current": 0}, policy.drift_share, summary=summary,
        )  # fmt: skip
    ref = sample_rows(reference, policy.sample_rows, policy.seed)
    cur = sample_rows(current, policy.sample_rows, policy.seed + 1)
    pending = None
    if report_path:
        from airflow_mlops.core.drift.report import start_report

        pending = start_report(ref, cur, policy, kinds, counted, prediction_column, report_path)
    columns = {
        col: column_drift(
            col,
            kinds[col],
            ref,
            cur,
            policy.rule(col, kinds[col] == "numeric"),
            policy.weights.get(col, 1.0),
            policy.min_column_values,
        )
        for col in counted
    }
    prediction = None
    if policy.prediction:
        prediction = _prediction(ref, cur, prediction_column, policy)
    report = pending.result() if pending is not None else {}
    return _decide(columns, prediction, policy, ignored, rows_ref, rows_cur, ref, cur, report)


def _decide(
    columns: dict[str, ColumnDrift],
    prediction: ColumnDrift | None,
    policy: DriftPolicy,
    ignored: list[str],
    rows_ref: int,
    rows_cur: int,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    report: dict[str, Any],
) -> DriftResult:
    usable = [c for c in columns.values() if c.usable]
    unusable = [c.column for c in columns.values() if not c.usable]
    total = sum(c.weight for c in usable)
    share = sum(c.weight for c in usable if c.drifted) / total if total > 0 else 0.0
    dataset_drift = bool(usable) and share >= policy.drift_share
    pred_drift = bool(prediction and prediction.usable and prediction.drifted)
    if dataset_drift or (pred_drift and policy.prediction_triggers):
        status = "drift"
    elif unusable or not usable:
        status = "unusable"
    else:
        status = "no_drift"
    drifted = sorted((c for c in usable if c.drifted), key=lambda c: -(c.statistic or 0.0))
    parts = [
        f"{status.replace('_', ' ')}: {len(drifted)} of {len(usable)} usable columns drifted "
        f"(weighted share {share:.2f}, dataset drift at >= {policy.drift_share:.2f})"
    ]
    if drifted:
        parts.append(
            ", ".join(
                f"{c.column} {c.method}={c.statistic:.3f} (>= {c.threshold:g})" for c in drifted[:8]
            )
        )
    if prediction is not None:
        if prediction.usable:
            verb = "drifted" if prediction.drifted else "stable"
            parts.append(
                f"prediction {prediction.column} {verb}: {prediction.method}="
                f"{prediction.statistic:.3f} (threshold {prediction.threshold:g})"
            )
        else:
            parts.append(f"prediction drift not checked: {prediction.reason}")
    if unusable:
        reasons = "; ".join(f"{columns[c].column}: {columns[c].reason}" for c in unusable)
        parts.append(f"could not compare {len(unusable)} column(s): {reasons}")
    if ignored:
        parts.append(f"ignored current-only columns {ignored}")
    parts.append(f"{len(cur):,} current vs {len(ref):,} reference rows")
    return DriftResult(
        status=status,
        dataset_drift=dataset_drift,
        drift_share=round(share, 6),
        columns=columns,
        prediction_drift=prediction,
        unusable_columns=unusable,
        ignored_columns=ignored,
        rows_reference=rows_ref,
        rows_current=rows_cur,
        rows_used={"reference": len(ref), "current": len(cur)},
        drift_share_threshold=policy.drift_share,
        report_uri=report.get("path"),
        report_error=report.get("error"),
        summary="; ".join(parts),
    )


def _prediction(
    ref: pd.DataFrame, cur: pd.DataFrame, column: str | None, policy: DriftPolicy
) -> ColumnDrift:
    if column is None:
        return ColumnDrift("prediction", "numeric", "", 0.0, usable=False, reason="no model output")
    numeric = column.startswith("probability_")
    kind = "numeric" if numeric else "categorical"
    method = policy.numeric_method if numeric else policy.categorical_method
    rule = ColumnRule(method, policy.prediction_threshold)
    return column_drift(
        column, kind, ref, cur, rule, policy.weights.get(column, 1.0), policy.min_column_values
    )
