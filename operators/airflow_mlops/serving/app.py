"""The scoring server: a raw ASGI app on ONNX Runtime.

Raw ASGI, not a framework router: the work per single-row request (parse, check, ~6 µs of ONNX
Runtime, serialise) is a few tens of microseconds, and a framework's request/response objects
and middleware would cost more than that. Endpoints:

- ``POST /invocations`` — MLflow scoring protocol (``mlflow models serve`` clients);
- ``POST /v2/models/{name}/infer``, ``POST /v2/models/{name}/versions/{v}/infer`` (forced
  version), ``GET /v2/models/{name}[/versions/{v}][/ready]``, ``GET /v2``,
  ``GET /v2/health/{ready,live}`` — Open Inference Protocol (KServe v2);
- ``GET /health`` (and ``/ping``): 200 once every configured version is loaded, 503 before;
- ``GET /metrics`` — Prometheus text;
- ``GET|PUT /admin/routes`` — see ``admin.py`` (off until a token is configured).

Every prediction answers ``X-Model-Name``, ``X-Model-Version`` and ``X-Request-ID``. Error
bodies never carry exception text, file paths or addresses: a 500 names the request id, and
the server log has the detail under the same id.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import random
import time
from typing import Any

from airflow_mlops.serving import protocol
from airflow_mlops.serving.admin import Admin
from airflow_mlops.serving.capture import Capture
from airflow_mlops.serving.config import ServingConfig
from airflow_mlops.serving.feed import Feed, build_feed
from airflow_mlops.serving.http import (
    JSON_HEADER,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    v2_error,
)
from airflow_mlops.serving.metrics import Metrics
from airflow_mlops.serving.models import LoadedVersion
from airflow_mlops.serving.protocol import ColumnBatch, ProtocolError
from airflow_mlops.serving.repository import VersionRepository
from airflow_mlops.serving.routing import RoutingTable
from airflow_mlops.serving.shadow import INLINE_ROWS, Shadow

log = logging.getLogger(__name__)

__all__ = ["ScoringApp", "create_app"]

# Batches above INLINE_ROWS rows run in a worker thread (ORT releases the GIL) so a large
# request does not stall the event loop; smaller ones are cheaper inline than a thread hop.
_CLOSE = (b"connection", b"close")


class ScoringApp:
    """The ASGI application for one model name and its versions.

    :param config: the serving config.
    :param seed: seed of the routing, shadow and capture draws (tests).
    """

    def __init__(self, config: ServingConfig, seed: int | None = None) -> None:
        self.config = config
        self.model = config.model
        self.metrics = Metrics(config.model)
        self.capture = Capture(config.capture, config.model, self.metrics, seed=seed)
        self.repository = VersionRepository(config, self.metrics)
        self.ready = False
        self.admin = Admin(self.repository, config.admin, config.connections.body_timeout)
        self.shadow = Shadow(self.metrics, self.capture)
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._model_b = config.model.encode()
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def versions(self) -> dict[str, LoadedVersion]:
        """The loaded versions (held by :attr:`repository`)."""
        return self.repository.versions

    @property
    def table(self) -> RoutingTable:
        """The routing table now in use."""
        return self.repository.table

    def startup(self) -> None:
        """Load every configured version (:meth:`VersionRepository.load_configured`), start
        capture (blocking)."""
        self.repository.load_configured()
        self.capture.start()
        self.ready = True

    def shutdown(self) -> None:
        """Stop taking traffic, finish shadow batches, write captured rows and remove the
        versions' downloads (blocking)."""
        self.ready = False
        self.shadow.stop()
        self.capture.stop()
        self.repository.close()

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(self.startup)
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise  # servers (uvicorn) expect the app to raise after a failed startup
                # Startup objects (sessions, metadata, imports) never die: move them out of
                # the collector's generations so collections under load scan less.
                gc.collect()
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST":
            if path == "/invocations":
                return await self._predict(scope, receive, send, "mlflow", None)
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                return await self._v2_infer(scope, receive, send, path)
        elif method == "GET":
            if path == "/metrics":
                body = self.metrics.render().encode()
                return await respond(
                    send, 200, body, [(b"content-type", b"text/plain; version=0.0.4")]
                )
            if path in ("/health", "/ping"):
                return await respond(send, 200 if self.ready else 503, b"\n", [JSON_HEADER])
            if path.startswith("/v2"):
                return await self._v2_get(send, path)
        if path.startswith("/admin/"):
            request_id = self._request_headers(scope)[2]
            status, doc, extra = await self.admin.handle(scope, receive, method, path, request_id)
            headers = [JSON_HEADER, (b"x-request-id", request_id.encode()), *extra]
            return await respond(send, status, protocol.dumps(doc), headers)
        known = path in ("/invocations", "/metrics", "/health", "/ping") or path.startswith("/v2")
        status = 405 if known else 404
        return await respond(
            send,
            status,
            protocol.dumps(
                {"error_code": "ENDPOINT_NOT_FOUND", "message": f"{method} {path} is not served"}
            ),
            [JSON_HEADER],
        )

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        parts = path.strip("/").split("/")  # v2 models <name> [versions <v>] infer
        forced = None
        if len(parts) == 6 and parts[3] == "versions":
            forced = parts[4]
        elif len(parts) != 4:
            return await v2_error(send, 404, f"no such endpoint {path}")
        if parts[2] != self.model:
            return await v2_error(
                send,
                404,
                f"model {parts[2]!r} is not served here (this server serves {self.model!r})",
            )
        if forced is not None and forced not in self.versions:
            return await v2_error(
                send,
                404,
                f"version {forced!r} of {self.model} is not loaded;"
                f" loaded: {sorted(self.versions)}",
            )
        return await self._predict(scope, receive, send, "v2", forced)

    async def _v2_get(self, send: Send, path: str) -> None:
        parts = path.strip("/").split("/")
        if parts == ["v2"]:
            from airflow_mlops import __version__

            doc: dict[str, Any] = {
                "name": "airflow-mlops",
                "version": __version__,
                "extensions": [],
            }
            return await respond(send, 200, protocol.dumps(doc), [JSON_HEADER])
        if parts == ["v2", "health", "live"]:
            return await respond(send, 200, b'{"live":true}', [JSON_HEADER])
        if parts == ["v2", "health", "ready"]:
            return await respond(
                send,
                200 if self.ready else 503,
                protocol.dumps({"ready": self.ready}),
                [JSON_HEADER],
            )
        if len(parts) >= 3 and parts[1] == "models":
            if parts[2] != self.model:
                return await v2_error(send, 404, f"model {parts[2]!r} is not served here")
            rest = parts[3:]
            want_ready = bool(rest) and rest[-1] == "ready"
            rest = rest[:-1] if want_ready else rest
            if rest and (len(rest) != 2 or rest[0] != "versions"):
                return await v2_error(send, 404, f"no such endpoint {path}")
            version = rest[1] if rest else self.repository.default_version()
            lv = self.versions.get(version) if version else None
            if lv is None:
                return await v2_error(
                    send, 404, f"version {version!r} is not loaded; loaded: {sorted(self.versions)}"
                )
            if want_ready:
                return await respond(
                    send,
                    200,
                    protocol.dumps({"name": self.model, "version": version, "ready": True}),
                    [JSON_HEADER],
                )
            doc = protocol.v2_metadata(self.model, lv.meta, sorted(self.versions), lv.label_kind)
            return await respond(send, 200, protocol.dumps(doc), [JSON_HEADER])
        return await v2_error(send, 404, f"no such endpoint {path}")

    # -- prediction --------------------------------------------------------------------------

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send, proto: str, forced: str | None
    ) -> None:
        started = time.perf_counter()
        repo = self.repository
        table = repo.table  # read once: a concurrent swap cannot change it under this request
        versions = repo.versions
        version = forced if forced is not None else table.choose(self._rng.random())
        lv = versions[version]
        length, content_type, request_id = self._request_headers(scope)
        try:
            batch, feed, labels, proba = await self._score(receive, proto, content_type, length, lv)
            if proto == "mlflow":
                payload = protocol.mlflow_response(labels, proba, lv.meta.classes)
            else:
                payload = protocol.v2_response(
                    self.model, version, batch, labels, proba, lv.label_kind
                )
        except ProtocolError as exc:
            self.metrics.error(version, exc.reason)
            await self._error(send, exc, proto, version, request_id)
            self.metrics.observe(version, proto, exc.status, time.perf_counter() - started)
            return
        except Exception:  # the server stays up; the log says what broke, the body only where
            log.exception("request %s: prediction failed on version %s", request_id, version)
            self.metrics.error(version, "internal")
            err = ProtocolError(
                f"prediction failed on version {version}; the server log has the detail "
                f"(request id {request_id})",
                status=500,
                error_code="INTERNAL_ERROR",
                reason="internal",
            )
            await self._error(send, err, proto, version, request_id)
            self.metrics.observe(version, proto, 500, time.perf_counter() - started)
            return
        await self._answer(send, payload, version, request_id)
        self.metrics.observe(version, proto, 200, time.perf_counter() - started)
        label_list = labels.tolist()
        self.metrics.predicted(version, label_list)
        if self.capture.enabled:
            self.capture.offer(version, lv.meta, feed, labels, proba, request_id)
        shadow = table.shadow_for(version, self._rng.random()) if table.shadow else None
        if shadow is not None:
            self._mirror(versions, shadow, batch, feed, lv, label_list, request_id)

    def _request_headers(self, scope: Scope) -> tuple[bytes | None, bytes | None, str]:
        """``(content-length, content-type, request id)``; the id is made when not sent."""
        request_id = None
        content_type = None
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
        if request_id is None:
            request_id = f"{self._id_prefix}-{next(self._ids)}"
        return length, content_type, request_id

    async def _score(
        self,
        receive: Receive,
        proto: str,
        content_type: bytes | None,
        length: bytes | None,
        lv: LoadedVersion,
    ) -> tuple[ColumnBatch, Feed, Any, Any]:
        """Read and check the request, run the version: ``(batch, feed, labels, probabilities)``.

        :raises ProtocolError: a body the protocol refuses (the status says why).
        """
        if (
            proto == "mlflow"
            and content_type is not None
            and not content_type.startswith(b"application/json")
        ):
            raise ProtocolError(
                f"content type {content_type.decode('latin-1')!r} is not supported; send "
                "application/json (dataframe_split, dataframe_records, instances, inputs)",
                status=415,
                reason="content_type",
            )
        body = await read_body(
            receive, length, self.config.limits.max_body_bytes, self.config.connections.body_timeout
        )
        doc = protocol.loads(body)
        limit = self.config.limits.max_rows
        if proto == "mlflow":
            batch = protocol.mlflow_columns(doc, limit)
        else:
            batch = protocol.v2_columns(doc, lv.meta, limit)
        feed = build_feed(batch, lv.meta, self.config.extra_columns)
        if feed.rows <= INLINE_ROWS:
            labels, proba = lv.run(feed.inputs)
        else:
            labels, proba = await asyncio.to_thread(lv.run, feed.inputs)
        return batch, feed, labels, proba

    async def _answer(self, send: Send, payload: bytes, version: str, request_id: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    JSON_HEADER,
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-model-name", self._model_b),
                    (b"x-model-version", version.encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _mirror(
        self,
        versions: dict[str, LoadedVersion],
        shadow: str,
        batch: ColumnBatch,
        feed: Feed,
        answered: LoadedVersion,
        labels: list[Any],
        request_id: str,
    ) -> None:
        """Score the same rows with the shadow version after the answer was sent."""
        sv = versions.get(shadow)
        if sv is not None:
            self.shadow.mirror(sv, answered, batch, feed, labels, request_id)

    async def _error(
        self, send: Send, exc: ProtocolError, proto: str, version: str, request_id: str
    ) -> None:
        if proto == "mlflow":
            doc: dict[str, Any] = {"error_code": exc.error_code, "message": exc.message}
        else:
            doc = {"error": exc.message}
        if exc.status >= 500:
            doc["request_id"] = request_id
        headers = [
            JSON_HEADER,
            (b"x-model-name", self._model_b),
            (b"x-model-version", version.encode()),
            (b"x-request-id", request_id.encode()),
        ]
        if exc.status == 408:  # the rest of the body may still come: never read it as a request
            headers.append(_CLOSE)
        await respond(send, exc.status, protocol.dumps(doc), headers)


def create_app(config: ServingConfig, seed: int | None = None) -> ScoringApp:
    """The ASGI app for ``config`` (versions load on ASGI lifespan startup)."""
    return ScoringApp(config, seed=seed)
