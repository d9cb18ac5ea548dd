"""Drift policy and the drift check: does the current data still look like the reference?

The policy (``monitoring`` section of a model config) makes every choice explicit: how many rows
are needed, how many are used, which columns count and how much, the method and threshold of
each column, the share of (weighted) drifted columns that means "dataset drift", prediction
drift as a signal of its own, and how many consecutive drifting windows confirm drift.

Statistics are Evidently's (normed Wasserstein distance for numbers, Jensen-Shannon distance for
categories, PSI on request), computed on every row by :mod:`airflow_mlops.core.drift_stats`;
Evidently itself renders the HTML report on a bounded sample (:mod:`.drift_report`). Evidently's
default p-value tests flag almost every column once samples are large; distances with a
threshold measure *how much* a distribution moved, which is what a retraining decision needs.

A check never answers "no drift" for data it could not compare: too few rows gives
``insufficient_data``, a counted column that is missing, all null or of another type gives
``unusable`` (unless the columns that could be compared already show drift).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.config.parse import ConfigError, check_keys
from airflow_mlops.core.drift import stats as drift_stats
from airflow_mlops.core.drift.columns import ColumnDrift, ColumnRule, column_drift

log = logging.getLogger(__name__)

STATUSES = ("drift", "no_drift", "insufficient_data", "unusable")
__all__ = ["ColumnDrift", "ColumnRule", "DriftPolicy", "DriftResult", "check_drift"]


@dataclass(frozen=True)
class DriftPolicy:
    """When data counts as drifted (the ``monitoring`` section of a model config).

    :param min_rows: fewest rows each side must have to decide; fewer gives
        ``insufficient_data``, never "no drift".
    :param min_column_values: fewest non-null values a counted column needs on each side; fewer
        makes that column unusable (named in the result).
    :param sample_rows: rows used per side for the decision; larger inputs are sampled with
        ``seed`` (the statistics' noise at 1M rows is ~0.001, far below the thresholds).
    :param report_rows: rows per side in the Evidently HTML report (it costs ~1 s per 5k rows).
    :param columns: the columns that count (default: every feature of the model).
    :param weights: weight per column in the drift share (default 1); ``importance`` takes the
        monitored version's permutation importances (``mlops.importance.values``).
    :param weights_from: set to ``importance`` by ``weights: importance``.
    :param numeric_method: ``wasserstein`` (normed by the reference std), ``psi`` or
        ``jensenshannon``.
    :param categorical_method: ``jensenshannon`` or ``psi``.
    :param numeric_threshold: drift when the numeric statistic is at least this.
    :param categorical_threshold: drift when the categorical statistic is at least this.
    :param per_column: ``{column: {method, threshold}}`` overrides.
    :param drift_share: dataset drift when the weighted share of drifted columns is at least this.
    :param prediction: check drift of the model's output (probability of the positive class for
        binary models, the predicted label otherwise).
    :param prediction_triggers: prediction drift alone makes the window "drift".
    :param prediction_threshold: threshold of the prediction statistic (same methods as above).
    :param consecutive_windows: drifting windows in a row needed to confirm drift and retrain.
    :param seed: seed of every sample taken.
    """

    min_rows: int = 1000
    min_column_values: int = 100
    sample_rows: int = 1_000_000
    report_rows: int = 5_000
    columns: tuple[str, ...] | None = None
    weights: dict[str, float] = field(default_factory=dict)
    weights_from: str | None = None
    numeric_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    numeric_threshold: float = 0.1
    categorical_threshold: float = 0.1
    per_column: dict[str, ColumnRule] = field(default_factory=dict)
    drift_share: float = 0.3
    prediction: bool = True
    prediction_triggers: bool = True
    prediction_threshold: float = 0.1
    consecutive_windows: int = 2
    seed: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "monitoring") -> DriftPolicy:
        """Build and check a policy; unknown keys and bad values raise :class:`ConfigError`."""
        raw = dict(raw or {})
        check_keys(raw, cls, source)
        if raw.get("columns") is not None:
            if isinstance(raw["columns"], str) or not isinstance(raw["columns"], list | tuple):
                raise ConfigError(f"{source}.columns: expected a list, got {raw['columns']!r}")
            raw["columns"] = tuple(str(c) for c in raw["columns"])
        rules = {}
        for col, rule in (raw.get("per_column") or {}).items():
            if not isinstance(rule, dict) or set(rule) - {"method", "threshold"}:
                raise ConfigError(f"{source}.per_column.{col}: expected {{method, threshold}}")
            rules[str(col)] = ColumnRule(
                method=str(rule.get("method", raw.get("numeric_method", cls.numeric_method))),
                threshold=float(rule.get("threshold", 0.1)),
            )
        raw["per_column"] = rules
        if raw.get("weights") == "importance":
            # Filled from the monitored version's importance tags (core.importance) at check time.
            raw["weights"], raw["weights_from"] = {}, "importance"
        elif isinstance(raw.get("weights"), str):
            raise ConfigError(
                f"{source}.weights: a mapping or 'importance', got {raw['weights']!r}"
            )
        raw["weights"] = {str(k): float(v) for k, v in (raw.get("weights") or {}).items()}
        policy = cls(**raw)
        policy._check(source)
        return policy

    def _check(self, source: str) -> None:
        def fail(key: str, why: str) -> None:
            raise ConfigError(f"{source}.{key}: {why}, got {getattr(self, key)!r}")

        if self.min_rows < 1:
            fail("min_rows", "must be at least 1")
        if self.sample_rows < self.min_rows:
            fail("sample_rows", f"must be at least min_rows ({self.min_rows})")
        if self.report_rows < 1:
            fail("report_rows", "must be at least 1")
        if not 0.0 < self.drift_share <= 1.0:
            fail("drift_share", "must be in (0, 1]")
        if self.consecutive_windows < 1:
            fail("consecutive_windows", "must be at least 1")
        if self.numeric_method not in drift_stats.NUMERIC_METHODS:
            fail("numeric_method", f"must be one of {drift_stats.NUMERIC_METHODS}")
        if self.categorical_method not in drift_stats.CATEGORICAL_METHODS:
            fail("categorical_method", f"must be one of {drift_stats.CATEGORICAL_METHODS}")
        for key in ("numeric_threshold", "categorical_threshold", "prediction_threshold"):
            if not getattr(self, key) > 0:
                fail(key, "must be positive")
        if any(w < 0 for w in self.weights.values()):
            fail("weights", "must not be negative")
        for col, rule in self.per_column.items():
            if rule.method not in drift_stats.NUMERIC_METHODS or rule.threshold <= 0:
                raise ConfigError(
                    f"{source}.per_column.{col}: method must be one of "
                    f"{drift_stats.NUMERIC_METHODS} and threshold positive, got {rule}"
                )

    def rule(self, column: str, numeric: bool) -> ColumnRule:
        """The method and threshold that apply to ``column``."""
        if column in self.per_column:
            return self.per_column[column]
        if numeric:
            return ColumnRule(self.numeric_method, self.numeric_threshold)
        return ColumnRule(self.categorical_method, self.categorical_threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (recorded with each check)."""
        out = asdict(self)
        out["columns"] = list(self.columns) if self.columns is not None else None
        return out


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one drift check (JSON-able through :meth:`to_dict`).

    :param status: ``drift``, ``no_drift``, ``insufficient_data`` or ``unusable``.
    :param dataset_drift: the weighted drift share reached the policy's ``drift_share``.
    :param drift_share: weighted share of drifted columns among the usable counted ones.
    :param columns: per-column verdicts, keyed by column.
    :param prediction_drift: the verdict on the model's output (``usable`` false if absent).
    :param unusable_columns: counted columns that could not be compared.
    :param ignored_columns: current-data columns the reference does not have (not compared).
    :param rows_reference: reference rows available; ``rows_current`` likewise.
    :param rows_used: rows per side the statistics were computed on.
    :param report_uri: where the HTML report was written (set by the caller).
    :param summary: one line a person can act on.
    """

    status: str
    dataset_drift: bool
    drift_share: float
    columns: dict[str, ColumnDrift]
    prediction_drift: ColumnDrift | None
    unusable_columns: list[str]
    ignored_columns: list[str]
    rows_reference: int
    rows_current: int
    rows_used: dict[str, int]
    drift_share_threshold: float
    report_uri: str | None = None
    report_error: str | None = None
    summary: str = ""

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns.values() if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data, plus ``drifted_columns``."""
        out = asdict(self)
        out["drifted_columns"] = self.drifted_columns
        return out


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


def sample_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    return frame.iloc[keep]


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
