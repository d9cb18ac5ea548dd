"""Serving options: which versions, how traffic is split, what is captured, what is refused.

The same mapping is read from a JSON/YAML file, from the ``serving`` section of a model config,
or built from CLI flags (``airflow-mlops serve``). An empty mapping plus a model name and one
version is a working config.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from airflow_mlops import settings
from airflow_mlops.core.config.parse import ConfigError, check_keys

__all__ = [
    "ADMIN_TOKEN_ENV",
    "AdminSpec",
    "CaptureSpec",
    "ConnectionsSpec",
    "LimitsSpec",
    "ServingConfig",
    "ShadowSpec",
    "load_serving_config",
    "normalise_routes",
    "parse_shadow",
]


ADMIN_TOKEN_ENV = settings.SERVING_ADMIN_TOKEN_ENV


def default_state_dir() -> str:
    """The server's own state folder when the config names none:
    ``$XDG_STATE_HOME/airflow-mlops/serving`` (``~/.local/state/...``), never the working
    directory (a server started from a checkout must not litter it)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "airflow-mlops" / "serving")


def _monitoring_dir(state_dir: str | None = None) -> str:
    # MLOPS_HOME first: the drift monitor reads ${MLOPS_HOME}/monitoring.
    home = settings.explicit_home()
    if home:
        return str(Path(home) / "monitoring")
    return str(Path(state_dir or default_state_dir()) / "monitoring")


@dataclass(frozen=True)
class ShadowSpec:
    """Mirror a share of requests to ``version``; its answers are recorded, never returned.

    :param version: the shadow version (must be loaded).
    :param share: the share of requests mirrored, 0..1.
    """

    version: str
    share: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "share": self.share}


@dataclass(frozen=True)
class CaptureSpec:
    """Request capture to Parquet in the monitoring layout.

    :param dir: the monitoring folder (``{dir}/model=.../source=online/...``); ``None`` or an
        empty string switches capture off. Default: ``${MLOPS_HOME}/monitoring``.
    :param sample_rate: share of rows captured, 0..1 (0 switches capture off).
    :param chunk_rows: a file is written when this many rows of one version and day are
        buffered (bounds file size and memory).
    :param max_seconds: a partial chunk is written after this many seconds.
    :param queue_size: requests waiting for the writer thread; beyond it rows are dropped and
        counted (``mlops_capture_dropped_total``), never waited for.
    """

    dir: str | None = field(default_factory=_monitoring_dir)
    sample_rate: float = 0.1
    chunk_rows: int = 10_000
    max_seconds: float = 60.0
    queue_size: int = 10_000

    @property
    def enabled(self) -> bool:
        return bool(self.dir) and self.sample_rate > 0


@dataclass(frozen=True)
class LimitsSpec:
    """Request limits.

    :param max_body_bytes: largest request body (checked on Content-Length and while reading).
    :param max_rows: most rows in one request.
    """

    max_body_bytes: int = 1_048_576
    max_rows: int = 1_000


@dataclass(frozen=True)
class ConnectionsSpec:
    """Connection limits, so a slow or silent client cannot hold a connection forever.

    :param header_timeout: seconds from a connection's first byte (or its opening) until its
        request head is complete; then it is closed. Also bounds a connection that sends
        nothing. Each byte does not restart it (a slow-loris trickle is cut).
    :param body_timeout: seconds to receive a whole request body once its head arrived; then
        ``408`` and the connection closes.
    :param keep_alive_timeout: seconds an idle keep-alive connection waits for its next request.
    :param max_connections: open connections (or requests in flight) beyond which requests are
        answered ``503`` (uvicorn's ``limit_concurrency``).
    :param max_header_bytes: largest request head; beyond it the connection is closed with 431.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1024
    max_header_bytes: int = 65_536


@dataclass(frozen=True)
class AdminSpec:
    """The ``/admin/*`` endpoints: off until a token is configured.

    :param enabled: ``False`` answers 404 on every admin path, whatever the token.
    :param token_file: a file holding the admin token (a mounted Secret, a 0600 file); an
        unreadable or empty file is a startup error.
    :param token_env: the environment variable read when no ``token_file`` is given. Without
        either, admin answers 403 (off). Requests send ``Authorization: Bearer <token>``.
    :param model_root: the folder under which admin may load model folders (``sources``);
        ``None``: admin loads only ``models:/<served model>/...`` references.
    """

    enabled: bool = True
    token_file: str | None = None
    token_env: str = ADMIN_TOKEN_ENV
    model_root: str | None = None

    def read_token(self) -> str | None:
        """The configured token, or ``None`` (admin off).

        :raises ConfigError: a ``token_file`` that cannot be read or is empty.
        """
        if not self.enabled:
            return None
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"admin.token_file {self.token_file}: cannot be read ({exc.strerror})"
                ) from exc
            if not token:
                raise ConfigError(f"admin.token_file {self.token_file} is empty")
            return token
        return (os.environ.get(self.token_env) or "").strip() or None


@dataclass(frozen=True)
class ServingConfig:
    """Everything the scoring server needs.

    :param model: the model name answered on ``/v2/models/{model}``.
    :param versions: ``{version: source}``; a source is ``models:/<name>/<version>`` or a local
        model folder (``model.onnx`` + ``model.json``).
    :param routes: ``{version: weight}``; non-negative, normalised; default: all traffic to the
        highest version.
    :param shadow: an optional shadow version and share.
    :param capture: request capture.
    :param limits: request limits.
    :param admin: admin endpoints.
    :param connections: connection timeouts and limits.
    :param host: bind address (loopback by default).
    :param port: TCP port.
    :param tracking_uri: MLflow for ``models:/`` sources (default: ``MLFLOW_TRACKING_URI``).
    :param threads: ONNX Runtime intra-op threads per version (1: requests are small, the
        event loop is the parallelism).
    :param extra_columns: ``ignore`` (MLflow behaviour: key columns may ride along) or
        ``reject`` columns the signature does not name.
    :param cache_dir: where ``models:/`` versions are downloaded (default: a temporary folder);
        a version's download is removed when it is unloaded and on shutdown.
    :param state_dir: the server's own folder (default capture location without
        ``MLOPS_HOME``); default :func:`default_state_dir`.
    """

    model: str
    versions: dict[str, str]
    routes: dict[str, float] = field(default_factory=dict)
    shadow: ShadowSpec | None = None
    capture: CaptureSpec = field(default_factory=CaptureSpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    admin: AdminSpec = field(default_factory=AdminSpec)
    connections: ConnectionsSpec = field(default_factory=ConnectionsSpec)
    host: str = "127.0.0.1"
    port: int = 8080
    tracking_uri: str | None = None
    threads: int = 1
    extra_columns: str = "ignore"
    cache_dir: str | None = None
    state_dir: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "<serving>") -> ServingConfig:
        """Build and check a config; errors name the key and ``source``."""
        raw = dict(raw or {})
        check_keys(raw, cls, source, what="serving key(s)")
        model = raw.get("model")
        if not model or not isinstance(model, str):
            raise ConfigError(f"{source}: serving.model must name the model, got {model!r}")
        versions = raw.get("versions") or {}
        if not isinstance(versions, dict) or not versions:
            raise ConfigError(f"{source}: serving.versions must map version -> source (non-empty)")
        versions = {str(k): str(v) for k, v in versions.items()}
        routes_raw = raw.get("routes") or {_highest(versions): 1.0}
        routes = normalise_routes(routes_raw, f"{source}: serving.routes")
        for v in routes:
            if v not in versions:
                raise ConfigError(
                    f"{source}: serving.routes names version {v!r} with no source in "
                    f"serving.versions ({sorted(versions)})"
                )
        shadow = parse_shadow(raw.get("shadow"), f"{source}: serving.shadow")
        if shadow and shadow.version not in versions:
            raise ConfigError(
                f"{source}: serving.shadow.version {shadow.version!r} has no source in "
                f"serving.versions ({sorted(versions)})"
            )
        state_dir = raw.get("state_dir")
        capture_raw = raw.get("capture")
        if capture_raw is None or (isinstance(capture_raw, dict) and "dir" not in capture_raw):
            capture_raw = {**(capture_raw or {}), "dir": _monitoring_dir(state_dir)}
        capture = _section(CaptureSpec, capture_raw, f"{source}: serving.capture")
        if not 0 <= capture.sample_rate <= 1:
            raise ConfigError(
                f"{source}: serving.capture.sample_rate must be within 0..1, "
                f"got {capture.sample_rate}"
            )
        if capture.chunk_rows < 1 or capture.max_seconds <= 0 or capture.queue_size < 1:
            raise ConfigError(
                f"{source}: serving.capture chunk_rows, max_seconds and queue_size must be > 0"
            )
        limits = _section(LimitsSpec, raw.get("limits"), f"{source}: serving.limits")
        if limits.max_body_bytes < 64 or limits.max_rows < 1:
            raise ConfigError(
                f"{source}: serving.limits max_body_bytes must be >= 64 and max_rows >= 1, got "
                f"{limits.max_body_bytes} and {limits.max_rows}"
            )
        connections = _section(
            ConnectionsSpec, raw.get("connections"), f"{source}: serving.connections"
        )
        if min(asdict(connections).values()) <= 0:
            raise ConfigError(
                f"{source}: serving.connections values must all be > 0, got {asdict(connections)}"
            )
        extra = raw.get("extra_columns", "ignore")
        if extra not in ("ignore", "reject"):
            raise ConfigError(
                f"{source}: serving.extra_columns must be ignore|reject, got {extra!r}"
            )
        return cls(
            model=model,
            versions=versions,
            routes=routes,
            shadow=shadow,
            capture=capture,
            limits=limits,
            admin=_section(AdminSpec, raw.get("admin"), f"{source}: serving.admin"),
            connections=connections,
            host=str(raw.get("host", "127.0.0.1")),
            port=int(raw.get("port", 8080)),
            tracking_uri=raw.get("tracking_uri"),
            threads=int(raw.get("threads", 1)),
            extra_columns=extra,
            cache_dir=raw.get("cache_dir"),
            state_dir=state_dir,
        )

    @classmethod
    def from_section(
        cls,
        raw: dict[str, Any] | None,
        *,
        model: str,
        versions: dict[str, str],
        routes: dict[str, float] | None = None,
        shadow: dict[str, Any] | None = None,
        source: str = "<model config>",
    ) -> ServingConfig:
        """A model config's ``serving:`` section (options only; an empty one works) plus the
        model name and the versions to serve, which the caller (packaging, rollout) knows.

        Keys given in the section win over ``model``; ``versions`` are added to the section's.
        """
        raw = dict(raw or {})
        raw.setdefault("model", model)
        raw["versions"] = {**(raw.get("versions") or {}), **versions}
        if routes is not None:
            raw["routes"] = routes
        if shadow is not None:
            raw["shadow"] = shadow
        return cls.from_dict(raw, source)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` reads back."""
        out = asdict(self)
        out["shadow"] = self.shadow.to_dict() if self.shadow else None
        return out

    def with_overrides(self, **changes: Any) -> ServingConfig:
        """A copy with some fields replaced (CLI flags over a file)."""
        return replace(self, **changes)


def _highest(versions: dict[str, str]) -> str:
    return max(versions, key=lambda v: (v.isdigit(), int(v) if v.isdigit() else 0, v))


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    check_keys(raw, cls, where)
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def normalise_routes(raw: Any, where: str = "routes") -> dict[str, float]:
    """``{"1": 90, "2": 10}`` -> ``{"1": 0.9, "2": 0.1}``; errors name the version and value.

    Weights are non-negative finite numbers with a positive sum; a zero weight keeps a version
    loaded (reachable by its forced-version path) without routed traffic.
    """
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected a non-empty mapping version -> weight, got {raw!r}")
    weights: dict[str, float] = {}
    for version, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(
                f"{where}: weight of version {version!r} must be a number, got {weight!r}"
            )
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{where}: weight of version {version!r} must be >= 0, got {weight}")
        weights[str(version)] = float(weight)
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(
            f"{where}: weights sum to 0; at least one version needs a positive weight"
        )
    return {v: w / total for v, w in weights.items()}


def parse_shadow(raw: Any, where: str = "shadow") -> ShadowSpec | None:
    """``None``, ``{"version": "2", "share": 0.5}`` -> a :class:`ShadowSpec` (checked)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or "version" not in raw:
        raise ConfigError(f"{where}: expected null or {{'version': v, 'share': 0..1}}, got {raw!r}")
    check_keys(raw, ("version", "share"), where)
    share = raw.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{where}: share must be a number within 0..1, got {share!r}")
    return ShadowSpec(version=str(raw["version"]), share=float(share))


def load_serving_config(path: str | os.PathLike[str]) -> ServingConfig:
    """Read a serving config from a JSON or YAML file.

    A full model config (with a ``serving:`` section) is accepted too: the section is used.
    """
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        raw = json.loads(text)
    else:
        import yaml

        raw = yaml.safe_load(text)
    if isinstance(raw, dict) and "serving" in raw and "versions" not in raw:
        raw = raw["serving"]
    return ServingConfig.from_dict(raw, str(path))
