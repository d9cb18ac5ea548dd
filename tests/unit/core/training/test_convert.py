from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from airflow_mlops.core.config.data import DataSpec
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.onnx import OnnxSpec
from airflow_mlops.core.config.training import TrainingSpec
from airflow_mlops.core.model.feed import onnx_feed
from airflow_mlops.core.model.session import load_session
from airflow_mlops.core.training.convert import (
    ConversionError,
    _lightgbm_with_float32_thresholds,
    _patch_hist_gradient_boosting,
    convert_to_onnx,
)
from airflow_mlops.core.training.parity import check_parity, predict_proba_onnx
from airflow_mlops.core.training.pipeline import ToFloat32, build_pipeline

NUMERIC = ("age", "income", "visits")
CATEGORICAL = ("city", "plan")

ESTIMATORS = {
    "lr": ("sklearn.linear_model.LogisticRegression", {"max_iter": 500}),
    "rf": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "max_depth": 8}),
    "hgb": ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30}),
    "lgbm": ("lightgbm.LGBMClassifier", {"n_estimators": 30, "verbose": -1}),
}

# Every step computes in float32 in both runtimes (see training.py); what remains is the order
# of float32 sums inside the linear/tree ops and the final sigmoid/normalisation: a few ulp of
# a probability, measured at ~2e-7. 1e-5 leaves room for other CPUs without hiding a real bug
# (a row sent down the wrong branch moves probabilities by 1e-3 or more).
TOLERANCE = 1e-5


def make_frame(n: int, seed: int, labels: tuple[object, ...] = (0, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.normal(40, 12, n),
            "income": rng.lognormal(10, 0.5, n),
            "visits": rng.integers(0, 30, n),
            "city": rng.choice(np.array(["paris", "rome", "oslo", None], dtype=object), n),
            "plan": rng.choice(np.array(["free", "pro", np.nan], dtype=object), n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.05, "income"] = np.nan
    score = (
        0.05 * (frame["age"].fillna(40) - 40)
        + 0.1 * (frame["visits"] - 15)
        + np.where(frame["city"] == "oslo", 1.0, 0.0)
        - np.where(frame["plan"].isna(), 0.8, 0.0)
        + rng.normal(0, 1, n)
    )
    bins = np.quantile(score, np.linspace(0, 1, len(labels) + 1)[1:-1])
    frame["churn"] = np.asarray(labels, dtype=object)[np.digitize(score, bins)]
    if all(isinstance(label, int) for label in labels):
        frame["churn"] = frame["churn"].astype(int)
    return frame


def make_config(estimator: str, params: dict, **onnx_spec: float) -> ModelConfig:
    return ModelConfig(
        name="churn",
        data=DataSpec(
            uri="unused.parquet",
            target="churn",
            numeric_features=NUMERIC,
            categorical_features=CATEGORICAL,
            key_columns=("id",),
        ),
        training=TrainingSpec(estimator=estimator, params=params),
        onnx=OnnxSpec(**onnx_spec),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frame(1500, seed=1), make_frame(1000, seed=2)


@pytest.fixture(scope="module", params=sorted(ESTIMATORS))
def converted(request, frames):
    estimator, params = ESTIMATORS[request.param]
    config = make_config(estimator, params)
    pipeline = build_pipeline(config).fit(frames[0], frames[0]["churn"])
    return config, pipeline, convert_to_onnx(pipeline, config)


def test_parity_on_holdout(converted, frames):
    config, pipeline, onnx_bytes = converted
    result = check_parity(pipeline, onnx_bytes, frames[1], config)
    assert result.passed, result.message
    assert result.rows == 1000
    assert result.max_abs_diff < TOLERANCE
    assert result.label_disagreements == 0
    assert result.message.startswith("parity ok: max |Δp| ")
    assert result.to_dict()["message"] == result.message


def test_graph_follows_the_input_contract(converted):
    config, _, onnx_bytes = converted
    model = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(model)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(inputs) == [*NUMERIC, *CATEGORICAL]
    for name, tensor in inputs.items():
        expected = onnx.TensorProto.FLOAT if name in NUMERIC else onnx.TensorProto.STRING
        assert tensor.elem_type == expected
        assert [d.dim_value for d in tensor.shape.dim][1] == 1
    outputs = {o.name: o.type for o in model.graph.output}
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["probabilities"].HasField("tensor_type")  # no ZipMap: a plain tensor
    assert "ZipMap" not in {node.op_type for node in model.graph.node}
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] <= config.onnx.target_opset


def test_unknown_categories_and_missing_values_match(converted):
    _, pipeline, onnx_bytes = converted
    odd = pd.DataFrame(
        {
            "age": [np.nan, 30.0, 55.0, None],
            "income": [np.nan, 1e9, -5.0, 20000.0],
            "visits": pd.array([0, 3, pd.NA, 12], dtype="Int64"),
            "city": ["atlantis", pd.NA, "", None],
            "plan": pd.array([None, "enterprise", "pro", "free"], dtype="string"),
        }
    )
    native = pipeline.predict_proba(odd)
    session = load_session(onnx_bytes, threads=1)
    ort = predict_proba_onnx(session, odd, NUMERIC, CATEGORICAL)
    assert ort.shape == native.shape == (4, 2)
    assert np.max(np.abs(native - ort)) < TOLERANCE


def test_multiclass_string_labels_keep_parity(frames):
    train = make_frame(1200, seed=5, labels=("high", "low", "mid"))
    holdout = make_frame(600, seed=6, labels=("high", "low", "mid"))
    config = make_config("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20})
    pipeline = build_pipeline(config).fit(train, train["churn"])
    result = check_parity(pipeline, convert_to_onnx(pipeline, config), holdout, config)
    assert result.passed, result.message
    labels = load_session(convert_to_onnx(pipeline, config)).run(
        ["label"], onnx_feed(holdout.head(3), NUMERIC, CATEGORICAL)
    )[0]
    assert labels.tolist() == pipeline.predict(holdout.head(3)).tolist()


def test_parity_failure_names_figure_and_threshold(frames):
    estimator, params = ESTIMATORS["lr"]
    config = make_config(estimator, params, max_abs_diff=1e-12)
    pipeline = build_pipeline(config).fit(frames[0], frames[0]["churn"])
    result = check_parity(pipeline, convert_to_onnx(pipeline, config), frames[1], config)
    assert not result.passed
    assert result.message.startswith("parity failed: max |Δp| ")
    assert "exceeds allowed 1e-12" in result.message


class Doubler(TransformerMixin, BaseEstimator):
    """A transformer skl2onnx has never heard of."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float32) * 2


def test_unconvertible_steps_are_named(frames):
    train = frames[0]
    config = make_config("sklearn.linear_model.LogisticRegression", {})
    svc = Pipeline(
        [
            ("prep", ColumnTransformer([("num", ToFloat32(), ["visits"])])),
            ("model", SVC()),
        ]
    ).fit(train, train["churn"])
    with pytest.raises(ConversionError) as info:
        convert_to_onnx(svc, config)
    assert str(info.value).startswith(
        "cannot convert pipeline step 'model' (sklearn.svm.SVC with probability=False): "
    )

    custom = build_pipeline(config)
    custom.steps[0][1].transformers[0][1].steps.append(("double", Doubler()))
    custom.fit(train, train["churn"])
    with pytest.raises(ConversionError, match=r"step 'prep\.num\.double' \(.*Doubler\)"):
        convert_to_onnx(custom, config)


def test_load_session_from_file(converted, tmp_path, frames):
    _, pipeline, onnx_bytes = converted
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes)
    session = load_session(str(path), threads=2)
    proba = predict_proba_onnx(session, frames[1].head(5), NUMERIC, CATEGORICAL)
    assert np.max(np.abs(proba - pipeline.predict_proba(frames[1].head(5)))) < TOLERANCE


def test_hist_gradient_boosting_shim_is_idempotent():
    from skl2onnx.common import tree_ensemble

    _patch_hist_gradient_boosting()
    patched = tree_ensemble.add_node
    _patch_hist_gradient_boosting()
    assert tree_ensemble.add_node is patched
    assert patched._airflow_mlops_shim is True


def test_lightgbm_threshold_rounding_keeps_native_predictions(frames):
    estimator, params = ESTIMATORS["lgbm"]
    config = make_config(estimator, params)
    pipeline = build_pipeline(config).fit(frames[0], frames[0]["churn"])
    model = pipeline.named_steps["model"]
    adjusted = _lightgbm_with_float32_thresholds(model)
    design = pipeline[:-1].transform(frames[1])
    assert design.dtype == np.float32
    assert np.array_equal(model.predict_proba(design), adjusted.predict_proba(design))
    thresholds = np.concatenate(
        [
            np.array(line[10:].split(), dtype=np.float64)
            for line in adjusted.booster_.model_to_string().splitlines()
            if line.startswith("threshold=")
        ]
    )
    assert np.array_equal(thresholds, thresholds.astype(np.float32).astype(np.float64))


def test_hist_gradient_boosting_keeps_parity_on_small_demo_data():
    # 3,000 demo rows (seed 0): a split landed exactly on a value holdout rows hold, and the
    # nearest-float32 threshold sent them the other way in ONNX (|dp| 2e-3 before the fix).
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.data.io import split_indices
    from airflow_mlops.devstack.demo_data import generate
    from tests.conftest import REPO

    config = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    frame = generate(3_000, seed=0)
    spec = config.data
    rows, held = split_indices(frame[spec.target].to_numpy(), spec.holdout_fraction, spec.seed)
    train, holdout = frame.iloc[rows], frame.iloc[held]
    pipeline = build_pipeline(config).fit(train, train[config.data.target])
    result = check_parity(pipeline, convert_to_onnx(pipeline, config), holdout, config)
    assert result.max_abs_diff < TOLERANCE, result.message
    assert result.label_disagreements == 0


def test_hist_gradient_boosting_rounding_keeps_native_predictions(frames):
    from airflow_mlops.core.training.convert import _hist_gradient_boosting_with_float32_thresholds

    estimator, params = ESTIMATORS["hgb"]
    pipeline = build_pipeline(make_config(estimator, params)).fit(frames[0], frames[0]["churn"])
    adjusted = _hist_gradient_boosting_with_float32_thresholds(pipeline)
    assert adjusted is not pipeline and adjusted.steps[-1][1] is not pipeline.steps[-1][1]
    assert np.array_equal(pipeline.predict_proba(frames[1]), adjusted.predict_proba(frames[1]))
    for iteration in adjusted.steps[-1][1]._predictors:
        for predictor in iteration:
            t = predictor.nodes["num_threshold"][predictor.nodes["is_leaf"] == 0]
            assert np.array_equal(t, t.astype(np.float32).astype(np.float64))


def test_a_graph_onnx_runtime_cannot_load_is_a_conversion_error(frames):
    # skl2onnx converts a Gaussian process with com.microsoft:Solve, which ONNX Runtime's CPU
    # provider does not register: refused at convert, naming the estimator and the op.
    config = make_config("sklearn.gaussian_process.GaussianProcessClassifier", {})
    train = frames[0].head(200)
    pipeline = build_pipeline(config).fit(train, train["churn"])
    with pytest.raises(ConversionError, match=r"GaussianProcessClassifier.*Solve"):
        convert_to_onnx(pipeline, config)
