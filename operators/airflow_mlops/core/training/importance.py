"""Permutation importance of a model's raw input columns on its holdout, and drift weights from it.

Computed once per registered version (``steps.register``): how much the primary metric drops
when one input column is shuffled, on a seeded, bounded sample of the holdout, through the
native pipeline (so a categorical column counts once, not once per one-hot output). Logged as
``importance/importance.csv``, ``importance.json`` and ``importance.png`` in the version's run,
and as version tags: ``mlops.importance.top`` (JSON, the top features) and
``mlops.importance.values`` (JSON, every feature) which the drift monitor reads when the
``monitoring`` section says ``weights: importance``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TAG_TOP = "mlops.importance.top"
TAG_VALUES = "mlops.importance.values"
TAG_METRIC = "mlops.importance.metric"
MAX_ROWS = 2_000
N_REPEATS = 5
TOP = 5
# MLflow keeps model-version tag values up to 5,000 characters.
_TAG_LIMIT = 5_000

# Our metric names (core.training.compute_metrics) → sklearn scorer names.
_SCORERS = {
    "roc_auc": ("roc_auc", "roc_auc_ovr"),
    "accuracy": ("accuracy", "accuracy"),
    "f1": ("f1", "f1_macro"),
    "precision": ("precision", "precision_macro"),
    "recall": ("recall", "recall_macro"),
    "log_loss": ("neg_log_loss", "neg_log_loss"),
    "brier": ("neg_brier_score", "neg_brier_score"),
}


@dataclass(frozen=True)
class Importance:
    """Permutation importance of each raw feature (mean drop of the metric, its spread).

    :param metric: the metric whose drop is measured (the config's primary metric).
    :param scorer: the scikit-learn scorer used for it.
    :param rows: holdout rows used.
    :param n_repeats: shuffles per feature.
    :param table: ``[{"feature", "importance", "std"}]``, most important first.
    :param seconds: time taken.
    """

    metric: str
    scorer: str
    rows: int
    n_repeats: int
    table: tuple[dict[str, Any], ...]
    seconds: float

    def values(self) -> dict[str, float]:
        """``{feature: mean importance}``, most important first."""
        return {row["feature"]: row["importance"] for row in self.table}

    def tags(self, top: int = TOP) -> dict[str, str]:
        """The version tags: the top features, every feature (bounded to MLflow's tag size)."""
        values = {k: round(v, 5) for k, v in self.values().items()}
        every = json.dumps(values)
        while len(every) > _TAG_LIMIT and values:
            # The least important features go first; drift weighting treats them as the least.
            values.popitem()
            every = json.dumps(values)
        return {
            TAG_TOP: json.dumps(dict(list(values.items())[:top])),
            TAG_VALUES: every,
            TAG_METRIC: f"{self.metric} drop, {self.rows} holdout rows, {self.n_repeats} repeats",
        }


def permutation_importance(
    pipeline: Any,
    frame: Any,
    *,
    features: list[str],
    target: str,
    metric: str = "roc_auc",
    max_rows: int = MAX_ROWS,
    n_repeats: int = N_REPEATS,
    seed: int = 0,
) -> Importance:
    """Permutation importance of ``features`` for ``pipeline`` on (a sample of) ``frame``.

    :param metric: one of our metric names (``roc_auc``, ``accuracy``, ``f1``, ``log_loss``...);
        its drop is the importance.
    :param max_rows: the holdout is sampled down to this many rows (seeded): the cost is
        ``len(features) * n_repeats`` predictions on this many rows.
    """
    import numpy as np
    import pandas as pd

    if metric not in _SCORERS:
        raise ValueError(f"permutation importance: unknown metric {metric!r}; known {_SCORERS}")
    started = time.perf_counter()
    if len(frame) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))
        frame = frame.iloc[keep]
    x = frame[list(features)].reset_index(drop=True)
    y = frame[target].to_numpy()
    binary = len(getattr(pipeline, "classes_", [0, 1])) == 2
    scorer_name = _SCORERS[metric][0 if binary else 1]
    metric_of = _metric_of(scorer_name, y, list(pipeline.classes_))
    # sklearn's permutation_importance calls predict once per feature and repeat; a pipeline's
    # per-call overhead made that ~1 min on the demo. The same shuffles stacked into one frame
    # are scored by a single predict_proba call.
    n = len(x)
    blocks = _shuffled(x, features, n_repeats, np.random.default_rng(seed))
    proba = pipeline.predict_proba(pd.concat(blocks, ignore_index=True))
    base = metric_of(proba[:n])
    drops = np.array(
        [
            [
                base - metric_of(proba[n * (1 + f * n_repeats + r) : n * (2 + f * n_repeats + r)])
                for r in range(n_repeats)
            ]
            for f in range(len(features))
        ]
    )
    means, stds = drops.mean(axis=1), drops.std(axis=1)
    order = np.argsort(-means, kind="stable")
    table = tuple(
        {"feature": features[i], "importance": float(means[i]), "std": float(stds[i])}
        for i in order
    )
    scorer = scorer_name
    return Importance(metric, scorer, len(x), n_repeats, table, time.perf_counter() - started)


def _shuffled(x: Any, features: list[str], n_repeats: int, rng: Any) -> list[Any]:
    """``x`` itself, then one copy per feature and repeat with that column permuted."""
    n = len(x)
    blocks = [x]
    for col in features:
        for _ in range(n_repeats):
            shuffled = x.copy()
            shuffled[col] = x[col].to_numpy()[rng.permutation(n)]
            blocks.append(shuffled)
    return blocks


def _metric_of(scorer_name: str, y: Any, classes: list[Any]) -> Callable[[Any], float]:
    """The metric (greater is better) of class probabilities against ``y``."""
    import numpy as np
    from sklearn.metrics import get_scorer

    score = get_scorer(scorer_name)._score_func
    sign = get_scorer(scorer_name)._sign

    def metric_of(p: Any) -> float:
        if scorer_name in ("roc_auc", "neg_brier_score"):
            return sign * float(score(y == classes[1], p[:, 1]))
        if scorer_name in ("roc_auc_ovr", "neg_log_loss"):
            kwargs = {"multi_class": "ovr"} if scorer_name == "roc_auc_ovr" else {}
            return sign * float(score(y, p, labels=classes, **kwargs))
        predicted = np.asarray(classes, dtype=object)[p.argmax(axis=1)].astype(y.dtype)
        if scorer_name.endswith("_macro"):
            return float(score(y, predicted, average="macro", zero_division=0))
        if scorer_name == "accuracy":
            return float(score(y, predicted))
        return float(score(y == classes[1], predicted == classes[1], zero_division=0))

    return metric_of


def write_artifacts(importance: Importance, out_dir: str) -> list[str]:
    """``importance.csv``, ``importance.json`` and a bar chart ``importance.png`` in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    os.makedirs(out_dir, exist_ok=True)
    table = pd.DataFrame(list(importance.table))
    csv = os.path.join(out_dir, "importance.csv")
    table.to_csv(csv, index=False)
    meta = {k: v for k, v in importance.__dict__.items() if k != "table"}
    path_json = os.path.join(out_dir, "importance.json")
    with open(path_json, "w") as fh:
        json.dump({**meta, "table": list(importance.table)}, fh, indent=2)
    shown = table.head(30).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["importance"], xerr=shown["std"], color="#4c72b0")
    ax.set_xlabel(f"drop of {importance.metric} when shuffled ({importance.rows} holdout rows)")
    ax.set_title("Permutation importance")
    fig.tight_layout()
    png = os.path.join(out_dir, "importance.png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return [csv, path_json, png]


def weights_from_tags(tags: dict[str, str], columns: list[str]) -> dict[str, float]:
    """Drift weights per column from a version's ``mlops.importance.values`` tag.

    Negative importances (shuffling helped: noise) count as 0; a column missing from the tag
    (cut for size, or added later) gets the smallest recorded weight. Raises ``ValueError``
    when the version has no importance recorded or every importance is 0, so the caller can
    say so rather than silently count every column the same.
    """
    raw = tags.get(TAG_VALUES)
    if not raw:
        raise ValueError(f"no {TAG_VALUES} tag on the version: importance was not recorded")
    values = {k: max(0.0, float(v)) for k, v in json.loads(raw).items()}
    if not any(values.values()):
        raise ValueError(f"{TAG_VALUES}: every importance is 0 or below; nothing to weight by")
    floor = min(values.values())
    return {col: values.get(col, floor) for col in columns}
