"""Small raw-ASGI helpers: read a bounded body, send a complete response."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from airflow_mlops.serving import protocol
from airflow_mlops.serving.protocol import ProtocolError

__all__ = ["JSON_HEADER", "Receive", "Scope", "Send", "read_body", "respond", "v2_error"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON_HEADER = (b"content-type", b"application/json")


async def read_body(
    receive: Receive, length: bytes | None, limit: int, timeout: float | None = None
) -> bytes:
    """The request body, refused past ``limit`` bytes (Content-Length first, then as read) or
    when it has not arrived whole within ``timeout`` seconds (408: uvicorn has no body read
    timeout, and a stalled body would hold its connection and this task forever)."""
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ProtocolError(f"bad Content-Length {length!r}") from None
        if declared > limit:
            raise ProtocolError(
                f"request body of {declared} bytes exceeds the limit of {limit} bytes",
                status=413,
                error_code=protocol.LIMIT,
                reason="body_too_large",
            )
    if timeout is None:
        return await _read(receive, limit)
    try:
        async with asyncio.timeout(timeout):
            return await _read(receive, limit)
    except TimeoutError:
        raise ProtocolError(
            f"request body not received within {timeout:g} s",
            status=408,
            error_code="REQUEST_TIMEOUT",
            reason="body_timeout",
        ) from None


async def _read(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError(
                f"request body exceeds the limit of {limit} bytes",
                status=413,
                error_code=protocol.LIMIT,
                reason="body_too_large",
            )
        parts.append(chunk)
        if not message.get("more_body"):
            # One message is the common case: its body as it came, no join.
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    # An explicit length spares the server chunked encoding.
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def v2_error(send: Send, status: int, message: str) -> None:
    await respond(send, status, protocol.dumps({"error": message}), [JSON_HEADER])
