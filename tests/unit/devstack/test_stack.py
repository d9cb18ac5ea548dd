"""The embedded stack's start-up guards (real sockets and processes, nothing else)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys

import pytest

from airflow_mlops.devstack import stack as devstack


def test_a_taken_port_is_refused_naming_it_and_the_flag(tmp_path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(
            RuntimeError, match=rf"127.0.0.1:{port} is already in use.*--mlflow-port"
        ):
            devstack.MLflowServer(root=tmp_path / "unused", port=port).start()
    devstack.ensure_port_free(port, "mlflow server", "--mlflow-port")  # free again: no error


def test_interrupting_start_up_stops_what_was_started(tmp_path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )

    def ctrl_c() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        devstack.wait_healthy(process, ctrl_c, 30, "a server", tmp_path / "log")
    assert process.poll() is not None  # stopped, not orphaned


def test_a_server_that_exits_during_start_up_is_reported_with_its_log(tmp_path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True
    )
    with pytest.raises(RuntimeError, match=r"a server exited with 3; log: .*server.log"):
        devstack.wait_healthy(process, lambda: False, 30, "a server", tmp_path / "server.log")


def test_serve_stop_needs_a_reachable_mlflow_and_says_why(monkeypatch, capsys, tmp_path) -> None:
    from airflow_mlops import cli

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main(["serve-stop"]) == 2
    assert "give --tracking-uri or set MLFLOW_TRACKING_URI" in capsys.readouterr().out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the block ends
    assert cli.main(["serve-stop", "--tracking-uri", f"http://127.0.0.1:{port}"]) == 2
    assert f"cannot reach MLflow at http://127.0.0.1:{port}" in capsys.readouterr().out


def test_a_stale_server_record_is_dropped_without_signalling_anyone(tmp_path) -> None:
    import json

    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.core.rollout.policy import LocalSpec
    from airflow_mlops.core.rollout.targets.local import LocalTarget

    # A pid that exists but is not a scoring server (this test process): never signalled.
    folder = tmp_path / "churn"
    folder.mkdir()
    (folder / "server.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()})
    )
    target = LocalTarget(
        LocalSpec(work_dir=str(folder)), TrackingConfig("http://127.0.0.1:9"), "churn"
    )
    assert target.stop_recorded() is False
    assert not (folder / "server.json").exists()


# A leader that exits at once on SIGTERM, with a child that ignores SIGTERM (like
# ``airflow standalone`` and its scheduler) and a grandchild that left the process group.
_TREE = r"""
import os, signal, subprocess, sys, time
ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
child = subprocess.Popen([sys.executable, "-c", ignore])
escaped = subprocess.Popen([sys.executable, "-c", ignore], start_new_session=True)
print(child.pid, escaped.pid, flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_stopping_a_group_stops_every_process_it_started() -> None:
    leader = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdout=subprocess.PIPE, start_new_session=True
    )
    assert leader.stdout is not None
    pids = [int(p) for p in leader.stdout.readline().split()]
    assert all(_alive(p) for p in pids)
    try:
        devstack.stop_group(leader, grace=1)
        assert leader.poll() is not None
        assert [p for p in pids if _alive(p)] == [], "a started process outlived the stop"
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_the_checkout_gives_the_dags_plugins_and_demo_config() -> None:
    from airflow_mlops.devstack.demo import demo_config

    root = devstack.checkout_root()
    assert root is not None and (root / "setup.cfg").is_file()
    env = devstack.airflow_env(root / ".mlops", "http://127.0.0.1:5000")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(root / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(root / "plugins")
    assert demo_config() == root / "dags" / "configs" / "demo_churn.yaml"


def test_an_installed_package_takes_explicit_folders_or_airflows_own(monkeypatch, tmp_path) -> None:
    from airflow_mlops.devstack import demo

    monkeypatch.setattr(devstack, "checkout_root", lambda: None)
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__PLUGINS_FOLDER", raising=False)
    env = devstack.airflow_env(tmp_path, "http://127.0.0.1:5000")
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in env  # Airflow's $AIRFLOW_HOME/dags applies
    assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in env
    env = devstack.airflow_env(tmp_path, "http://x", dags_folder=tmp_path / "dags")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    with pytest.raises(RuntimeError, match="--config"):
        demo.demo_config()
    assert demo.demo_config(tmp_path / "m.yaml") == tmp_path / "m.yaml"


def test_mlops_home_is_absolute(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    assert devstack.mlops_home() == tmp_path.resolve() / ".mlops"
