from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config.data import DataSpec
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.training import TrainingSpec
from airflow_mlops.core.training.pipeline import (
    FillMissingCategories,
    Float32Scaler,
    TrainingError,
    build_pipeline,
    compute_metrics,
    load_pipeline,
    train_model,
)

NUMERIC = ("age", "income", "visits")
CATEGORICAL = ("city", "plan")

ESTIMATORS = {
    "lr": ("sklearn.linear_model.LogisticRegression", {"max_iter": 500}),
    "rf": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "max_depth": 6}),
    "hgb": ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30}),
    "lgbm": ("lightgbm.LGBMClassifier", {"n_estimators": 30, "verbose": -1}),
}


def make_frame(n: int, seed: int, labels: tuple[object, object] = (0, 1)) -> pd.DataFrame:
    """Synthetic rows with NaN numerics, None/NaN categories, an int column and a key."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.normal(40, 12, n),
            "income": rng.lognormal(10, 0.5, n),
            "visits": rng.integers(0, 30, n),  # arrives as int
            "city": rng.choice(np.array(["paris", "rome", "oslo", None], dtype=object), n),
            "plan": rng.choice(np.array(["free", "pro", np.nan], dtype=object), n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    logit = (
        0.05 * (frame["age"].fillna(40) - 40)
        + 0.1 * (frame["visits"] - 15)
        + np.where(frame["city"] == "oslo", 1.0, 0.0)
        - np.where(frame["plan"].isna(), 0.8, 0.0)
    )
    positive = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame["churn"] = np.where(positive, labels[1], labels[0])
    return frame


def make_config(estimator: str, params: dict | None = None, **training: object) -> ModelConfig:
    return ModelConfig(
        name="churn",
        data=DataSpec(
            uri="unused.parquet",
            target="churn",
            numeric_features=NUMERIC,
            categorical_features=CATEGORICAL,
            key_columns=("id",),
        ),
        training=TrainingSpec(estimator=estimator, params=params or {}, **training),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frame(800, seed=1), make_frame(400, seed=2)


@pytest.fixture(scope="module", params=sorted(ESTIMATORS))
def trained(request, frames, tmp_path_factory):
    estimator, params = ESTIMATORS[request.param]
    config = make_config(estimator, params)
    out = str(tmp_path_factory.mktemp(request.param) / "model.joblib")
    return config, train_model(config, frames[0], frames[1], out)


def test_train_model_fits_scores_and_saves(trained, frames):
    config, result = trained
    assert result.n_train == 800 and result.n_holdout == 400
    assert result.classes == [0, 1]
    assert result.estimator == config.training.estimator
    assert set(result.metrics) == {
        "accuracy",
        "brier",
        "f1",
        "log_loss",
        "precision",
        "recall",
        "roc_auc",
    }
    assert result.metrics["roc_auc"] > 0.65
    assert 0.0 <= result.metrics["brier"] <= 0.25
    assert result.fit_seconds >= 0
    # Saved pipeline predicts the same on the raw frame (extra columns, any order).
    loaded = load_pipeline(result.model_uri)
    holdout = frames[1]
    proba = loaded.predict_proba(holdout[::-1])[::-1]
    again = compute_metrics(holdout["churn"], proba, loaded.classes_)
    assert again == pytest.approx(result.metrics)
    assert result.to_dict()["classes"] == [0, 1]


def test_unknown_category_and_missing_values_score(trained):
    _, result = trained
    pipeline = load_pipeline(result.model_uri)
    odd = pd.DataFrame(
        {
            "age": [np.nan, 30.0],
            "income": [np.nan, 1e9],
            "visits": [0, 3],
            "city": ["atlantis", pd.NA],
            "plan": [None, "enterprise"],
        }
    )
    proba = pipeline.predict_proba(odd)
    assert proba.shape == (2, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_string_labels_use_fitted_classes(frames, tmp_path):
    train = make_frame(500, seed=3, labels=("stay", "leave"))
    holdout = make_frame(200, seed=4, labels=("stay", "leave"))
    config = make_config("sklearn.linear_model.LogisticRegression")
    result = train_model(config, train, holdout, str(tmp_path / "m.joblib"))
    # classes_ sort alphabetically: "leave" is column 0, "stay" (the positive class) column 1.
    assert result.classes == ["leave", "stay"]
    assert 0.0 < result.metrics["roc_auc"] < 1.0


def test_pipeline_shape_and_float32_design_matrix(frames):
    config = make_config("sklearn.linear_model.LogisticRegression")
    pipeline = build_pipeline(config).fit(frames[0], frames[0]["churn"])
    design = pipeline[:-1].transform(frames[1])
    assert design.dtype == np.float32
    # 3 numeric + one-hot of city (4 incl. missing) and plan (3 incl. missing).
    assert design.shape == (400, 3 + 4 + 3)
    assert isinstance(pipeline.named_steps["prep"].named_transformers_["num"][-1], Float32Scaler)
    assert pipeline.named_steps["model"].random_state == config.data.seed


def test_scale_numeric_off_drops_scaler():
    pipeline = build_pipeline(
        make_config("sklearn.linear_model.LogisticRegression", scale_numeric=False)
    )
    num = pipeline.named_steps["prep"].transformers[0][1]
    assert [name for name, _ in num.steps] == ["float32", "impute"]


def test_float32_scaler_matches_sklearn_closely():
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).normal(5, 3, (1000, 2)).astype(np.float32)
    ours = Float32Scaler().fit(x).transform(x)
    theirs = StandardScaler().fit(x).transform(x)
    assert ours.dtype == np.float32
    assert np.max(np.abs(ours - theirs)) < 1e-5


def test_fill_missing_categories_maps_every_null_to_empty_string():
    frame = pd.DataFrame({"c": ["a", None, np.nan, pd.NA, 1]}, dtype=object)
    out = FillMissingCategories().fit(frame).transform(frame)
    assert out[:, 0].tolist() == ["a", "", "", "", "1"]


@pytest.mark.parametrize(
    ("estimator", "params", "fragment"),
    [
        ("sklearn.linear_model.NoSuchModel", {}, "cannot be imported"),
        ("no_such_package.Model", {}, "cannot be imported"),
        ("LogisticRegression", {}, "is not an import path"),
        ("sklearn.linear_model.LinearRegression", {}, "is not a scikit-learn classifier"),
        ("sklearn.svm.SVC", {}, "has no predict_proba"),
        ("sklearn.linear_model.LogisticRegression", {"bogus": 1}, "are not accepted"),
    ],
)
def test_bad_estimator_is_named(estimator, params, fragment):
    with pytest.raises(TrainingError, match=fragment) as info:
        build_pipeline(make_config(estimator, params))
    assert estimator in str(info.value) or "bogus" in str(info.value)


def test_null_target_is_rejected(frames, tmp_path):
    train = frames[0].copy()
    train.loc[:4, "churn"] = np.nan
    config = make_config("sklearn.linear_model.LogisticRegression")
    with pytest.raises(TrainingError, match=r"train frame: target 'churn' has 5 null"):
        train_model(config, train, frames[1], str(tmp_path / "m.joblib"))


def test_save_to_fsspec_uri(frames):
    config = make_config("sklearn.linear_model.LogisticRegression")
    result = train_model(config, frames[0], frames[1], "memory://models/churn/model.joblib")
    import fsspec

    fs = fsspec.filesystem("memory")
    assert fs.ls("/models/churn", detail=False) == ["/models/churn/model.joblib"]
    assert load_pipeline(result.model_uri).classes_.tolist() == [0, 1]


def test_compute_metrics_binary_values():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    m = compute_metrics(y, proba, [0, 1])
    assert m["roc_auc"] == 1.0
    assert m["accuracy"] == 1.0
    assert m["f1"] == m["precision"] == m["recall"] == 1.0
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.09 + 0.04) / 4)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.7, 0.8])))


def test_compute_metrics_multiclass_and_single_class():
    y = np.array(["a", "b", "c", "a"])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    m = compute_metrics(y, proba, ["a", "b", "c"])
    assert set(m) == {"accuracy", "f1", "log_loss", "roc_auc"}
    assert m["accuracy"] == 0.75
    single = compute_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]]), [0, 1])
    assert np.isnan(single["roc_auc"]) and single["accuracy"] == 1.0
    with pytest.raises(ValueError, match="expected"):
        compute_metrics(y, proba[:, :2], ["a", "b", "c"])
