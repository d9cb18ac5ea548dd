"""MLflow pyfunc model over the ONNX file (MLflow "models from code").

MLflow copies this file next to ``model.onnx`` when a version is registered and runs it on
``mlflow.pyfunc.load_model``. Loading a registered version needs ``mlflow``, ``onnxruntime``,
``numpy`` and ``pandas`` only, never this package, and nothing pickled is ever loaded: the feed
contract (:mod:`airflow_mlops.core.model.feed`) and the session builder
(:mod:`airflow_mlops.core.model.session`) are logged as artifacts of the version beside the ONNX
file (both import nothing from this package) and loaded from there, so the version keeps the
contract it was registered with.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

# Artifact keys of a registered version (core/registry/versions.py logs them).
ONNX_ARTIFACT = "onnx_model"
FEED_ARTIFACT = "feed_contract"
SESSION_ARTIFACT = "session_builder"


def _module(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OnnxClassifier(PythonModel):
    """Returns ``label`` and one ``probability_<class>`` column per class."""

    def load_context(self, context: Any) -> None:
        cfg = context.model_config or {}
        self._numeric = list(cfg["numeric_features"])
        self._categorical = list(cfg["categorical_features"])
        self._classes = list(cfg["classes"])
        self._feed = _module(context.artifacts[FEED_ARTIFACT], "_airflow_mlops_feed")
        session = _module(context.artifacts[SESSION_ARTIFACT], "_airflow_mlops_session")
        threads = int(cfg.get("threads", 0))
        self._session = session.load_session(
            context.artifacts[ONNX_ARTIFACT], threads or None, spinning=True
        )

    # No type hints on predict: MLflow would try to derive a schema from them; the logged
    # signature is the schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        frame = pd.DataFrame(model_input)
        # After MLflow's schema check; anything still not a number is fed as missing (NaN), as
        # this model has always done, rather than failing the whole batch.
        numeric = {
            col: self._feed.to_float32(
                pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64, na_value=np.nan)
            )
            for col in self._numeric
        }
        categorical = {col: self._feed.category_strings(frame[col]) for col in self._categorical}
        label, proba = self._session.run(
            [self._feed.LABEL_OUTPUT, self._feed.PROBABILITIES_OUTPUT],
            self._feed.as_inputs(numeric, categorical),
        )
        out = {"label": np.asarray(label).reshape(-1)}
        for i, cls in enumerate(self._classes):
            out[f"probability_{cls}"] = proba[:, i].astype(np.float64)
        return pd.DataFrame(out)


mlflow.models.set_model(OnnxClassifier())
