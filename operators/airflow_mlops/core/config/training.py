"""The ``training`` section: the estimator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainingSpec"]


@dataclass(frozen=True)
class TrainingSpec:
    """The estimator: an import path and its parameters.

    :param estimator: import path of a scikit-learn compatible classifier, e.g.
        ``sklearn.ensemble.HistGradientBoostingClassifier``.
    :param params: keyword arguments for the estimator.
    :param scale_numeric: standard-scale numeric features (after median imputation).
    """

    estimator: str = "sklearn.linear_model.LogisticRegression"
    params: dict[str, Any] = field(default_factory=dict)
    scale_numeric: bool = True
