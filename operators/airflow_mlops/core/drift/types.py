"""The drift policy and the result of a check: plain data shared by the check and the report.

:class:`DriftPolicy` is the ``monitoring`` section of a model config; :class:`DriftResult` what
one check decided. Both live apart from :mod:`.check` (which computes) so that the Evidently
report (:mod:`.report`) and the monitor read them without importing the check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, check_keys
from airflow_mlops.core.drift import stats as drift_stats
from airflow_mlops.core.drift.columns import ColumnDrift, ColumnRule

__all__ = ["STATUSES", "DriftPolicy", "DriftResult"]

STATUSES = ("drift", "no_drift", "insufficient_data", "unusable")


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
