"""The embedded stack's start-up guards (real sockets and processes, nothing else)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from airflow_mlops import devstack


def test_a_taken_port_is_refused_naming_it_and_the_flag() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(
            RuntimeError, match=rf"127.0.0.1:{port} is already in use.*--mlflow-port"
        ):
            devstack.MLflowServer(root=devstack.REPO_ROOT / "unused", port=port).start()
    devstack.ensure_port_free(port, "mlflow server", "--mlflow-port")  # free again: no error


def test_interrupting_start_up_stops_what_was_started(tmp_path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )

    def ctrl_c() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        devstack._wait_healthy(process, ctrl_c, 30, "a server", tmp_path / "log")
    assert process.poll() is not None  # stopped, not orphaned


def test_a_server_that_exits_during_start_up_is_reported_with_its_log(tmp_path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True
    )
    with pytest.raises(RuntimeError, match=r"a server exited with 3; log: .*server.log"):
        devstack._wait_healthy(process, lambda: False, 30, "a server", tmp_path / "server.log")
