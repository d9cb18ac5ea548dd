"""A request-head deadline for uvicorn's HTTP protocols (uvicorn has none).

uvicorn 0.3x-0.5x arms ``timeout_keep_alive`` only after a response, and every received byte
cancels it: a connection that opens and sends nothing, or trickles a request head one header
line at a time (slow loris), is held forever. The protocol subclass here arms one timer when a
connection opens and when the first byte of a new request arrives, and cancels it only when
the head is complete (the protocol then has a new request cycle): the head must arrive whole
within ``header_timeout``, however slowly it trickles. It also closes a connection whose head
grows past ``max_header_bytes`` (httptools sets no limit of its own).

The body is bounded in the app (:func:`airflow_mlops.serving.http.read_body`), idle keep-alive
by uvicorn's ``timeout_keep_alive``, the number of connections by its ``limit_concurrency``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow_mlops.serving.config import ConnectionsSpec

log = logging.getLogger(__name__)

__all__ = ["protocol_class"]

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


def _base() -> type[asyncio.Protocol]:
    """The protocol uvicorn's ``http="auto"`` picks: httptools when installed, else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return HttpToolsProtocol


def protocol_class(spec: ConnectionsSpec) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class (``uvicorn.run(http=...)``) enforcing ``spec``'s head
    deadline and size."""
    base: Any = _base()
    header_timeout = spec.header_timeout
    max_header_bytes = spec.max_header_bytes

    class HeadDeadlineProtocol(base):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            waiting = cycle is None or cycle.response_complete  # between requests: a head
            if waiting and self._head_timer is None:
                self._arm_head_timer()
            super().data_received(data)
            if not waiting:
                return
            if self.cycle is not cycle:  # the head is complete: a new request cycle started
                self._cancel_head_timer()
                return
            # Counted only while the head is incomplete: body bytes in the same read are not.
            self._head_bytes += len(data)
            if self._head_bytes > max_header_bytes and not self.transport.is_closing():
                log.info(
                    "closing a connection whose request head exceeds %d bytes", max_header_bytes
                )
                self._cancel_head_timer()
                self.transport.write(_TOO_LARGE)
                self.transport.close()

        def _arm_head_timer(self) -> None:
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            self._head_bytes = 0
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                log.info(
                    "closing a connection from %s: no complete request head within %g s",
                    self.client,
                    header_timeout,
                )
                self.transport.close()

    return HeadDeadlineProtocol
