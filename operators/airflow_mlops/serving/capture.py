"""Request capture: a sampled share of rows written to Parquet by a background thread.

The request path only draws the sample and puts references on a bounded queue
(``put_nowait``); when the queue is full the rows are dropped and counted
(``mlops_capture_dropped_total``), so capture never slows or blocks an answer. The writer thread
groups rows per version and day and writes a file when ``chunk_rows`` rows are buffered or the
oldest is ``max_seconds`` old, and everything left on shutdown. Files land in the monitoring
layout the drift monitor reads::

    {dir}/model={name}/source=online/version={v}/date={YYYY-MM-DD}/part-<ts>-<uuid>.parquet

written under a dot-prefixed ``.tmp`` name and renamed, so a reader never sees half a file.
Rows: the feature columns (numeric as float64 with NaN for missing, categorical as strings with
null for missing), ``prediction``, ``probability_<class>`` per class, ``request_id``,
``timestamp`` (UTC), ``version`` and ``shadow`` (true for rows a shadow version scored and
did not answer).
"""

from __future__ import annotations

import logging
import os
import queue
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
from airflow_mlops.serving.metrics import Metrics
from airflow_mlops.serving.models import ModelMeta
from airflow_mlops.serving.protocol import Feed

log = logging.getLogger(__name__)

__all__ = ["Capture", "partition_dir"]


def partition_dir(root: str | os.PathLike[str], model: str, version: str, day: str) -> Path:
    """The monitoring-layout folder for one model, version and day (``YYYY-MM-DD``)."""
    return Path(root) / f"model={model}" / "source=online" / f"version={version}" / f"date={day}"


@dataclass
class _Item:
    version: str
    meta: ModelMeta
    numeric: np.ndarray  # [n_numeric, rows]
    categorical: list[list[Any]]
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
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=spec.queue_size)
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._thread: threading.Thread | None = None
        self.files_written: list[Path] = []

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlops-capture", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything buffered and stop the thread."""
        if self._thread is None:
            return
        # The sentinel must get through even when the queue is full: wait for room.
        self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

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
            categorical = [[col[i] for i in idx] for col in feed.categorical]
            labels, proba = labels[idx], proba[idx]
        item = _Item(
            version, meta, numeric, categorical, labels, proba, request_id, time.time(), shadow
        )
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.metrics.dropped(len(labels))

    def _run(self) -> None:
        tick = min(self.spec.max_seconds, 1.0)
        while True:
            try:
                item = self._queue.get(timeout=tick)
            except queue.Empty:
                item = _Tick
            if item is None:
                self._flush(final=True)
                return
            if item is not _Tick:
                assert isinstance(item, _Item)
                day = datetime.fromtimestamp(item.timestamp, UTC).strftime("%Y-%m-%d")
                buf = self._buffers.get((item.version, day))
                if buf is None:
                    buf = self._buffers[(item.version, day)] = _Buffer(item.meta)
                buf.items.append(item)
                buf.rows += len(item.labels)
            self._flush(final=False)

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

    def _write(self, key: tuple[str, str], buf: _Buffer, final: bool) -> None:
        version, day = key
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


class _TickType:
    pass


_Tick: Any = _TickType()


@dataclass
class _TableItem:
    """Rows carried over between writes, already as a table."""

    table: Any

    @property
    def labels(self) -> range:
        return range(self.table.num_rows)


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
        for k, name in enumerate(meta.categorical_features):
            cols[name] = pa.array([v for i in fresh for v in i.categorical[k]], type=pa.string())
        labels = np.concatenate([i.labels for i in fresh])
        cols["prediction"] = pa.array(labels.tolist())
        proba = np.concatenate([i.proba for i in fresh], axis=0).astype(np.float64)
        for k, cls in enumerate(meta.classes):
            cols[f"probability_{cls}"] = pa.array(proba[:, k])
        counts = [len(i.labels) for i in fresh]
        cols["request_id"] = pa.array(
            [i.request_id for i, n in zip(fresh, counts, strict=True) for _ in range(n)],
            type=pa.string(),
        )
        stamps = np.repeat([int(i.timestamp * 1e6) for i in fresh], counts)
        cols["timestamp"] = pa.array(stamps, type=pa.timestamp("us", tz="UTC"))
        cols["version"] = pa.array([version] * len(labels), type=pa.string())
        cols["shadow"] = pa.array(np.repeat([i.shadow for i in fresh], counts), type=pa.bool_())
        tables.append(pa.table(cols))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
