"""Shadow scoring: the answered rows scored again by the shadow version, never returned.

Small batches are scored inline after the answer (a few microseconds of ONNX Runtime, cheaper
than a thread hop). Larger ones go to one worker thread through a queue of depth 1, so a
mirrored 1,000-row batch never stalls the event loop (ONNX Runtime releases the GIL while it
runs); when the worker is busy and one batch already waits, the new one is dropped and counted
(``mlops_shadow_dropped_total``): the shadow is a measurement, never back-pressure on the
answered traffic. The worker hands its result back to the event loop, which alone updates the
metrics and the capture queue (both assume a single writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from airflow_mlops.serving.capture import Capture
from airflow_mlops.serving.feed import Feed, build_feed
from airflow_mlops.serving.metrics import Metrics
from airflow_mlops.serving.models import LoadedVersion
from airflow_mlops.serving.protocol import ColumnBatch, ProtocolError

log = logging.getLogger(__name__)

__all__ = ["INLINE_ROWS", "Shadow"]

# Batches up to this many rows are scored inline (see the module docstring).
INLINE_ROWS = 64

_Scored = tuple[Feed, Any, Any] | str  # (feed, labels, probabilities) or an error reason


class Shadow:
    """Mirrors answered requests to a shadow version.

    :param metrics: where agreement, errors and drops are counted.
    :param capture: where the shadow's rows are offered (``shadow=True``).
    """

    def __init__(self, metrics: Metrics, capture: Capture) -> None:
        self.metrics = metrics
        self.capture = capture
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def mirror(
        self,
        shadow: LoadedVersion,
        answered: LoadedVersion,
        batch: ColumnBatch,
        feed: Feed,
        labels: list[Any],
        request_id: str,
    ) -> None:
        """Score ``feed``'s rows with ``shadow`` (inline or in the worker); call on the loop."""
        if feed.rows <= INLINE_ROWS:
            self._record(shadow, labels, request_id, _score(shadow, answered, batch, feed))
            return
        loop = self._loop = self._loop or asyncio.get_running_loop()

        def job() -> None:
            result = _score(shadow, answered, batch, feed)
            # A loop closed meanwhile (shutdown) raises RuntimeError: nothing left to record.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._record, shadow, labels, request_id, result)

        self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.metrics.shadow_busy(shadow.version)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batches queued and stop the worker (blocking)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None, timeout=timeout)
        thread.join(timeout)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlops-shadow", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a bug in one batch must not stop the shadow for good
                log.exception("shadow scoring failed")

    def _record(
        self, shadow: LoadedVersion, labels: list[Any], request_id: str, result: _Scored
    ) -> None:
        version = shadow.version
        if isinstance(result, str):
            self.metrics.error(version, result)
            return
        shadow_feed, s_labels, s_proba = result
        s_list = s_labels.tolist()
        agree = sum(1 for a, b in zip(labels, s_list, strict=True) if a == b)
        self.metrics.shadowed(version, agree, len(s_list) - agree)
        if self.capture.enabled:
            self.capture.offer(
                version, shadow.meta, shadow_feed, s_labels, s_proba, request_id, shadow=True
            )


def _score(
    shadow: LoadedVersion, answered: LoadedVersion, batch: ColumnBatch, feed: Feed
) -> _Scored:
    """``(feed, labels, probabilities)`` of the shadow, or the error reason it failed with."""
    try:
        if shadow.meta.input_types == answered.meta.input_types:
            shadow_feed = feed
        else:
            shadow_feed = build_feed(batch, shadow.meta, "ignore")
        s_labels, s_proba = shadow.run(shadow_feed.inputs)
    except ProtocolError as exc:
        return f"shadow_{exc.reason}"
    except Exception:
        # Counted per request (mlops_request_errors_total); a traceback each time would flood.
        log.debug("shadow version %s failed to score", shadow.version, exc_info=True)
        return "shadow_failed"
    return shadow_feed, s_labels, s_proba
