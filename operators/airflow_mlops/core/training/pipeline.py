"""Build, fit, score and save the training pipeline.

The pipeline is one scikit-learn :class:`~sklearn.pipeline.Pipeline` that takes the raw frame
(columns selected by name, extra columns ignored) and ends in the configured classifier::

    prep (ColumnTransformer)
      num: ToFloat32 -> SimpleImputer(median) -> Float32Scaler (if scale_numeric)
      cat: FillMissingCategories -> OneHotEncoder(handle_unknown="ignore")
    model: the estimator named by ``training.estimator``

Three small transformers of our own keep the native model and its ONNX conversion identical
(see :mod:`airflow_mlops.core.model.feed` for the ONNX input contract and
:mod:`airflow_mlops.core.training.convert` for their converters):

- :class:`ToFloat32` casts numeric inputs to float32 first, because the ONNX model receives
  float32 and tree ensembles compare thresholds in float32: a float64 pipeline disagrees with
  ONNX Runtime on rows near a split (measured: RandomForest 7.5e-3, HistGB 1.6e-3 and label
  flips).
- :class:`Float32Scaler` is a StandardScaler whose transform runs in float32 arithmetic, the
  way the ONNX graph does. sklearn's own transform computes in float64 and rounds twice; the
  last-bit differences that leaves are enough to send rows to the other side of a tree split
  (measured on 20k rows: RandomForest max |dp| 6e-2 with 7 label flips, LightGBM 3.5e-2).
- :class:`FillMissingCategories` turns every missing category (None, NaN, pd.NA) into ``""``,
  which is exactly how the ONNX feed encodes a missing string, so "missing" is a category of its
  own in both runtimes.
"""

from __future__ import annotations

import importlib
import os
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, is_classifier
from sklearn.preprocessing import StandardScaler

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.model.feed import category_strings, float32_column
from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "FillMissingCategories",
    "Float32Scaler",
    "ToFloat32",
    "TrainResult",
    "TrainingError",
    "build_pipeline",
    "compute_metrics",
    "load_pipeline",
    "save_pipeline",
    "train_model",
]


class TrainingError(MLOpsError, ValueError):
    """The estimator or the data cannot be used for training; the message says which."""


class ToFloat32(TransformerMixin, BaseEstimator):
    """Cast numeric columns to float32, keeping NaN as missing.

    ONNX Runtime receives float32 (see :mod:`airflow_mlops.core.model.feed`); casting here,
    before imputation and scaling, makes the native pipeline see the very same numbers.
    """

    def fit(self, X: Any, y: Any = None) -> ToFloat32:
        """Remember the input columns (no statistics are learnt)."""
        self.n_features_in_ = X.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return a float32 array of shape (n_rows, n_columns)."""
        if isinstance(X, pd.DataFrame):
            if X.shape[1] == 0:
                return np.empty((len(X), 0), dtype=np.float32)
            return np.column_stack([float32_column(X.iloc[:, i]) for i in range(X.shape[1])])
        return np.asarray(X, dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input names, unchanged."""
        return _names_out(self, input_features)


class Float32Scaler(StandardScaler):
    """A StandardScaler (same fit) whose transform is ``(x - mean) / scale`` in float32.

    The ONNX graph computes exactly this (Sub, Div on float32 constants), so both runtimes
    produce the same bits and tree models split both the same way.
    """

    def float32_params(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted offset and divisor as float32 (identity where centring/scaling is off)."""
        n = self.n_features_in_
        offset = (
            self.mean_.astype(np.float32)
            if self.with_mean and self.mean_ is not None
            else np.zeros(n, dtype=np.float32)
        )
        scale = (
            self.scale_.astype(np.float32)
            if self.with_std and self.scale_ is not None
            else np.ones(n, dtype=np.float32)
        )
        return offset, scale

    def transform(self, X: Any, copy: bool | None = None) -> np.ndarray:
        """Scale ``X`` in float32 arithmetic."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        offset, scale = self.float32_params()
        values = np.asarray(X, dtype=np.float32)
        return np.asarray((values - offset) / scale, dtype=np.float32)


class FillMissingCategories(TransformerMixin, BaseEstimator):
    """Turn categorical values into strings, with ``""`` for every kind of missing value.

    The ONNX feed encodes a missing string as ``""`` (ONNX string tensors have no null); doing
    the same here makes "missing" one ordinary category for the one-hot encoder in both runtimes.
    """

    def fit(self, X: Any, y: Any = None) -> FillMissingCategories:
        """Remember the input columns (no statistics are learnt)."""
        self.n_features_in_ = X.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return an object array of str, shape (n_rows, n_columns)."""
        if isinstance(X, pd.DataFrame):
            columns = [X.iloc[:, i] for i in range(X.shape[1])]
        else:
            arr = np.asarray(X, dtype=object)
            columns = [arr[:, i] for i in range(arr.shape[1])]
        out = np.empty((X.shape[0], len(columns)), dtype=object)
        for i, col in enumerate(columns):
            out[:, i] = category_strings(col)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input names, unchanged."""
        return _names_out(self, input_features)


def _names_out(step: Any, input_features: Any) -> np.ndarray:
    if input_features is not None:
        return np.asarray(input_features, dtype=object)
    names = getattr(step, "feature_names_in_", None)
    if names is not None:
        return np.asarray(names, dtype=object)
    return np.asarray([f"x{i}" for i in range(step.n_features_in_)], dtype=object)


def make_estimator(config: ModelConfig) -> Any:
    """The configured estimator, built; :class:`TrainingError` names what cannot be used."""
    path = config.training.estimator
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise TrainingError(
            f"training.estimator {path!r} is not an import path like "
            "'sklearn.linear_model.LogisticRegression'"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise TrainingError(f"training.estimator {path!r} cannot be imported: {exc}") from exc
    try:
        estimator = cls(**config.training.params)
    except TypeError as exc:
        raise TrainingError(
            f"training.params {config.training.params!r} are not accepted by {path}: {exc}"
        ) from exc
    if not is_classifier(estimator):
        raise TrainingError(f"training.estimator {path!r} is not a scikit-learn classifier")
    if not hasattr(estimator, "predict_proba"):
        # e.g. SVC(probability=False): without probabilities there are no holdout metrics and
        # no ONNX probability output to score with.
        raise TrainingError(
            f"training.estimator {path!r} with params {config.training.params!r} has no "
            "predict_proba (an SVC gets one from sklearn.calibration.CalibratedClassifierCV)"
        )
    # A fixed seed makes a rerun of the same task reproduce the same model.
    if "random_state" in estimator.get_params() and "random_state" not in config.training.params:
        estimator.set_params(random_state=config.data.seed)
    return estimator


def build_pipeline(config: ModelConfig) -> Any:
    """Build the unfitted pipeline for ``config`` (see the module docstring for its shape).

    :raises TrainingError: the estimator cannot be imported, is not a classifier, rejects its
        params, or has no ``predict_proba``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    estimator = make_estimator(config)
    data = config.data
    branches: list[tuple[str, Any, list[str]]] = []
    if data.numeric_features:
        # keep_empty_features: a column that is all-NaN in training would otherwise be dropped
        # natively but not in ONNX; imputing 0 keeps both at the same width.
        num_steps: list[tuple[str, Any]] = [
            ("float32", ToFloat32()),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ]
        if config.training.scale_numeric:
            num_steps.append(("scale", Float32Scaler()))
        branches.append(("num", Pipeline(num_steps), list(data.numeric_features)))
    if data.categorical_features:
        cat_steps = [
            ("fill", FillMissingCategories()),
            # Dense float32 output: HistGradientBoosting rejects sparse input, and float32
            # keeps the whole design matrix in the dtype ONNX computes in.
            (
                "onehot",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
            ),
        ]
        branches.append(("cat", Pipeline(cat_steps), list(data.categorical_features)))
    if not branches:
        raise TrainingError(f"model {config.name!r}: data lists no numeric or categorical feature")
    prep = ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("prep", prep), ("model", estimator)])


def compute_metrics(y_true: Any, proba: np.ndarray, classes: Any) -> dict[str, float]:
    """Holdout metrics from predicted probabilities.

    Binary (the positive class is ``classes[1]``): roc_auc, accuracy, f1, precision, recall,
    log_loss, brier. Multiclass: roc_auc (one-vs-rest, macro), accuracy, f1 (macro), log_loss.
    ``roc_auc`` is NaN when the holdout holds a single class (it is undefined there).

    :param y_true: true labels, in the same label space as ``classes``.
    :param proba: probabilities, shape (n_rows, n_classes), columns in ``classes`` order.
    :param classes: the fitted ``classes_`` of the model.
    """
    from sklearn import metrics as skm

    y = np.asarray(y_true)
    labels = np.asarray(classes)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(labels) or proba.shape[0] != len(y):
        raise ValueError(
            f"proba has shape {proba.shape}, expected ({len(y)}, {len(labels)}) for classes "
            f"{labels.tolist()}"
        )
    # Models fed float32 return float32 probabilities whose rows sum to 1 only within ~1e-7,
    # which log_loss warns about; renormalising in float64 changes nothing else.
    proba = proba / proba.sum(axis=1, keepdims=True)
    predicted = labels[proba.argmax(axis=1)]
    present = np.unique(y)
    out: dict[str, float] = {"accuracy": float(skm.accuracy_score(y, predicted))}
    if len(labels) == 2:
        positive = y == labels[1]
        out["roc_auc"] = (
            float(skm.roc_auc_score(positive, proba[:, 1])) if len(present) > 1 else float("nan")
        )
        hit = predicted == labels[1]
        out["f1"] = float(skm.f1_score(positive, hit, zero_division=0))
        out["precision"] = float(skm.precision_score(positive, hit, zero_division=0))
        out["recall"] = float(skm.recall_score(positive, hit, zero_division=0))
        out["brier"] = float(skm.brier_score_loss(positive, proba[:, 1]))
    else:
        out["roc_auc"] = (
            float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
            if len(present) == len(labels)
            else float("nan")
        )
        out["f1"] = float(skm.f1_score(y, predicted, average="macro", zero_division=0))
    out["log_loss"] = float(skm.log_loss(y, proba, labels=labels))
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    :param model_uri: where the fitted pipeline was saved (joblib).
    :param metrics: holdout metrics (see :func:`compute_metrics`).
    :param n_train: rows fitted on.
    :param n_holdout: rows scored for the metrics.
    :param estimator: the estimator's import path.
    :param params: the estimator's configured params.
    :param classes: the fitted class labels, positive class last for binary models.
    :param fit_seconds: wall time of ``fit``.
    """

    model_uri: str
    metrics: dict[str, float]
    n_train: int
    n_holdout: int
    estimator: str
    params: dict[str, Any]
    classes: list[Any]
    fit_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom and MLflow)."""
        return asdict(self)


def _xy(frame: pd.DataFrame, config: ModelConfig, role: str) -> tuple[pd.DataFrame, np.ndarray]:
    data = config.data
    needed = [*data.features, data.target]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TrainingError(f"{role} frame lacks column(s) {missing}")
    target = frame[data.target]
    nulls = int(target.isna().sum())
    if nulls:
        raise TrainingError(f"{role} frame: target {data.target!r} has {nulls} null(s) (allowed 0)")
    return frame[list(data.features)], target.to_numpy()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def train_model(
    config: ModelConfig,
    train_frame: pd.DataFrame,
    holdout_frame: pd.DataFrame,
    out_path: str,
) -> TrainResult:
    """Fit the pipeline on ``train_frame``, score ``holdout_frame``, save the fitted pipeline.

    :param config: the model config.
    :param train_frame: rows to fit on (features and target; other columns are ignored).
    :param holdout_frame: rows for the holdout metrics.
    :param out_path: local path or fsspec URI for the joblib file, written atomically.
    """
    x_train, y_train = _xy(train_frame, config, "train")
    x_hold, y_hold = _xy(holdout_frame, config, "holdout")
    if len(np.unique(y_train)) < 2:
        raise TrainingError(
            f"train frame: target {config.data.target!r} has a single class; need at least 2"
        )
    pipeline = build_pipeline(config)
    start = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - start
    classes = pipeline.classes_
    metrics = compute_metrics(y_hold, pipeline.predict_proba(x_hold), classes)
    save_pipeline(pipeline, out_path)
    return TrainResult(
        model_uri=out_path,
        metrics=metrics,
        n_train=len(x_train),
        n_holdout=len(x_hold),
        estimator=config.training.estimator,
        params=dict(config.training.params),
        classes=[_plain(c) for c in classes],
        fit_seconds=round(fit_seconds, 4),
    )


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def save_pipeline(pipeline: Any, uri: str) -> str:
    """Save with joblib to a temporary name beside ``uri``, then rename it into place.

    A retried task therefore never leaves (or reads) half a file. On object stores the rename
    is a copy; their uploads are atomic anyway.
    """
    import joblib

    if _is_local(uri):
        path = uri.removeprefix("file://")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            joblib.dump(pipeline, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return uri

    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open(tmp, "wb") as fh:
        joblib.dump(pipeline, fh)
    fs.mv(tmp, path)
    return uri


def load_pipeline(uri: str) -> Any:
    """Load a pipeline saved by :func:`save_pipeline` (local path or fsspec URI).

    joblib files are pickles: load only files this package wrote.
    """
    import joblib

    if _is_local(uri):
        return joblib.load(uri.removeprefix("file://"))
    import fsspec

    with fsspec.open(uri, "rb") as fh:
        return joblib.load(fh)
