"""The connection's credentials are what MLflow sends, call by call, and nothing stays behind."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_mlops.core.registry.tracking import TrackingConfig


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str | None]]]:
    """A stand-in for MLflow's REST API that answers search_experiments and records the
    Authorization header of each request."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def _answer(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"experiments": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_connections_basic_auth_wins_over_the_environment_and_is_not_left_there(
    recorder, monkeypatch
) -> None:
    url, seen = recorder
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone-else")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "their-password")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    client = TrackingConfig(tracking_uri=url, username="airflow", password="s3cret").client()
    client.search_experiments(max_results=1)
    assert seen == [_basic("airflow", "s3cret")]
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "someone-else"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "their-password"


def test_a_token_is_sent_as_bearer_and_two_connections_do_not_mix(recorder, monkeypatch) -> None:
    url, seen = recorder
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    with_token = TrackingConfig(tracking_uri=url, token="t0k3n").client()
    with_basic = TrackingConfig(tracking_uri=url, username="u", password="p").client()
    anonymous = TrackingConfig(tracking_uri=url).client()
    with_token.search_experiments(max_results=1)
    with_basic.search_experiments(max_results=1)
    anonymous.search_experiments(max_results=1)
    assert seen == ["Bearer t0k3n", _basic("u", "p"), None]
    assert not any(
        k.startswith("MLFLOW_TRACKING_") and k != "MLFLOW_TRACKING_URI" for k in os.environ
    )
