"""Command line: ``python -m airflow_mlops.serving`` (also ``airflow-mlops serve``).

Examples::

    python -m airflow_mlops.serving --model churn --version 3=models:/churn/3 --port 8080
    python -m airflow_mlops.serving --model churn --version 3=./build/churn-3 \\
        --version 4=./build/churn-4 --route 3=90 --route 4=10 --shadow 4:0.5
    python -m airflow_mlops.serving --config serving.yaml --port 9000

Flags override the file. ``--version`` and ``--route`` repeat; without ``--route`` the highest
version takes all traffic.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.serving.config import ServingConfig, load_serving_config

__all__ = ["build_config", "parser", "serve"]


def parser() -> argparse.ArgumentParser:
    """The argument parser (also used by ``airflow-mlops serve``)."""
    p = argparse.ArgumentParser(
        prog="airflow-mlops serve",
        description="Serve ONNX model versions over the MLflow and Open Inference protocols.",
        # No prefixes: the retired --admin-token must fail, not pass for --admin-token-file.
        allow_abbrev=False,
    )
    p.add_argument(
        "--config",
        help="serving config file (JSON or YAML; a model config's 'serving' section is accepted)",
    )
    p.add_argument("--model", help="model name")
    p.add_argument(
        "--version",
        action="append",
        default=[],
        metavar="V=SOURCE",
        help="a version and its source: models:/<name>/<v> or a model folder",
    )
    p.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="V=WEIGHT",
        help="traffic weight of a version (non-negative; normalised)",
    )
    p.add_argument("--shadow", metavar="V[:SHARE]", help="mirror a share of requests to V")
    p.add_argument("--capture-dir", help="monitoring folder for request capture ('' = off)")
    p.add_argument("--sample-rate", type=float, help="share of rows captured (0..1)")
    p.add_argument("--max-rows", type=int, help="most rows per request")
    p.add_argument("--max-body-bytes", type=int, help="largest request body")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ sources")
    # A token file, never the token: a command line is visible to every user (ps).
    p.add_argument(
        "--admin-token-file",
        help="file holding the /admin/* Bearer token (else $MLOPS_SERVING_ADMIN_TOKEN; "
        "without either, admin is off)",
    )
    p.add_argument("--no-admin", action="store_true", help="disable /admin/*")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8080)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads per version")
    p.add_argument("--log-level", default="info", help="uvicorn log level")
    return p


def _pairs(items: Sequence[str], sep: str, flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key or not value:
            raise ConfigError(f"{flag} {item!r}: expected V{sep}VALUE")
        out[key] = value
    return out


def build_config(args: argparse.Namespace) -> ServingConfig:
    """A :class:`ServingConfig` from a file and/or flags (flags win)."""
    raw: dict[str, Any] = {}
    if args.config:
        raw = load_serving_config(args.config).to_dict()
    if args.model:
        raw["model"] = args.model
    if args.version:
        raw["versions"] = {**(raw.get("versions") or {}), **_pairs(args.version, "=", "--version")}
        if not args.route and not args.config:
            raw.pop("routes", None)
    if args.route:
        try:
            raw["routes"] = {v: float(w) for v, w in _pairs(args.route, "=", "--route").items()}
        except ValueError as exc:
            raise ConfigError(f"--route: weights must be numbers ({exc})") from exc
    if args.shadow:
        version, _, share = args.shadow.partition(":")
        raw["shadow"] = {"version": version, "share": float(share) if share else 1.0}
    capture = dict(raw.get("capture") or {})
    if args.capture_dir is not None:
        capture["dir"] = args.capture_dir
    if args.sample_rate is not None:
        capture["sample_rate"] = args.sample_rate
    raw["capture"] = capture or None
    limits = dict(raw.get("limits") or {})
    if args.max_rows is not None:
        limits["max_rows"] = args.max_rows
    if args.max_body_bytes is not None:
        limits["max_body_bytes"] = args.max_body_bytes
    raw["limits"] = limits or None
    admin = dict(raw.get("admin") or {})
    if args.admin_token_file:
        admin["token_file"] = args.admin_token_file
    if args.no_admin:
        admin["enabled"] = False
    raw["admin"] = admin or None
    for key in ("tracking_uri", "host", "port", "threads"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    return ServingConfig.from_dict(raw, args.config or "command line")


def run(config: ServingConfig, log_level: str = "info") -> None:
    """Serve ``config`` with uvicorn until interrupted (uvloop + httptools when installed).

    Connection limits (``config.connections``): the head deadline is this package's protocol
    subclass (:mod:`.connections`), the body deadline the app's, idle keep-alive and the
    connection limit uvicorn's own settings.
    """
    import uvicorn

    from airflow_mlops.serving.app import create_app
    from airflow_mlops.serving.connections import protocol_class

    # The capture writer thread shares the GIL with the event loop: hand it over every 0.5 ms
    # instead of 5 ms so a table build cannot stall answers for long (single-row p99 at 100%
    # capture: see docs/serving.md).
    sys.setswitchinterval(0.0005)

    limits = config.connections
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        loop="auto",
        http=protocol_class(limits),
        timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]  # a float works
        limit_concurrency=limits.max_connections,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        date_header=False,
    )


def serve(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, serve; returns the exit code (2 on a config error)."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        config = build_config(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"airflow-mlops serve: {exc}", file=sys.stderr)
        return 2
    try:
        run(config, args.log_level)
    except ConfigError as exc:  # raised before serving: an unreadable admin token file
        print(f"airflow-mlops serve: {exc}", file=sys.stderr)
        return 2
    return 0
