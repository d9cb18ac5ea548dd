"""Request capture: a sampled share of rows written to Parquet by a background thread.

The request path only draws the sample and appends references to a bounded in-memory queue (a
deque: no lock, no wake-up of the writer). When the queue holds ``queue_size`` requests, new
rows are dropped and counted (``mlops_capture_dropped_total``), never waited for. The writer
thread wakes a few times a second, drains the queue, groups rows per version and day, and
writes a file when ``chunk_rows`` rows are buffered or the oldest is ``max_seconds`` old, and
everything left on shutdown. It builds each table with NumPy/Arrow calls only (no per-row
Python loop), so it holds the GIL briefly: with a per-request hand-off and per-row loops,
capturing every row had pushed the single-row p99 from ~6 ms to 25-60 ms. Files land in the
monitoring layout the drift monitor reads::

    {dir}/model={name}/source=online/version={v}/date={YYYY-MM-DD}/part-<ts>-<uuid>.parquet

written under a dot-prefixed ``.tmp`` name and renamed, so a reader never sees half a file.
Rows: the feature columns (numeric as float64 with NaN for missing, categorical as strings with
null for missing), ``prediction``, ``probability_<class>`` per class, ``request_id``,
``timestamp`` (UTC), ``version`` and ``shadow`` (true for rows a shadow version scored and
did not answer).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from airflow_mlops.serving.config import CaptureSpec
from airflow_mlops.serving.feed import Feed
from airflow_mlops.serving.metrics import Metrics
from airflow_mlops.serving.models import ModelMeta

log = logging.getLogger(__name__)

__all__ = ["Capture", "partition_dir"]


def partition_dir(root: str | os.PathLike[str], model: str, version: str, day: str) -> Path:
    """The monitoring-layout folder for one model, version and day (``YYYY-MM-DD``)."""
    return Path(root) / f"model={model}" / "source=online" / f"version={version}" / f"date={day}"


@dataclass
class _Item:
    version: str
    meta: ModelMeta
    numeric: np.ndarray  # float64 [n_numeric, rows]
    categorical: np.ndarray  # object [n_categorical, rows], "" = missing
    labels: np.ndarray
    proba: np.ndarray
    request_id: str
    timestamp: float
    shadow: bool = False


@dataclass
class _Buffer:
    meta: ModelMeta
    items: list[_Item] = field(default_factory=list)
    rows: int = 0
    since: float = field(default_factory=time.monotonic)


class Capture:
    """Samples rows on the request path and writes them from a background thread.

    :param spec: the capture options.
    :param model: the model name (first partition level).
    :param metrics: where written and dropped rows are counted.
    :param seed: seed of the sampling draws (tests).
    """

    def __init__(
        self, spec: CaptureSpec, model: str, metrics: Metrics, seed: int | None = None
    ) -> None:
        self.spec = spec
        self.model = model
        self.metrics = metrics
        self._pending: collections.deque[_Item] = collections.deque()
        self._stopping = threading.Event()
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)
        self._buffers: dict[tuple[str, int], _Buffer] = {}
        self._thread: threading.Thread | None = None
        self.files_written: list[Path] = []

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    def start(self) -> None:
        """Start the writer thread (idempotent).

        The first Arrow table and Parquet write of a process take ~1 s (imports, kernel
        registration) holding the GIL; doing one here, before the server is ready, keeps that
        stall off the first captured requests.
        """
        if self.enabled and self._thread is None:
            _warm_up()
            self._thread = threading.Thread(target=self._run, name="mlops-capture", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything buffered and stop the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None
        self._stopping.clear()

    def offer(
        self,
        version: str,
        meta: ModelMeta,
        feed: Feed,
        labels: np.ndarray,
        proba: np.ndarray,
        request_id: str,
        shadow: bool = False,
    ) -> None:
        """Sample rows of one answered (or mirrored: ``shadow``) request and queue them;
        never blocks."""
        rate = self.spec.sample_rate
        rows = feed.rows
        if rate >= 1.0:
            numeric, categorical = feed.numeric, feed.categorical
        elif rows == 1:
            if self._rng.random() >= rate:
                return
            numeric, categorical = feed.numeric, feed.categorical
        else:
            keep = self._np_rng.random(rows) < rate
            if not keep.any():
                return
            idx = np.flatnonzero(keep)
            numeric = feed.numeric[:, idx]
            categorical = feed.categorical[:, idx]
            labels, proba = labels[idx], proba[idx]
        item = _Item(
            version, meta, numeric, categorical, labels, proba, request_id, time.time(), shadow
        )
        # Only the event loop appends, so the length check cannot race another producer.
        if len(self._pending) >= self.spec.queue_size:
            self.metrics.dropped(len(labels))
        else:
            self._pending.append(item)

    def _run(self) -> None:
        tick = min(self.spec.max_seconds, 0.25)
        while not self._stopping.wait(tick):
            self._drain()
            self._flush(final=False)
        self._drain()
        self._flush(final=True)

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            item = pending.popleft()
            day = int(item.timestamp // 86_400)  # UTC day number; formatted once per file
            buf = self._buffers.get((item.version, day))
            if buf is None:
                buf = self._buffers[(item.version, day)] = _Buffer(item.meta)
            buf.items.append(item)
            buf.rows += len(item.labels)

    def _flush(self, final: bool) -> None:
        now = time.monotonic()
        for key, buf in list(self._buffers.items()):
            if not buf.rows:
                continue
            if (
                final
                or buf.rows >= self.spec.chunk_rows
                or now - buf.since >= self.spec.max_seconds
            ):
                self._write(key, buf, final)

    def _write(self, key: tuple[str, int], buf: _Buffer, final: bool) -> None:
        version, day_number = key
        day = datetime.fromtimestamp(day_number * 86_400, UTC).strftime("%Y-%m-%d")
        aged = time.monotonic() - buf.since >= self.spec.max_seconds
        items, buf.items, buf.rows, buf.since = buf.items, [], 0, time.monotonic()
        try:
            table = _table(buf.meta, version, items)
        except Exception:  # a bug here must not kill the thread; the rows are counted lost
            log.exception("capture: could not build a table for version %s", version)
            self.metrics.dropped(sum(len(i.labels) for i in items))
            return
        chunk = self.spec.chunk_rows
        start = 0
        while start < table.num_rows:
            piece = table.slice(start, chunk)
            if piece.num_rows < chunk and not (final or aged):
                # A short tail waits for more rows: keep chunks at chunk_rows where possible.
                break
            self._write_file(version, day, piece)
            start += piece.num_rows
        if start < table.num_rows:
            rest = table.slice(start)
            buf.items = [_TableItem(rest)]  # type: ignore[list-item]
            buf.rows = rest.num_rows

    def _write_file(self, version: str, day: str, table: Any) -> None:
        import pyarrow.parquet as pq

        folder = partition_dir(self.spec.dir or ".", self.model, version, day)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = folder / f".{name}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, tmp)
            os.replace(tmp, folder / name)
        except OSError:
            log.exception("capture: could not write %s", folder / name)
            tmp.unlink(missing_ok=True)
            self.metrics.dropped(table.num_rows)
            return
        self.files_written.append(folder / name)
        self.metrics.captured(version, table.num_rows)


@dataclass
class _TableItem:
    """Rows carried over between writes, already as a table."""

    table: Any

    @property
    def labels(self) -> range:
        return range(self.table.num_rows)


def _warm_up() -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = np.array(["a", ""], dtype=object)
    table = pa.table({"s": _strings(strings), "x": pa.array(np.zeros(2))})
    pq.write_table(table, io.BytesIO())


def _strings(values: np.ndarray) -> Any:
    """An Arrow string column with ``""`` (the fed "missing") back as null."""
    import pyarrow as pa

    return pa.array(values, type=pa.string(), mask=values == "")


def _table(meta: ModelMeta, version: str, items: list[Any]) -> Any:
    import pyarrow as pa

    carried = [i.table for i in items if isinstance(i, _TableItem)]
    fresh = [i for i in items if isinstance(i, _Item)]
    tables = list(carried)
    if fresh:
        numeric = np.concatenate([i.numeric for i in fresh], axis=1)
        cols: dict[str, Any] = {
            name: pa.array(numeric[k], type=pa.float64())
            for k, name in enumerate(meta.numeric_features)
        }
        if meta.categorical_features:
            strings = np.concatenate([i.categorical for i in fresh], axis=1)
            for k, name in enumerate(meta.categorical_features):
                cols[name] = _strings(strings[k])
        labels = np.concatenate([i.labels for i in fresh])
        cols["prediction"] = pa.array(labels)
        proba = np.concatenate([i.proba for i in fresh], axis=0).astype(np.float64)
        for k, cls in enumerate(meta.classes):
            cols[f"probability_{cls}"] = pa.array(proba[:, k])
        counts = np.fromiter((len(i.labels) for i in fresh), dtype=np.int64, count=len(fresh))
        ids = np.array([i.request_id for i in fresh], dtype=object)
        cols["request_id"] = pa.array(np.repeat(ids, counts), type=pa.string())
        stamps = np.array([int(i.timestamp * 1e6) for i in fresh], dtype=np.int64)
        cols["timestamp"] = pa.array(np.repeat(stamps, counts), type=pa.timestamp("us", tz="UTC"))
        cols["version"] = pa.array(np.full(len(labels), version, dtype=object), type=pa.string())
        shadow = np.array([i.shadow for i in fresh], dtype=bool)
        cols["shadow"] = pa.array(np.repeat(shadow, counts), type=pa.bool_())
        tables.append(pa.table(cols))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
