"""``/admin/routes``: read and change the traffic split at run time.

``GET /admin/routes`` answers ``{"model", "routes": {version: percent}, "shadow", "loaded"}``.
``PUT /admin/routes`` with ``{"routes": {version: weight}, "shadow": {...} | null,
"sources": {version: source}, "unload": [version, ...]}`` first loads every named version
that is not loaded yet (from ``sources`` in the body, else the configured source), then
installs the new table in one reference swap: requests in flight finish on the table they
started with, none is dropped. A version that fails to load is refused with 409 and the
reason in the server log (the body names the version and the request id, never a path or
an address); the old routes stay. Bad weights or an unknown version without a source are 422.
``shadow`` absent keeps the current shadow; ``null`` removes it. ``unload`` drops retired
versions from memory (and from ``/v2/models/<m>/versions/<v>``); a version the new table
routes to or mirrors cannot be unloaded (422).

Admin is off until a token is configured: ``admin.token_file`` (a 0600 file, a mounted
Secret) or the ``MLOPS_SERVING_ADMIN_TOKEN`` environment variable (``admin.token_env``), never
a command-line value. Without one every admin path answers 403 saying so; ``admin.enabled:
false`` answers 404. Requests send ``Authorization: Bearer <token>`` (compared in constant
time); a missing or wrong one is 401 with ``WWW-Authenticate``. New ``sources`` are limited to
``models:/<served model>/...`` references and folders under ``admin.model_root`` (403 naming
the rule otherwise): an admin credential must not turn into "load any file on this host".
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from pathlib import Path
from typing import Any

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.model.reference import MODELS_SCHEME, ModelRefError, parse_models_uri
from airflow_mlops.serving import protocol
from airflow_mlops.serving.config import AdminSpec, normalise_routes, parse_shadow
from airflow_mlops.serving.http import Receive, Scope, read_body
from airflow_mlops.serving.models import LoadedVersion, LoadError
from airflow_mlops.serving.protocol import ProtocolError
from airflow_mlops.serving.repository import VersionRepository
from airflow_mlops.serving.routing import RoutingTable

log = logging.getLogger(__name__)

__all__ = ["Admin", "AdminAnswer"]

_MAX_ADMIN_BODY = 65_536
_CHALLENGE = (b"www-authenticate", b'Bearer realm="airflow-mlops-admin"')

AdminAnswer = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]


class Admin:
    """The admin endpoints over one server's loaded versions.

    :param repository: the versions and routing table the endpoints read and change.
    :param spec: whether the endpoints are on, their token and the model root.
    :param body_timeout: seconds to receive a request body.
    :raises ConfigError: a configured token file that cannot be read or is empty.
    """

    def __init__(
        self, repository: VersionRepository, spec: AdminSpec, body_timeout: float | None = None
    ) -> None:
        self.repository = repository
        self.spec = spec
        self.body_timeout = body_timeout
        token = spec.read_token()
        self._token = token.encode() if token else None
        self._root = os.path.realpath(spec.model_root) if spec.model_root else None
        self._lock = asyncio.Lock()

    def routes_doc(self) -> dict[str, Any]:
        """What ``GET /admin/routes`` answers."""
        repo = self.repository
        table = repo.table
        return {
            "model": repo.model,
            "routes": table.percent(),
            "shadow": table.shadow.to_dict() if table.shadow else None,
            "loaded": sorted(repo.versions),
        }

    def _denied(self, scope: Scope) -> AdminAnswer | None:
        """Why this request may not use admin, or ``None`` when it may."""
        if not self.spec.enabled:
            return 404, _err("ENDPOINT_NOT_FOUND", "admin endpoints are disabled"), []
        if self._token is None:
            return (
                403,
                _err(
                    "PERMISSION_DENIED",
                    "admin endpoints are off: no admin token is configured (set "
                    f"admin.token_file, or the {self.spec.token_env} environment variable)",
                ),
                [],
            )
        sent = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, credential = sent.partition(b" ")
        # compare_digest on every request, whatever the scheme: no early exit to time.
        good = hmac.compare_digest(credential.strip(), self._token)
        if not (good and scheme.lower() == b"bearer"):
            return (
                401,
                _err("UNAUTHENTICATED", "admin endpoints need 'Authorization: Bearer <token>'"),
                [_CHALLENGE],
            )
        return None

    async def handle(
        self, scope: Scope, receive: Receive, method: str, path: str, request_id: str
    ) -> AdminAnswer:
        """Answer one admin request: ``(status, JSON document, extra headers)``."""
        denied = self._denied(scope)
        if denied is not None:
            return denied
        if path != "/admin/routes":
            return 404, _err("ENDPOINT_NOT_FOUND", f"no admin endpoint {path}"), []
        if method == "GET":
            return 200, self.routes_doc(), []
        if method != "PUT":
            return 405, _err("METHOD_NOT_ALLOWED", f"{method} {path}: use GET or PUT"), []
        try:
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            body = await read_body(receive, length, _MAX_ADMIN_BODY, self.body_timeout)
            doc = protocol.loads(body)
        except ProtocolError as exc:
            return exc.status, _err(exc.error_code, exc.message), []
        async with self._lock:  # one change at a time; predictions are never blocked by it
            status, answer = await self._put(doc, request_id)
        return status, answer, []

    def source_refusal(self, source: str) -> str | None:
        """Why admin may not load ``source`` (the rule), or ``None`` when it may."""
        model = self.repository.model
        rule = (
            f"admin loads only models:/{model}/<version|alias> references and folders under "
            "admin.model_root"
        )
        if source.startswith(MODELS_SCHEME):
            try:
                name, _ = parse_models_uri(source)
            except ModelRefError:
                return f"source of another form refused: {rule}"
            return None if name == model else f"source for another model refused: {rule}"
        if "://" in source or source.startswith(("runs:", "file:")):
            return f"source of another form refused: {rule}"
        if self._root is None:
            return f"folder source refused: {rule} (no admin.model_root is configured)"
        real = os.path.realpath(source)
        if not Path(real).is_relative_to(self._root) or real == self._root:
            return f"folder source outside the model root refused: {rule}"
        return None

    async def _put(self, doc: Any, request_id: str) -> tuple[int, dict[str, Any]]:
        repo = self.repository
        if not isinstance(doc, dict) or "routes" not in doc:
            return 422, _err(
                protocol.INVALID,
                "expected {'routes': {version: weight}, 'shadow': {...} | null, 'sources': {...}}",
            )
        unknown = sorted(set(doc) - {"routes", "shadow", "sources", "unload"})
        if unknown:
            return 422, _err(
                protocol.INVALID,
                f"unknown key(s) {unknown}; known: ['routes', 'shadow', 'sources', 'unload']",
            )
        try:
            weights = normalise_routes(doc["routes"], "routes")
            shadow = parse_shadow(doc["shadow"], "shadow") if "shadow" in doc else repo.table.shadow
        except ConfigError as exc:
            return 422, _err(protocol.INVALID, str(exc))
        sources = doc.get("sources") or {}
        if not isinstance(sources, dict):
            return 422, _err(protocol.INVALID, "sources must map version -> source")
        for v, source in sources.items():
            refusal = self.source_refusal(str(source))
            if refusal is not None:
                log.warning("admin: request %s: version %s: %s", request_id, v, refusal)
                return 403, _err("PERMISSION_DENIED", f"version {v!r}: {refusal}")
        needed = list(weights) + ([shadow.version] if shadow else [])
        unload = doc.get("unload") or []
        if not isinstance(unload, list) or not all(isinstance(v, str) for v in unload):
            return 422, _err(protocol.INVALID, "unload must be a list of versions")
        busy = sorted(set(unload) & set(needed))
        if busy:
            return 422, _err(
                protocol.INVALID, f"cannot unload {busy}: the new routes or shadow use them"
            )
        to_load: dict[str, str] = {}
        for v in needed:
            source = sources.get(v) or repo.sources.get(v)
            loaded_now = repo.versions.get(v)
            if loaded_now is not None and (source is None or str(source) == loaded_now.source):
                continue  # already serving from this source: no reload
            if not source:
                return 422, _err(
                    protocol.INVALID,
                    f"version {v!r} is not loaded and has no source (give one in 'sources')",
                )
            to_load[v] = str(source)
        loaded: dict[str, LoadedVersion] = {}
        for v, source in to_load.items():
            try:
                loaded[v] = await asyncio.to_thread(repo.load, v, source)
            except LoadError as exc:
                # The reason (paths, the tracking URI) stays in the log, keyed by request id.
                log.warning("admin: request %s: refused routes %s: %s", request_id, weights, exc)
                for done in loaded.values():
                    done.release()
                return 409, {
                    **_err(
                        "VERSION_LOAD_FAILED",
                        f"version {v} could not be loaded (the server log has the reason, "
                        f"request id {request_id}); routes unchanged: {repo.table.percent()}",
                    ),
                    "request_id": request_id,
                }
        repo.sources.update(to_load)
        # Sources are kept: a version routed again later loads from where it came from.
        before = repo.versions
        versions = {v: m for v, m in {**before, **loaded}.items() if v not in unload}
        repo.swap(versions, RoutingTable(weights, shadow))
        replaced = [before[v] for v in loaded if v in before]
        gone = [before[v] for v in unload if v in before]
        for lv in replaced:
            lv.release()
        repo.unload(gone)
        log.info("admin: routes now %s, shadow %s", repo.table.percent(), shadow)
        if gone:
            log.info("admin: unloaded %s", sorted(lv.version for lv in gone))
        return 200, self.routes_doc()


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}
