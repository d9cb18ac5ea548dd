"""The validate step on a file as a user brings it: every configured feature checked, with or
without a validation rule of its own, failing once with the column and the bad values."""

from __future__ import annotations

import pytest

from airflow_mlops.core.config.model import config_from_dict
from airflow_mlops.core.pipeline import steps


def _config(tmp_path, validation: dict):
    return config_from_dict(
        {
            "name": "toy",
            "data": {
                "uri": str(tmp_path / "data.csv"),
                "target": "y",
                "features": {"numeric": ["a", "b"], "categorical": ["c"]},
            },
            "validation": validation,
            "training": {"estimator": "sklearn.linear_model.LogisticRegression"},
        },
        source="test",
    )


def _csv(tmp_path, b_values: list[str]) -> str:
    rows = ["a,b,c,y"] + [f"{i},{b},{i % 3},{i % 2}" for i, b in enumerate(b_values)]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_a_string_in_a_numeric_feature_without_a_rule_fails_at_validate(tmp_path):
    uri = _csv(tmp_path, ["1.5"] * 40 + ["abc", "2.5", "x1"])
    with pytest.raises(steps.GateFailed) as info:
        steps.validate(_config(tmp_path, {"min_rows": 1}), uri)
    message = str(info.value)
    assert "column `b` has 2 values of the wrong type" in message
    assert "'abc', 'x1'" in message
    assert "could not run" not in message


def test_the_label_must_exist(tmp_path):
    uri = _csv(tmp_path, ["1.5"] * 10)
    config = _config(tmp_path, {"min_rows": 1})
    text = (tmp_path / "data.csv").read_text().replace(",y\n", ",label\n", 1)
    (tmp_path / "data.csv").write_text(text)
    with pytest.raises(steps.GateFailed, match="column `y` is missing"):
        steps.validate(config, uri)


def test_a_clean_file_passes_with_the_implied_checks(tmp_path):
    uri = _csv(tmp_path, ["1.5", "2"] * 10)
    out = steps.validate(_config(tmp_path, {"min_rows": 1}), uri)
    # rows, a, b, c, y: existence for each, a type check for a and b, no-null for the label.
    assert out["success"] is True and out["evaluated"] == 8


def _split(tmp_path, name: str, b_values: list[str]) -> str:
    path = tmp_path / f"{name}.csv"
    rows = ["a,b,c,y"] + [f"{i},{b},{i % 3},{i % 2}" for i, b in enumerate(b_values)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_the_holdout_split_is_validated_too(tmp_path):
    config = _config(tmp_path, {"min_rows": 1, "columns": {"b": {"type": "numeric", "max": 10}}})
    train = _split(tmp_path, "train", ["1.5"] * 30)
    holdout = _split(tmp_path, "holdout", ["1.5"] * 7 + ["99"])
    with pytest.raises(steps.GateFailed, match=r"column `b` has 1 value out of range"):
        steps.validate(config, [train, holdout])


def test_min_rows_counts_the_rows_of_both_splits(tmp_path):
    config = _config(tmp_path, {"min_rows": 35})
    train = _split(tmp_path, "train", ["1.5"] * 30)
    holdout = _split(tmp_path, "holdout", ["1.5"] * 8)
    out = steps.validate(config, [train, holdout])
    assert out["rows"] == 38 and out["success"] is True


def test_prepare_imports_the_estimator_before_reading_any_data(tmp_path):
    from dataclasses import replace

    from airflow_mlops.core.config.training import TrainingSpec
    from airflow_mlops.core.training.pipeline import TrainingError

    config = _config(tmp_path, {"min_rows": 1})  # its data file does not even exist
    bad = replace(config, training=TrainingSpec(estimator="sklearn.ensemble.NoSuchForest"))
    with pytest.raises(TrainingError, match=r"training.estimator 'sklearn.ensemble.NoSuch"):
        steps.prepare(bad, str(tmp_path / "out"))
    params = replace(config, training=TrainingSpec(params={"no_such_param": 1}))
    with pytest.raises(TrainingError, match=r"training.params .* are not accepted"):
        steps.prepare(params, str(tmp_path / "out"))
