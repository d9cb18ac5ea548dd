from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from airflow_mlops.core.events import LifecycleEvent, append_jsonl, post_webhook, read_events


def _event(kind="model_promoted", version="3"):
    return LifecycleEvent(kind=kind, model="m", version=version, message="m v3 is champion")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown lifecycle event kind 'promoted'"):
        LifecycleEvent(kind="promoted", model="m", version="1", message="")


def test_jsonl_log_appends_whole_lines_from_threads(tmp_path):
    path = tmp_path / "events" / "events.jsonl"
    threads = [
        threading.Thread(target=lambda i=i: append_jsonl(_event(version=str(i)), path))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = read_events(path)
    assert sorted(int(e["version"]) for e in events) == list(range(20))
    assert {e["kind"] for e in events} == {"model_promoted"}


def test_webhook_receives_the_event_and_failures_do_not_raise():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert post_webhook(_event(), f"http://127.0.0.1:{server.server_port}/hook")
    finally:
        server.shutdown()
    assert received[0]["kind"] == "model_promoted" and received[0]["version"] == "3"
    # Nothing listens there any more: reported as not delivered, not raised.
    assert post_webhook(_event(), f"http://127.0.0.1:{server.server_port}/hook", 1.0) is False
