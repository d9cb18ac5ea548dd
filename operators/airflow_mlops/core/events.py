"""Lifecycle events: drift detected, model registered, model promoted (or rejected).

An event is one JSON object. It is appended to a JSON-lines log (one file shared by every task
on a machine or a shared volume) and, when a webhook URL is configured, POSTed to it. Sinks
never fail the task that produced the event: a lost webhook is logged, not raised.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_mlops import settings

log = logging.getLogger(__name__)

KINDS = ("drift_detected", "model_registered", "model_promoted", "promotion_rejected")


@dataclass(frozen=True)
class LifecycleEvent:
    """One thing that happened to a model.

    :param kind: one of ``drift_detected``, ``model_registered``, ``model_promoted``,
        ``promotion_rejected``.
    :param model: registered model name.
    :param version: model version concerned (``None`` when not known).
    :param message: one human sentence.
    :param details: small JSON-able figures (metrics, drifted columns, report URI, ...).
    :param source: where it came from (Airflow dag/run/task ids).
    :param timestamp: ISO-8601 UTC time the event was recorded.
    """

    kind: str
    model: str
    version: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown lifecycle event kind {self.kind!r}; known: {KINDS}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)


def default_log_path() -> Path:
    """``MLOPS_EVENT_LOG``, else ``$MLOPS_HOME/events/events.jsonl``."""
    return Path(settings.event_log())


def append_jsonl(event: LifecycleEvent, path: str | os.PathLike[str] | None = None) -> Path:
    """Append the event as one line; an exclusive lock keeps concurrent tasks' lines whole."""
    target = Path(path) if path else default_log_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(event.to_json() + "\n")
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return target


def post_webhook(event: LifecycleEvent, url: str, timeout: float = 5.0) -> bool:
    """POST the event as JSON; returns whether the receiver answered 2xx (never raises)."""
    request = urllib.request.Request(
        url,
        data=event.to_json().encode(),
        headers={"Content-Type": "application/json", "User-Agent": "airflow-mlops"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.warning("lifecycle event %s not delivered to %s: %s", event.kind, url, exc)
        return False


def read_events(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """All events in a JSON-lines log, oldest first (an absent log has none)."""
    target = Path(path) if path else default_log_path()
    if not target.exists():
        return []
    return [json.loads(line) for line in target.read_text().splitlines() if line.strip()]
