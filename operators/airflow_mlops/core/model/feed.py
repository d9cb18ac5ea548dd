"""The ONNX input contract of every model this package converts, scores and serves.

- one ONNX input per feature column, named exactly as the column, shape ``[None, 1]``;
- numeric columns are ``float32`` (:data:`NUMERIC_INPUT_TYPE`); NaN means missing (the model
  imputes it). A value must stay finite in float32: ±inf, and a number beyond the float32
  range that the cast turns into ±inf (:func:`not_float32`), was never seen in training, so
  batch scoring rejects the row and the server refuses the request;
- categorical columns are ``string`` (:data:`CATEGORICAL_INPUT_TYPE`); a missing value is
  :data:`MISSING_CATEGORY` (ONNX string tensors have no null). The native pipeline maps
  None/NaN/pd.NA to it as well (``FillMissingCategories``), so "missing" is one and the same
  category in both runtimes; a category never seen in training scores as all-zero one-hot in
  both.

Outputs: :data:`LABEL_OUTPUT` (the predicted class) and :data:`PROBABILITIES_OUTPUT`, a plain
float tensor ``[N, n_classes]`` with columns in the order of the model's ``classes_`` (no ZipMap).

Callers hold their rows in different shapes (a pandas frame, Arrow batches, JSON lists); each
converts its columns with the rules here and keeps its own way of refusing a bad value. Only
numpy is imported at module level (the serving image has no pandas), and nothing from this
package: the registered pyfunc loads this file on its own from the version's artifacts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CATEGORICAL_INPUT_TYPE",
    "LABEL_OUTPUT",
    "MISSING_CATEGORY",
    "NUMERIC_INPUT_TYPE",
    "PROBABILITIES_OUTPUT",
    "ArrowNumeric",
    "as_inputs",
    "categorical_from_arrow",
    "category_strings",
    "check_row_feed",
    "fill_missing_categories",
    "float32_column",
    "not_float32",
    "numeric_from_arrow",
    "onnx_feed",
    "split_inputs",
    "to_float32",
]

MISSING_CATEGORY = ""
"""How a missing categorical value is fed to ONNX (and seen by the native one-hot encoder)."""
NUMERIC_INPUT_TYPE = "tensor(float)"
CATEGORICAL_INPUT_TYPE = "tensor(string)"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"


def to_float32(values: Any) -> np.ndarray:
    """Numbers as float32, as the model sees them; out-of-range values become ±inf (find them
    with :func:`not_float32`).

    numpy may warn "overflow encountered in cast" then; the warning is not silenced here because
    ``np.errstate`` costs ten times the cast itself on the server's one-row requests (the batch
    path, :func:`numeric_from_arrow`, silences it once per column).
    """
    return np.asarray(values, dtype=np.float32)


def not_float32(values: np.ndarray) -> np.ndarray:
    """Mask of float32 values outside the contract: ±inf, which is also what a number beyond
    the float32 range became in the cast. NaN is missing, not outside."""
    return np.isinf(values)


def fill_missing_categories(values: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """Put :data:`MISSING_CATEGORY` where ``missing`` (default: where the value is ``None``)."""
    if missing is None:
        missing = values == None  # noqa: E711 - elementwise comparison on objects
    values[missing] = MISSING_CATEGORY
    return values


def as_inputs(
    numeric: Mapping[str, np.ndarray], categorical: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The feed: one ``[N, 1]`` input per column, named as the column (1-D columns reshaped)."""
    feed = {name: values.reshape(-1, 1) for name, values in numeric.items()}
    feed.update((name, values.reshape(-1, 1)) for name, values in categorical.items())
    return feed


def check_row_feed(
    numeric: Iterable[str], categorical: Iterable[str], rows: int = 1
) -> dict[str, np.ndarray]:
    """A feed of ``rows`` all-missing rows: every model must score it (a load check)."""
    feed = {name: np.full((rows, 1), np.nan, np.float32) for name in numeric}
    feed.update((name, np.full((rows, 1), MISSING_CATEGORY, dtype=object)) for name in categorical)
    return feed


def split_inputs(inputs: Iterable[Any]) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` names of ONNX Runtime session inputs (``.name``, ``.type``),
    in graph order."""
    listed = list(inputs)
    numeric = [i.name for i in listed if i.type != CATEGORICAL_INPUT_TYPE]
    categorical = [i.name for i in listed if i.type == CATEGORICAL_INPUT_TYPE]
    return numeric, categorical


def category_strings(values: Any) -> np.ndarray:
    """One categorical column as a 1-D object array of ``str``, missing values as ``""``.

    Takes a pandas Series or any sequence; used by the native pipeline and :func:`onnx_feed`,
    so both see the same strings.
    """
    import pandas as pd

    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    arr = np.array(arr, dtype=object, copy=True).reshape(-1)
    missing = pd.isna(arr)
    if missing.any():
        fill_missing_categories(arr, missing)
    # infer_dtype is one C pass; the per-value str() only runs for non-string columns.
    if pd.api.types.infer_dtype(arr, skipna=False) != "string":
        arr = arr.astype(str).astype(object)
    return arr


def float32_column(values: Any) -> np.ndarray:
    """One numeric column as a 1-D float32 array, missing values (None, NaN, pd.NA) as NaN.

    A text value raises ``ValueError`` (a frame has a dtype; text there is a caller's bug).
    """
    import pandas as pd

    if isinstance(values, pd.Series):
        if values.dtype.kind in "fiub":
            return np.asarray(values.to_numpy(), dtype=np.float32)
        return values.to_numpy(dtype=np.float32, na_value=np.nan)
    return np.asarray(values, dtype=np.float32).reshape(-1)


def onnx_feed(frame: Any, numeric: Sequence[str], categorical: Sequence[str]) -> dict[str, Any]:
    """The feed for a pandas frame (the rules in the module docstring).

    :raises ValueError: the frame lacks a feature column.
    """
    absent = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if absent:
        raise ValueError(f"frame lacks feature column(s) {absent}")
    return as_inputs(
        {name: float32_column(frame[name]) for name in numeric},
        {name: category_strings(frame[name]) for name in categorical},
    )


class ArrowNumeric(NamedTuple):
    """One numeric Arrow column converted: what to feed, and what the caller must refuse.

    :param values: 1-D float32 (NaN = missing).
    :param unparsable: text that is not a number (text columns only), else ``None``.
    :param not_float32: ±inf or beyond the float32 range (see :func:`not_float32`), or
        ``None`` where the column's type cannot hold such a value (integers, booleans).
    """

    values: np.ndarray
    unparsable: np.ndarray | None
    not_float32: np.ndarray | None


def _is_text(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _quiet_float32(values: np.ndarray) -> np.ndarray:
    # A value beyond float32 is found by not_float32 and refused by the caller with its reason:
    # numpy's "overflow encountered in cast" would only be noise in the task log. One errstate
    # per batch column costs nothing here (the server's per-request path stays without it).
    with np.errstate(over="ignore"):
        return to_float32(values)


def numeric_from_arrow(arr: Any) -> ArrowNumeric:
    """One numeric column of an Arrow batch (numbers, decimals, nulls, or CSV text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    unparsable = None
    if _is_text(t):  # CSV: parse value by value; text that is no number is the caller's to refuse
        import pandas as pd

        raw = arr.to_numpy(zero_copy_only=False)
        parsed = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad = np.isnan(parsed) & ~pd.isna(raw)
        bad &= ~np.isin(np.char.lower(raw.astype(str)), ("nan", ""))
        unparsable = bad if bad.any() else None
        values = _quiet_float32(parsed)
    elif pa.types.is_decimal(t) or pa.types.is_null(t):
        values = _quiet_float32(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False))
    else:
        values = pc.cast(arr, pa.float32(), safe=False).to_numpy(zero_copy_only=False)
    outside = None
    if pa.types.is_floating(t) or pa.types.is_decimal(t) or _is_text(t):
        mask = not_float32(values)
        outside = mask if mask.any() else None
    return ArrowNumeric(values, unparsable, outside)


def categorical_from_arrow(arr: Any) -> np.ndarray:
    """One categorical column of an Arrow batch as 1-D ``str`` objects, nulls as ``""``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(arr.type):
        if not _is_text(arr.type):
            arr = pc.cast(arr, pa.string())
        arr = pc.dictionary_encode(arr)
    dictionary = arr.dictionary
    if not _is_text(dictionary.type):
        dictionary = pc.cast(dictionary, pa.string())
    # Index into a small array of str objects instead of building a str per row; the last slot
    # is the missing category for null rows.
    words = np.empty(len(dictionary) + 1, dtype=object)
    words[:-1] = dictionary.to_numpy(zero_copy_only=False)
    words[-1] = MISSING_CATEGORY
    indices = pc.fill_null(arr.indices, len(dictionary)).to_numpy(zero_copy_only=False)
    return np.asarray(words[indices])
