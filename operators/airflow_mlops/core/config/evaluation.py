"""The ``evaluation`` section: the promotion criteria for a challenger."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EvaluationSpec"]


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
