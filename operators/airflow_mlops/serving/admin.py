"""``/admin/routes``: read and change the traffic split at run time.

``GET /admin/routes`` answers ``{"model", "routes": {version: percent}, "shadow", "loaded"}``.
``PUT /admin/routes`` with ``{"routes": {version: weight}, "shadow": {...} | null,
"sources": {version: source}, "unload": [version, ...]}`` first loads every named version
that is not loaded yet (from ``sources`` in the body, else the configured source), then
installs the new table in one reference swap: requests in flight finish on the table they
started with, none is dropped. A version that fails to load is refused with 409 and the
reason; the old routes stay. Bad weights or an unknown version without a source are 422.
``shadow`` absent keeps the current shadow; ``null`` removes it. ``unload`` drops retired
versions from memory (and from ``/v2/models/<m>/versions/<v>``); a version the new table
routes to or mirrors cannot be unloaded (422).

Admin endpoints are off with ``admin.enabled: false`` (404) and guarded by a token with
``admin.token`` / ``admin.token_env`` (header ``X-Admin-Token``; 403 when wrong or absent).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.serving import protocol
from airflow_mlops.serving.config import AdminSpec, normalise_routes, parse_shadow
from airflow_mlops.serving.http import Receive, Scope, read_body
from airflow_mlops.serving.models import LoadedVersion, LoadError
from airflow_mlops.serving.protocol import ProtocolError
from airflow_mlops.serving.repository import VersionRepository
from airflow_mlops.serving.routing import RoutingTable

log = logging.getLogger(__name__)

__all__ = ["Admin"]

_MAX_ADMIN_BODY = 65_536


class Admin:
    """The admin endpoints over one server's loaded versions.

    :param repository: the versions and routing table the endpoints read and change.
    :param spec: whether the endpoints are on, and their token.
    """

    def __init__(self, repository: VersionRepository, spec: AdminSpec) -> None:
        self.repository = repository
        self.spec = spec
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

    async def handle(
        self, scope: Scope, receive: Receive, method: str, path: str
    ) -> tuple[int, dict[str, Any]]:
        """Answer one admin request: ``(status, JSON document)``."""
        spec = self.spec
        if not spec.enabled:
            return 404, _err("ENDPOINT_NOT_FOUND", f"{path}: admin endpoints are disabled")
        token = spec.resolved_token
        if token:
            sent = next((v for k, v in scope["headers"] if k == b"x-admin-token"), b"")
            if not hmac.compare_digest(sent, token.encode()):
                return 403, _err("PERMISSION_DENIED", "admin endpoints need a valid X-Admin-Token")
        if path != "/admin/routes":
            return 404, _err("ENDPOINT_NOT_FOUND", f"no admin endpoint {path}")
        if method == "GET":
            return 200, self.routes_doc()
        if method != "PUT":
            return 405, _err("METHOD_NOT_ALLOWED", f"{method} {path}: use GET or PUT")
        try:
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            doc = protocol.loads(await read_body(receive, length, _MAX_ADMIN_BODY))
        except ProtocolError as exc:
            return exc.status, _err(exc.error_code, exc.message)
        async with self._lock:  # one change at a time; predictions are never blocked by it
            return await self._put(doc)

    async def _put(self, doc: Any) -> tuple[int, dict[str, Any]]:
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
                log.warning("admin: refused routes %s: %s", weights, exc)
                return 409, _err(
                    "VERSION_LOAD_FAILED", f"{exc}; routes unchanged: {repo.table.percent()}"
                )
        repo.sources.update(to_load)
        # Sources are kept: a version routed again later loads from where it came from.
        versions = {v: m for v, m in {**repo.versions, **loaded}.items() if v not in unload}
        repo.swap(versions, RoutingTable(weights, shadow))
        log.info("admin: routes now %s, shadow %s", repo.table.percent(), shadow)
        if unload:
            log.info("admin: unloaded %s", sorted(set(unload)))
        return 200, self.routes_doc()


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}
