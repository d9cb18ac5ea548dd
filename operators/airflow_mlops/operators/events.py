"""Lifecycle events an operator announces, handed to the events listener through XCom.

The listener (``airflow_mlops.plugins.events``) runs in the worker after the task ends and
records what the task pushed under ``EVENT_XCOM_KEY``. Only operators whose class sets
``announces_events = True`` are asked, so other tasks cost the listener no XCom lookup.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

EVENT_XCOM_KEY = "mlops_event"


def announce(
    context: Any,
    *,
    kind: str,
    model: str,
    version: str | None,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Push one lifecycle event (``core.events.KINDS``) for the listener to record.

    An event that cannot be pushed is logged and dropped: announcing never changes the
    task's outcome.
    """
    event = {
        "kind": kind,
        "model": model,
        "version": version,
        "message": message,
        "details": details or {},
    }
    try:
        context["ti"].xcom_push(key=EVENT_XCOM_KEY, value=event)
    except Exception:
        log.exception("could not hand the lifecycle event %s to the listener", kind)


def announced(task_instance: Any) -> dict[str, Any] | None:
    """The event this task instance announced while it ran, or ``None``."""
    if not getattr(getattr(task_instance, "task", None), "announces_events", False):
        return None
    event = task_instance.xcom_pull(
        task_ids=task_instance.task_id,
        key=EVENT_XCOM_KEY,
        map_indexes=getattr(task_instance, "map_index", -1),
    )
    return event if isinstance(event, dict) and event.get("kind") else None
