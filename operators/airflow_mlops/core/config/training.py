"""The ``training`` section: the estimator."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.config.parse import ConfigError

__all__ = ["TrainingSpec"]

# ``package.module.Class``: dotted identifiers, at least one dot.
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


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

    def check(self, where: str) -> None:
        """The estimator path's syntax and the params' shape, without importing anything (the
        DAG file parses the config); ``prepare`` imports the class itself."""
        if not isinstance(self.estimator, str) or not _IMPORT_PATH.fullmatch(self.estimator):
            raise ConfigError(
                f"{where}: training.estimator {self.estimator!r} is not an import path like "
                "'sklearn.linear_model.LogisticRegression'"
            )
        if not isinstance(self.params, dict):
            raise ConfigError(
                f"{where}: training.params: expected a mapping, got {type(self.params).__name__}"
            )
