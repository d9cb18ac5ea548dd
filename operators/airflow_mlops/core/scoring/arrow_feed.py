"""The ONNX feed of one Arrow batch, and which of its rows are rejected (and why).

Nothing here holds more than one batch of input at a time.

Which rows are rejected (written to the rejects file with a reason) and which inputs fail the
whole partition is decided here:

- a null key column value: the prediction could not be joined back → reject;
- a numeric value that is ±inf, or beyond float32 range: the training pipeline refuses
  infinities, so the model was never defined there → reject;
- a CSV numeric value that is not a number (``"abc"``) → reject (CSV has no schema; the raw
  text goes to the rejects file);
- a null numeric value is not a reject: it is fed as NaN and imputed by the model; a null
  categorical value is fed as ``""`` (the "missing" category) and an unseen category scores as
  all-zero one-hot (``handle_unknown="ignore"``), exactly as in training; both are counted per
  column over the scored rows (:class:`Feed`), so a user sees how much was imputed or unknown;
- a missing column, or a Parquet column whose type cannot hold the feature (text where a number
  is expected, a float or a date where a category is expected) → :class:`ScoringError` naming the
  partition, the file and the column, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_mlops.core.model.feed import as_inputs, categorical_from_arrow, numeric_from_arrow
from airflow_mlops.core.scoring.io import _is_text_type


@dataclass
class Feed:
    """One batch turned into ONNX inputs, with the rows that must be rejected.

    :param inputs: the ONNX feed (``[N, 1]`` float32 or object-of-str per feature).
    :param reasons: ``None`` when every row scores; else one reason per row (``""``: scores).
    :param missing: per column, rows that score with a missing value (NaN, or the ``""``
        category); rejected rows are not counted; columns with none are left out.
    :param unseen: per categorical column whose trained categories are known, rows that score
        with a category the model was not trained on; columns with none are left out.
    """

    inputs: dict[str, np.ndarray]
    reasons: np.ndarray | None
    missing: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)

    def rejected(self) -> np.ndarray | None:
        """Boolean mask of rejected rows (``None`` when there are none)."""
        return None if self.reasons is None else self.reasons != ""


def _note(reasons: np.ndarray | None, mask: np.ndarray, text: str, n: int) -> np.ndarray:
    if reasons is None:
        reasons = np.full(n, "", dtype=object)
    hit = np.flatnonzero(mask)
    for i in hit:
        reasons[i] = f"{reasons[i]}; {text}" if reasons[i] else text
    return reasons


def _numeric(arr: pa.Array, name: str, reasons: np.ndarray | None, n: int) -> Any:
    column = numeric_from_arrow(arr)
    if column.unparsable is not None:  # CSV text that is no number: the raw text is rejected
        reasons = _note(reasons, column.unparsable, f"non-numeric value in `{name}`", n)
    if column.not_float32 is not None:
        reasons = _note(
            reasons, column.not_float32, f"non-finite or out-of-float32-range value in `{name}`", n
        )
    return column.values, reasons


def build_feed(
    batch: pa.RecordBatch,
    numeric: Sequence[str],
    categorical: Sequence[str],
    keys: Sequence[str],
    known: Mapping[str, pa.Array] | None = None,
) -> Feed:
    """ONNX inputs for ``batch`` straight from its Arrow columns (no pandas on this path but
    CSV text), by the column rules of :mod:`airflow_mlops.core.model.feed`.

    :param known: per categorical column, the categories the model was trained on (a string
        array); unseen values are counted for these columns only.
    """
    n = batch.num_rows
    reasons: np.ndarray | None = None
    for key in keys:
        arr = batch.column(key)
        if arr.null_count:
            mask = arr.is_null().to_numpy(zero_copy_only=False)
            reasons = _note(reasons, mask, f"missing key `{key}`", n)
    values: dict[str, np.ndarray] = {}
    for name in numeric:
        values[name], reasons = _numeric(batch.column(name), name, reasons, n)
    keep = None if reasons is None else reasons == ""
    missing: dict[str, int] = {}
    for name, column in values.items():
        nan = np.isnan(column)
        count = int(np.count_nonzero(nan if keep is None else nan & keep))
        if count:
            missing[name] = count
    words: dict[str, np.ndarray] = {}
    unseen: dict[str, int] = {}
    for name in categorical:
        encoded = _dictionary(batch.column(name))
        words[name] = categorical_from_arrow(encoded)
        _count_categories(encoded, keep, (known or {}).get(name), name, missing, unseen)
    return Feed(as_inputs(values, words), reasons, missing, unseen)


def _dictionary(arr: pa.Array) -> pa.Array:
    """A categorical column dictionary-encoded as :func:`categorical_from_arrow` would encode
    it, so that the feed and the counts share one encoding pass."""
    if pa.types.is_dictionary(arr.type):
        return arr
    if not _is_text_type(arr.type):
        arr = pc.cast(arr, pa.string())
    return pc.dictionary_encode(arr)


def _count_categories(
    encoded: pa.DictionaryArray,
    keep: np.ndarray | None,
    known: pa.Array | None,
    name: str,
    missing: dict[str, int],
    unseen: dict[str, int],
) -> None:
    """Add the scored rows' missing and unseen values of one column: counted per dictionary
    slot (a handful of words), not per row."""
    dictionary = encoded.dictionary
    if dictionary.type != pa.string():  # the known categories are plain strings
        dictionary = pc.cast(dictionary, pa.string())
    size = len(dictionary)
    codes = pc.fill_null(encoded.indices, size).to_numpy(zero_copy_only=False)
    if keep is not None:
        codes = codes[keep]
    per_slot = np.bincount(codes, minlength=size + 1)
    empty = pc.fill_null(pc.equal(dictionary, ""), True).to_numpy(zero_copy_only=False)
    count = int(per_slot[size] + per_slot[:size][empty].sum())
    if count:
        missing[name] = count
    if known is not None:
        trained = pc.fill_null(pc.is_in(dictionary, value_set=known), False)
        new = ~trained.to_numpy(zero_copy_only=False) & ~empty
        count = int(per_slot[:size][new].sum())
        if count:
            unseen[name] = count
