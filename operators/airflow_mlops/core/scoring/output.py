"""Batch scoring's outputs: rejects with their reasons, the monitoring sample (a reservoir),
the key columns carried through, and the atomic writers (lazy for rejects, a writer thread for
predictions); a retried partition first removes its own stale temporaries.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from airflow_mlops.core.data.io import (
    _url_to_fs,
    atomic_output,
    temporary_target,
)
from airflow_mlops.core.scoring.io import _DONE, _is_text_type
from airflow_mlops.core.scoring.types import ScoringError


def rejects_batch(
    batch: pa.RecordBatch, mask: np.ndarray, reasons: np.ndarray, columns: Sequence[str]
) -> pa.RecordBatch:
    """Rejected rows: every input column as text (the raw values) plus ``reject_reason``."""
    picked = batch.filter(pa.array(mask))
    arrays = [pc.cast(picked.column(c), pa.string()) for c in columns]
    arrays.append(pa.array(reasons[mask].tolist(), type=pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=[*columns, "reject_reason"])


def rejects_schema(columns: Sequence[str]) -> pa.Schema:
    """Schema of the rejects file (see :func:`rejects_batch`)."""
    return pa.schema([pa.field(c, pa.string()) for c in [*columns, "reject_reason"]])


class Reservoir:
    """A uniform, seeded sample of at most ``size`` scored rows, kept across batches.

    Each row gets a random key; the sample is the ``size`` rows with the smallest keys (bottom-k
    sampling), so the result does not depend on the batch size, only on the seed and the order
    of the rows.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.table: pa.Table | None = None
        self._pending = np.empty(0)

    def candidates(self, n: int) -> np.ndarray | None:
        """Positions (among the next ``n`` rows) that may enter the sample; draws their keys.

        Call :meth:`add` with exactly these rows next. Only these rows need to be converted,
        so a full sample costs almost nothing per batch.
        """
        if self.size <= 0 or n == 0:
            return None
        keys = self.rng.random(n)
        if len(self.keys) >= self.size:
            keep = np.flatnonzero(keys < self.keys.max())
        else:
            keep = np.arange(n)
        self._pending = keys[keep]
        return keep if len(keep) else None

    def add(self, rows: pa.Table) -> None:
        """Merge the rows picked by the last :meth:`candidates` call."""
        keys = self._pending
        merged = rows if self.table is None else pa.concat_tables([self.table, rows])
        all_keys = np.concatenate([self.keys, keys])
        if len(all_keys) > self.size:
            order = np.sort(np.argpartition(all_keys, self.size - 1)[: self.size])
            merged, all_keys = merged.take(pa.array(order)), all_keys[order]
        self.table, self.keys = merged.combine_chunks(), all_keys

    def result(self) -> pa.Table | None:
        return self.table


def sample_table(
    batch: pa.RecordBatch,
    numeric: Sequence[str],
    categorical: Sequence[str],
    keys: Sequence[str],
    predictions: list[pa.Array],
    prediction_names: list[str],
    key_types: dict[str, pa.DataType],
) -> pa.Table:
    """Rows for the monitoring sample: keys, raw features (numbers as float64), predictions."""
    arrays: list[pa.Array] = [_cast(batch.column(k), key_types.get(k)) for k in keys]
    names = list(keys)
    for col in numeric:
        arr = batch.column(col)
        if _is_text_type(arr.type):
            arr = _parse_float(arr)
        arrays.append(pc.cast(arr, pa.float64(), safe=False))
        names.append(col)
    for col in categorical:
        arr = batch.column(col)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        arrays.append(pc.cast(arr, pa.string()))
        names.append(col)
    return pa.Table.from_arrays([*arrays, *predictions], names=[*names, *prediction_names])


def _parse_float(arr: pa.Array) -> pa.Array:
    import pandas as pd

    parsed = pd.to_numeric(
        pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object), errors="coerce"
    )
    return pa.array(parsed.to_numpy(dtype=np.float64, na_value=np.nan), from_pandas=True)


def _cast(arr: pa.Array, t: pa.DataType | None) -> pa.Array:
    if t is None or arr.type == t:
        return arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return pc.cast(arr, t)


def key_column(batch: pa.RecordBatch, key: str, schema: pa.Schema) -> pa.Array:
    arr = batch.column(key)
    want = schema.field(key).type
    if arr.type == want:
        return arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    try:
        return arr.cast(want)
    except pa.ArrowException as exc:
        raise ScoringError(
            f"key column `{key}` is {arr.type} here but {want} elsewhere: {exc}"
        ) from exc


class LazyWriter:
    """A rejects file opened (atomically) on the first rejected row only."""

    def __init__(self, uri: str, schema: pa.Schema) -> None:
        self.uri, self.schema = uri, schema
        self.opened = False
        self._ctx: Any = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._ctx = atomic_output(self.uri)
            sink = self._ctx.__enter__()
            self._writer = pq.ParquetWriter(sink, self.schema)
            self.opened = True
        self._writer.write_batch(batch)

    def __enter__(self) -> LazyWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._writer is None:
            return
        try:
            self._writer.close()
        except BaseException:
            self._ctx.__exit__(*exc)
            raise
        self._ctx.__exit__(*exc)


def remove_stale_temporaries(uri: str) -> list[str]:
    """Remove what killed tries of ``uri`` left: its :func:`atomic_output` temporaries.

    A task killed mid-partition (SIGKILL, a lost worker) leaves its temporaries beside the
    targets, never renamed and never removed. Only temporaries named for this exact target are
    removed (``.part-0.parquet.<token>.tmp`` for ``part-0.parquet``): another partition's,
    still being written beside it, stays. Works wherever fsspec lists (local, ``s3://``).

    :returns: the paths removed.
    """
    fs, path = _url_to_fs(uri)
    parent, _, base = path.rstrip("/").rpartition("/")
    if not parent:
        return []
    fs.invalidate_cache(parent)  # a listing cached by this process would miss a leftover
    try:
        names = fs.ls(parent, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        if temporary_target(str(name).rstrip("/").rsplit("/", 1)[-1]) == base:
            try:
                fs.rm(name)
            except FileNotFoundError:  # gone meanwhile
                continue
            removed.append(str(name))
    return removed


def remove_if_exists(uri: str) -> None:
    """A previous run's rejects would contradict this run's counts: remove them."""
    fs, path = _url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path)


class BackgroundWriter:
    """``ParquetWriter.write_batch`` in a thread, at most ``depth`` batches behind.

    Closing (leaving the ``with`` block without an error) waits for every batch and closes the
    writer, raising any write error; after an error the queued batches are dropped.
    """

    def __init__(self, writer: pq.ParquetWriter, depth: int = 2) -> None:
        self._writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = False
        self._thread = threading.Thread(target=self._run, name="scoring-writer", daemon=True)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _DONE:
                return
            if self._error is None and not self._abort:
                try:
                    self._writer.write_batch(batch)
                except BaseException as exc:  # raised in the caller on its next call
                    self._error = exc

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch``; raises an earlier batch's write error."""
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def __enter__(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._abort = exc_type is not None  # an error upstream: drop the queued batches
        self._queue.put(_DONE)
        self._thread.join()
        try:
            self._writer.close()
        finally:
            if exc_type is None and self._error is not None:
                raise self._error
