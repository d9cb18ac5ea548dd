"""The ``evaluation`` section: the promotion criteria for a challenger."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_mlops.core.config.parse import ConfigError

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "EvaluationSpec"]

# The holdout metrics training computes (core/training/pipeline.compute_metrics), by direction:
# known here so that a misspelt name fails when the config loads, not after training.
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "f1", "precision", "recall"})
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


@dataclass(frozen=True)
class EvaluationSpec:
    """Promotion criteria for a challenger.

    :param primary_metric: the metric that decides (e.g. ``roc_auc``).
    :param min_improvement: how much better than the champion the primary metric must be
        (in the metric's own direction; 0 means "at least as good").
    :param max_regression: per secondary metric, the largest allowed loss against the champion.
    :param thresholds: absolute floors (or ceilings, for lower-is-better metrics) every model
        must meet, with or without a champion.
    """

    primary_metric: str = "roc_auc"
    min_improvement: float = 0.0
    max_regression: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

    def check(self, where: str) -> None:
        """Every metric named is one training computes; raises :class:`ConfigError` naming the
        key, the name and the known metrics."""
        known = HIGHER_IS_BETTER | LOWER_IS_BETTER
        named = [("primary_metric", self.primary_metric)]
        named += [("max_regression", m) for m in self.max_regression]
        named += [("thresholds", m) for m in self.thresholds]
        for key, metric in named:
            if metric not in known:
                raise ConfigError(
                    f"{where}: evaluation.{key}: unknown metric {metric!r}; "
                    f"known metrics: {sorted(known)}"
                )
