"""The I/O half of batch scoring: stream input batches, build ONNX feeds from Arrow, sample.

Kept apart from :mod:`airflow_mlops.core.scoring` (the loop, the result, the DAG helpers) so
that each stays small. Nothing here holds more than one batch of input at a time.

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

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from airflow_mlops.core.data.io import (
    DataError,
    _data_files,
    _detect_format,
    _reason,
    _url_to_fs,
    atomic_output,
    shown,
    temporary_target,
)
from airflow_mlops.core.model.feed import as_inputs, categorical_from_arrow, numeric_from_arrow
from airflow_mlops.core.scoring.types import ScoringError

__all__ = [
    "BackgroundWriter",
    "Feed",
    "InputSource",
    "LazyWriter",
    "Prefetch",
    "Reservoir",
    "build_feed",
    "key_column",
    "rejects_batch",
    "rejects_schema",
    "remove_if_exists",
    "remove_stale_temporaries",
    "sample_table",
]


def _is_numeric_type(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )


def _is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_category_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_category_type(t.value_type)
    return (
        _is_text_type(t)
        or pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or (pa.types.is_null(t))
    )


def _hive_values(relative: str) -> dict[str, str]:
    """``date=2024-01-01/region=north/part-0.parquet`` → ``{"date": ..., "region": "north"}``."""
    out = {}
    for part in relative.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = value
    return out


@dataclass(frozen=True)
class _File:
    path: str
    hive: dict[str, str]


class InputSource:
    """The files of one partition (a file, a folder, a hive dataset; Parquet or CSV).

    :param uri: local path or fsspec URI.
    :param numeric: numeric feature columns.
    :param categorical: categorical feature columns.
    :param keys: key columns carried to the output.
    :param batch_rows: most rows per batch.
    :param label: the partition name used in messages.
    :param format: ``auto``, ``parquet`` or ``csv``.
    """

    def __init__(
        self,
        uri: str,
        numeric: Sequence[str],
        categorical: Sequence[str],
        keys: Sequence[str],
        batch_rows: int,
        label: str,
        format: str = "auto",
    ) -> None:
        self.uri = uri
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.keys = list(keys)
        self.columns = list(dict.fromkeys([*self.keys, *self.numeric, *self.categorical]))
        self.batch_rows = batch_rows
        self.label = label
        self.fs, path = _url_to_fs(uri)
        try:
            names, is_dir = _data_files(self.fs, path, uri)
        except DataError as exc:
            raise ScoringError(f"partition {label}: {exc}") from exc
        base = path.rstrip("/") + "/"
        self.files = [
            _File(name, _hive_values(name[len(base) :]) if is_dir else {}) for name in names
        ]
        self.format = _detect_format(names, format, uri)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.key_types: dict[str, pa.DataType] = {}
        self.rows_expected: int | None = None

    def _where(self, f: _File) -> str:
        return f"partition {self.label}: {shown(self.fs, f.path, self.uri)}"

    def _open_parquet(self, f: _File, dictionary: bool = False) -> pq.ParquetFile:
        source: Any = f.path if self.local else self.fs.open(f.path, "rb")
        # Categories come out dictionary-encoded, as Parquet stores them: the feed then maps a
        # handful of words instead of decoding one string per row.
        words = [c for c in self.categorical if c not in f.hive] if dictionary else None
        try:
            return pq.ParquetFile(source, read_dictionary=words, pre_buffer=True)
        except (pa.ArrowException, OSError) as exc:
            raise ScoringError(
                f"{self._where(f)} is not a readable Parquet file: {_err(exc)}"
            ) from exc

    def check(self) -> None:
        """Open every file's footer and check columns and types before anything is written."""
        if self.format == "csv":
            return  # CSV has no schema: types are checked value by value while streaming.
        total = 0
        for f in self.files:
            pf = self._open_parquet(f)
            schema = pf.schema_arrow
            total += pf.metadata.num_rows
            missing = [c for c in self.columns if c not in schema.names and c not in f.hive]
            if missing:
                raise ScoringError(
                    f"{self._where(f)}: missing column(s) {missing}; columns present: "
                    f"{schema.names}"
                )
            for col in self.numeric:
                if col in f.hive:
                    continue
                t = schema.field(col).type
                if not _is_numeric_type(t):
                    raise ScoringError(
                        f"{self._where(f)}: column `{col}` is {t} but the model expects a "
                        "number (integer, float, boolean or decimal)"
                    )
            for col in self.categorical:
                if col in f.hive:
                    continue
                t = schema.field(col).type
                if not _is_category_type(t):
                    raise ScoringError(
                        f"{self._where(f)}: column `{col}` is {t} but the model expects a "
                        "category (string, integer or boolean)"
                    )
            for col in self.keys:
                t = pa.string() if col in f.hive else schema.field(col).type
                self.key_types.setdefault(col, t)
        self.rows_expected = total

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches of the needed columns, one Parquet row group at a time."""
        for f in self.files:
            if self.format == "csv":
                yield from self._csv_batches(f)
                continue
            pf = self._open_parquet(f, dictionary=True)
            wanted = [c for c in self.columns if c not in f.hive]
            for group in range(pf.num_row_groups):
                try:
                    it = pf.iter_batches(
                        batch_size=self.batch_rows,
                        row_groups=[group],
                        columns=wanted,
                        use_threads=False,
                    )
                    for batch in it:
                        yield _with_hive(batch, f.hive, self.columns)
                except (pa.ArrowException, OSError) as exc:
                    raise ScoringError(
                        f"{self._where(f)}: cannot read row group {group}: {_err(exc)}"
                    ) from exc

    def _csv_batches(self, f: _File) -> Iterator[pa.RecordBatch]:
        from pyarrow import csv

        wanted = [c for c in self.columns if c not in f.hive]
        # Numbers and categories are read as text: a bad value becomes a reject, not a failed
        # partition, and the raw text goes to the rejects file.
        types = {c: pa.string() for c in (*self.numeric, *self.categorical)}
        try:
            handle = self.fs.open(f.path, "rb", compression="infer")
            reader = csv.open_csv(
                handle,
                read_options=csv.ReadOptions(block_size=1 << 22),
                convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True),
            )
            present = reader.schema.names
            missing = [c for c in wanted if c not in present]
            if missing:
                raise ScoringError(
                    f"{self._where(f)}: missing column(s) {missing}; columns present: {present}"
                )
            for col in self.keys:
                if col not in f.hive:
                    self.key_types.setdefault(col, reader.schema.field(col).type)
            with handle:
                for batch in reader:
                    batch = batch.select(wanted)
                    for start in range(0, batch.num_rows, self.batch_rows):
                        yield _with_hive(batch.slice(start, self.batch_rows), f.hive, self.columns)
        except (pa.ArrowException, OSError) as exc:
            raise ScoringError(f"{self._where(f)} is not a readable CSV file: {_err(exc)}") from exc


def _err(exc: Exception) -> str:
    return _reason(exc) if isinstance(exc, OSError) else str(exc)


def _with_hive(batch: pa.RecordBatch, hive: dict[str, str], columns: list[str]) -> pa.RecordBatch:
    if not hive:
        return batch
    arrays = []
    for col in columns:
        if col in hive and col not in batch.schema.names:
            arrays.append(pa.repeat(hive[col], batch.num_rows))
        else:
            arrays.append(batch.column(col))
    return pa.RecordBatch.from_arrays(arrays, names=columns)


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


_DONE = object()


class Prefetch:
    """Run an iterator in a thread, ``depth`` items ahead of the consumer (a context manager).

    The thread's exception is raised in the consumer at the point the item would have come;
    leaving the ``with`` block early stops the thread at its next item. Only useful when the
    producer spends its time in code that releases the GIL (Arrow decoding).
    """

    def __init__(self, items: Iterator[Any], depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scoring-reader", daemon=True)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
            return
        self._put(_DONE)

    def __enter__(self) -> Prefetch:
        self._thread.start()
        return self

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self) -> Any:
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)  # later calls end too
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


@dataclass
class _Failure:
    exc: BaseException


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
