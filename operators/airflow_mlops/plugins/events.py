"""Airflow plugin: record lifecycle events (drift detected, model registered/promoted).

A listener runs in the worker right after a task ends. Operators of airflow-mlops that have
something to announce push it to XCom while they run (``airflow_mlops.operators.events``: a
dict with ``kind``, ``model``, ``version``, ``message``, ``details``); the listener writes it to
the JSON-lines event log (``MLOPS_EVENT_LOG`` or ``$MLOPS_HOME/events/events.jsonl``), to the
task log, and, if the Airflow connection ``mlops_events`` exists (type http, host = URL),
POSTs it there.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger("airflow.task")

WEBHOOK_CONN_ID = "mlops_events"


def _webhook_url() -> str | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(WEBHOOK_CONN_ID)
    except AirflowNotFoundException:
        return None
    host = conn.host or ""
    if "://" in host:
        return host
    scheme = conn.schema or "http"
    return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")


def record(task_instance: Any) -> None:
    """Write the event the task instance announced, if it announced one, to every sink."""
    from airflow_mlops.core.events import LifecycleEvent, append_jsonl, post_webhook
    from airflow_mlops.operators.events import announced

    raw = announced(task_instance)
    if not raw:
        return
    event = LifecycleEvent(
        kind=raw["kind"],
        model=raw["model"],
        version=raw.get("version"),
        message=raw.get("message", ""),
        details=raw.get("details", {}),
        source={
            "dag_id": task_instance.dag_id,
            "run_id": task_instance.run_id,
            "task_id": task_instance.task_id,
            "try_number": getattr(task_instance, "try_number", None),
        },
    )
    path = append_jsonl(event)
    log.info("lifecycle event %s: %s (event log %s)", event.kind, event.message, path)
    url = _webhook_url()
    if url:
        post_webhook(event, url)


class LifecycleListener:
    """Listener hooks; errors are logged and never change the task's outcome."""

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """A task succeeded: record what it announced."""
        try:
            record(task_instance)
        except Exception:
            log.exception("could not record the lifecycle event")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """A task skipped itself (a rejected promotion): record what it announced."""
        try:
            record(task_instance)
        except Exception:
            log.exception("could not record the lifecycle event")


class MLOpsEventsPlugin(AirflowPlugin):
    """Registers the lifecycle-event listener."""

    name = "mlops_events"
    listeners = [LifecycleListener()]
