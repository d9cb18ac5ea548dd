"""MLflow pyfunc model over the ONNX file (MLflow "models from code").

MLflow copies this file next to ``model.onnx`` when a version is registered and runs it on
``mlflow.pyfunc.load_model``. It is self-contained on purpose: loading a registered version needs
``mlflow``, ``onnxruntime``, ``numpy`` and ``pandas`` only, never this package, and nothing
pickled is ever loaded. The feed follows the ONNX input contract of ``airflow_mlops.core.onnx``:
one ``[N, 1]`` input per feature, float32 for numeric columns (NaN = missing), strings for
categorical columns ("" = missing).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class OnnxClassifier(PythonModel):
    """Returns ``label`` and one ``probability_<class>`` column per class."""

    def load_context(self, context: Any) -> None:
        import onnxruntime as ort

        cfg = context.model_config or {}
        self._numeric = list(cfg["numeric_features"])
        self._categorical = list(cfg["categorical_features"])
        self._classes = list(cfg["classes"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(cfg.get("threads", 0))
        self._session = ort.InferenceSession(
            context.artifacts["onnx_model"], options, providers=["CPUExecutionProvider"]
        )

    # No type hints on predict: MLflow would try to derive a schema from them; the logged
    # signature is the schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        frame = pd.DataFrame(model_input)
        feed: dict[str, np.ndarray] = {}
        for col in self._numeric:
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(
                np.float32, na_value=np.nan
            )
            feed[col] = values.reshape(-1, 1)
        for col in self._categorical:
            values = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
            feed[col] = values.to_numpy(dtype=object).reshape(-1, 1)
        label, proba = self._session.run(["label", "probabilities"], feed)
        out = {"label": np.asarray(label).reshape(-1)}
        for i, cls in enumerate(self._classes):
            out[f"probability_{cls}"] = proba[:, i].astype(np.float64)
        return pd.DataFrame(out)


mlflow.models.set_model(OnnxClassifier())
