"""Permutation importance on a real fitted pipeline, its artifacts, and drift weighting by it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.drift.check import check_drift
from airflow_mlops.core.drift.types import DriftPolicy
from airflow_mlops.core.training.importance import (
    TAG_TOP,
    TAG_VALUES,
    permutation_importance,
    weights_from_tags,
    write_artifacts,
)

FEATURES = ["signal", "noise", "color"]


@pytest.fixture(scope="module")
def fitted():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "color": rng.choice(["red", "blue"], size=n),
        }
    )
    frame["y"] = (frame["signal"] + 0.3 * (frame["color"] == "red") > 0).astype(int)
    pre = ColumnTransformer(
        [("num", "passthrough", ["signal", "noise"]), ("cat", OneHotEncoder(), ["color"])]
    )
    pipeline = make_pipeline(pre, LogisticRegression()).fit(frame[FEATURES], frame["y"])
    return pipeline, frame


def test_the_column_the_target_depends_on_ranks_first_and_noise_near_zero(fitted, tmp_path):
    pipeline, frame = fitted
    found = permutation_importance(
        pipeline, frame, features=FEATURES, target="y", metric="roc_auc", max_rows=1000
    )
    values = found.values()
    assert next(iter(values)) == "signal" and values["signal"] > 0.2
    assert abs(values["noise"]) < 0.02
    assert found.rows == 1000 and found.n_repeats == 5
    tags = found.tags(top=2)
    assert list(json.loads(tags[TAG_TOP])) == ["signal", "color"]
    assert set(json.loads(tags[TAG_VALUES])) == set(FEATURES)
    written = write_artifacts(found, str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in written] == [
        "importance.csv",
        "importance.json",
        "importance.png",
    ]
    assert pd.read_csv(written[0])["feature"].tolist()[0] == "signal"
    with open(written[2], "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_figures(fitted):
    pipeline, frame = fitted
    runs = [
        permutation_importance(pipeline, frame, features=FEATURES, target="y", max_rows=500)
        for _ in range(2)
    ]
    assert runs[0].table == runs[1].table


def test_weights_from_tags_clip_noise_and_fill_missing_columns():
    tags = {TAG_VALUES: json.dumps({"a": 0.3, "b": 0.01, "c": -0.002})}
    assert weights_from_tags(tags, ["a", "b", "c", "new"]) == {
        "a": 0.3,
        "b": 0.01,
        "c": 0.0,
        "new": 0.0,
    }
    with pytest.raises(ValueError, match="not recorded"):
        weights_from_tags({}, ["a"])


def test_policy_accepts_weights_importance_and_refuses_other_words():
    assert DriftPolicy.from_dict({"weights": "importance"}).weights_from == "importance"
    with pytest.raises(ConfigError, match=r"monitoring\.weights"):
        DriftPolicy.from_dict({"weights": "gain"})


def _drifted(column: str, n: int = 4000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    cols = {c: rng.normal(size=n) for c in ("a", "b", "c", "d")}
    reference = pd.DataFrame(cols)
    current = pd.DataFrame({c: rng.normal(size=n) for c in cols})
    current[column] = current[column] + 2.0
    return reference, current


@pytest.mark.parametrize(("column", "expected"), [("d", False), ("a", True)])
def test_importance_weights_decide_whether_one_drifted_column_is_dataset_drift(column, expected):
    tags = {TAG_VALUES: json.dumps({"a": 0.5, "b": 0.1, "c": 0.05, "d": 0.01})}
    weights = weights_from_tags(tags, ["a", "b", "c", "d"])
    policy = DriftPolicy.from_dict({"weights": weights, "drift_share": 0.3, "min_rows": 100})
    reference, current = _drifted(column)
    result = check_drift(reference, current, policy, numeric=["a", "b", "c", "d"], categorical=[])
    assert result.drifted_columns == [column]
    assert result.dataset_drift is expected
    # Unweighted, one drifted column of four (share 0.25) never reaches 0.3.
    plain = check_drift(
        reference,
        current,
        DriftPolicy.from_dict({"drift_share": 0.3, "min_rows": 100}),
        numeric=["a", "b", "c", "d"],
        categorical=[],
    )
    assert plain.dataset_drift is False
