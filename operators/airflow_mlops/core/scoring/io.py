"""Batch scoring's input: stream a partition's files (Parquet one row group at a time, CSV
streamed) as Arrow batches of the model's columns, on a reader thread.

A missing column, or a Parquet column whose type cannot hold the feature (text where a number
is expected, a float or a date where a category is expected), is a :class:`ScoringError`
naming the partition, the file and the column, before anything is written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from airflow_mlops.core.data.io import (
    DataError,
    _data_files,
    _detect_format,
    _reason,
    _url_to_fs,
    shown,
)
from airflow_mlops.core.scoring.types import ScoringError


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


_DONE = object()


@dataclass
class _Failure:
    exc: BaseException


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
