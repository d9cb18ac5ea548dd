"""Native vs ONNX Runtime on the same rows: the parity gate before a version is registered.

Both runtimes score the holdout; probabilities are compared cell by cell and labels row by row
against the config's tolerances (``onnx.max_abs_diff``, ``onnx.max_label_disagreements``).
:func:`predict_proba_onnx` is the frame-in, probabilities-out scorer the evaluation and the
drift monitor use too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.model.feed import LABEL_OUTPUT, PROBABILITIES_OUTPUT, onnx_feed
from airflow_mlops.core.model.session import load_session

if TYPE_CHECKING:
    import onnxruntime
    import pandas as pd

__all__ = ["ParityResult", "check_parity", "predict_proba_onnx"]


def predict_proba_onnx(
    session: onnxruntime.InferenceSession,
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> np.ndarray:
    """Class probabilities ``[N, n_classes]`` for ``frame`` (columns in ``classes_`` order)."""
    result = session.run([PROBABILITIES_OUTPUT], onnx_feed(frame, numeric, categorical))
    return np.asarray(result[0])


def _sci(value: float) -> str:
    # 1.0e-04 -> 1e-04: reads like the config value it is compared with.
    text = f"{value:.1e}"
    return text.replace(".0e", "e")


@dataclass(frozen=True)
class ParityResult:
    """Native vs ONNX Runtime on the same rows.

    :param rows: rows compared.
    :param max_abs_diff: largest absolute probability difference over all rows and classes.
    :param mean_abs_diff: mean absolute probability difference.
    :param label_disagreements: rows whose predicted label differs.
    :param max_abs_diff_allowed: the tolerance (``onnx.max_abs_diff``).
    :param label_disagreements_allowed: the tolerance (``onnx.max_label_disagreements``).
    :param passed: both figures within their tolerance.
    """

    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    label_disagreements: int
    max_abs_diff_allowed: float
    label_disagreements_allowed: int
    passed: bool

    @property
    def message(self) -> str:
        """One line naming each figure and its threshold."""
        labels = (
            f"{self.label_disagreements} label disagreements of {self.rows} rows "
            f"(allowed {self.label_disagreements_allowed})"
        )
        diff = f"max |Δp| {_sci(self.max_abs_diff)} (allowed {_sci(self.max_abs_diff_allowed)})"
        if self.passed:
            return f"parity ok: {diff}, {labels}"
        failed = []
        if not self.max_abs_diff <= self.max_abs_diff_allowed:
            failed.append(
                f"max |Δp| {_sci(self.max_abs_diff)} exceeds allowed "
                f"{_sci(self.max_abs_diff_allowed)}"
            )
        if self.label_disagreements > self.label_disagreements_allowed:
            failed.append(
                f"{self.label_disagreements} label disagreements of {self.rows} rows exceed "
                f"allowed {self.label_disagreements_allowed}"
            )
        return f"parity failed: {'; '.join(failed)} (mean |Δp| {_sci(self.mean_abs_diff)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, message included (for XCom and MLflow tags)."""
        return {**asdict(self), "message": self.message}


def _same_labels(native: np.ndarray, onnx_labels: np.ndarray) -> np.ndarray:
    native = np.asarray(native).reshape(-1)
    onnx_labels = np.asarray(onnx_labels).reshape(-1)
    if native.dtype.kind in "OUS" or onnx_labels.dtype.kind in "OUS":
        return np.asarray(native.astype(str) == onnx_labels.astype(str))
    return np.asarray(native == onnx_labels)


def check_parity(
    pipeline: Any, onnx_bytes: bytes, holdout_frame: pd.DataFrame, config: ModelConfig
) -> ParityResult:
    """Score ``holdout_frame`` natively and with ONNX Runtime; compare against ``config.onnx``.

    Probabilities are compared cell by cell; labels are the native ``predict`` against the ONNX
    ``label`` output, i.e. what each runtime would actually answer.
    """
    data = config.data
    native_proba = np.asarray(pipeline.predict_proba(holdout_frame), dtype=np.float64)
    native_labels = pipeline.predict(holdout_frame)
    session = load_session(onnx_bytes)
    onnx_labels, onnx_proba = session.run(
        [LABEL_OUTPUT, PROBABILITIES_OUTPUT],
        onnx_feed(holdout_frame, data.numeric_features, data.categorical_features),
    )
    diff = np.abs(native_proba - np.asarray(onnx_proba, dtype=np.float64))
    rows = len(holdout_frame)
    max_diff = float(diff.max()) if diff.size else 0.0
    mean_diff = float(diff.mean()) if diff.size else 0.0
    disagreements = int(rows - _same_labels(native_labels, onnx_labels).sum())
    spec = config.onnx
    return ParityResult(
        rows=rows,
        max_abs_diff=max_diff,
        mean_abs_diff=mean_diff,
        label_disagreements=disagreements,
        max_abs_diff_allowed=spec.max_abs_diff,
        label_disagreements_allowed=spec.max_label_disagreements,
        passed=max_diff <= spec.max_abs_diff and disagreements <= spec.max_label_disagreements,
    )
