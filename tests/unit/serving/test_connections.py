"""Connection limits on a real server process (uvicorn): a slow-loris head or a stalled body is
closed within its timeout, idle connections go, and other clients are answered meanwhile."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(model_folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("conn-server")
    port = _free_port()
    config = {
        "model": "toy",
        "versions": {"1": str(model_folders["1"])},
        "capture": {"dir": ""},
        "host": "127.0.0.1",
        "port": port,
        "connections": {
            "header_timeout": HEADER_TIMEOUT,
            "body_timeout": BODY_TIMEOUT,
            "keep_alive_timeout": 1.0,
            "max_connections": MAX_CONNECTIONS,
        },
    }
    (root / "serving.json").write_text(json.dumps(config))
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_mlops.serving", "--config", str(root / "serving.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=1).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, (root / "server.log").read_text()
        time.sleep(0.1)
    yield {"port": port, "url": url}
    proc.terminate()
    proc.wait(15)
    log.close()


def _health_seconds(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
        assert resp.status == 200
    return time.perf_counter() - t0


def _until_closed(sock: socket.socket, trickle: bytes | None, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (sending ``trickle`` every 0.2 s meanwhile) and
    what it answered before closing."""
    t0 = time.monotonic()
    got = b""
    while time.monotonic() - t0 < limit:
        if trickle:
            try:
                sock.sendall(trickle)
            except OSError:
                return time.monotonic() - t0, got
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            try:
                data = sock.recv(65536)
            except OSError:
                return time.monotonic() - t0, got
            if not data:
                return time.monotonic() - t0, got
            got += data
    raise AssertionError(f"connection still open after {limit:.0f}s (answered {got!r})")


def test_a_head_that_never_ends_is_closed_within_the_header_timeout(server):
    sock = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        t0 = time.monotonic()
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        # Meanwhile the server answers others at once.
        assert _health_seconds(server["url"]) < 0.5
        # A header line every 0.2 s: each byte would reset an idle timer, not this one.
        _until_closed(sock, b"X-Slow: 1\r\n", limit=10)
        seconds = time.monotonic() - t0
    finally:
        sock.close()
    print(f"slow-loris head closed after {seconds:.2f}s")
    assert seconds <= HEADER_TIMEOUT + 0.75


def test_a_body_that_stalls_is_answered_408_and_closed_within_the_body_timeout(server):
    sock = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        t0 = time.monotonic()
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"dataframe_records": ['
        )
        assert _health_seconds(server["url"]) < 0.5
        _, answer = _until_closed(sock, None, limit=10)
        seconds = time.monotonic() - t0
    finally:
        sock.close()
    print(f"stalled body closed after {seconds:.2f}s")
    assert seconds <= BODY_TIMEOUT + 0.75
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer.lower()


def test_a_connection_that_sends_nothing_is_closed(server):
    sock = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        seconds, answer = _until_closed(sock, None, limit=10)
    finally:
        sock.close()
    assert seconds <= HEADER_TIMEOUT + 0.75 and answer == b""


def test_past_the_connection_limit_requests_are_refused_then_served_again(server):
    socks = [
        socket.create_connection(("127.0.0.1", server["port"])) for _ in range(MAX_CONNECTIONS)
    ]
    try:
        time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server['url']}/health", timeout=5)
        assert refused.value.code == 503
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    assert _health_seconds(server["url"]) < 0.5


def test_a_keep_alive_connection_idle_past_its_timeout_is_closed(server):
    sock = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        seconds, answer = _until_closed(sock, None, limit=10)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert seconds <= 1.0 + 0.75


def test_a_large_body_in_the_first_read_is_not_taken_for_a_large_head(server):
    body = b'{"dataframe_records": [' + b"1," * 150_000 + b"1]}"
    sock = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        sock.settimeout(10)
        answer = sock.recv(65536)
    finally:
        sock.close()
    # Refused for its rows (413), not cut as a head past max_header_bytes (431).
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_head_past_the_size_limit_is_refused_431(server):
    sock = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
        _, answer = _until_closed(sock, None, limit=10)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
