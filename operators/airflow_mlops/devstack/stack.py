"""The embedded default stack: an MLflow server and Airflow on SQLite, under one folder.

Used by ``make demo``, ``make airflow`` and the integration tests. Everything binds to
127.0.0.1 and lives below ``MLOPS_HOME`` (default ``./.mlops``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops import settings


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or ``None`` for an
    installed package, which has no ``dags/``, ``plugins/`` or demo config beside it."""
    root = Path(__file__).resolve().parents[3]
    if (root / "dags").is_dir() and (root / "operators" / "airflow_mlops").is_dir():
        return root
    return None


#: The checkout when there is one; ``None`` when the package is installed.
REPO_ROOT = checkout_root()


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, what: str, flag: str) -> None:
    """Refuse to start ``what`` on a port something already answers on (an earlier stack, say):
    its health check would pass against the other server, or wait out its whole timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        taken = sock.connect_ex(("127.0.0.1", port)) == 0
    if taken:
        raise RuntimeError(
            f"cannot start {what}: 127.0.0.1:{port} is already in use (another {what}?). "
            f"Stop it, or choose another port with {flag}"
        )


def wait_healthy(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    log: Path,
) -> None:
    """Poll ``ready()`` until it is true; stop ``process`` (started in a session of its own)
    when it exits, times out, or the wait is interrupted (Ctrl-C during start-up must not leave
    it running). An exit is reported with the end of ``log``."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                try:
                    tail = "\n" + log.read_text(errors="replace")[-2000:]
                except OSError:
                    tail = ""
                raise RuntimeError(f"{what} exited with {process.returncode}; log: {log}{tail}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout:.0f}s; log: {log}")
            time.sleep(0.5)
    except BaseException:
        stop_group(process, grace=15)
        raise


def stop_group(process: subprocess.Popen[bytes] | None, grace: float) -> None:
    """Stop a process this package started and everything it started in turn.

    SIGTERM to its process group and to every descendant (some leave the group with their own
    session), then SIGKILL to whatever is left after ``grace`` seconds. The leader exiting is
    not the end: ``airflow standalone`` exits on SIGTERM at once while its scheduler is still
    shutting down, and would otherwise be left running, reparented to init.
    """
    import psutil

    if process is None:
        return
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    _signal_all(process.pid, tree, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    if alive or _group_alive(process.pid):
        _signal_all(process.pid, alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _signal_all(group: int, processes: list[Any], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
    for proc in processes:
        with contextlib.suppress(Exception):  # gone already, or never ours to signal
            proc.send_signal(sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def mlops_home() -> Path:
    """``MLOPS_HOME`` (default ``.mlops`` in the working directory), made absolute: the
    servers started from here run in other folders."""
    return Path(settings.mlops_home()).resolve()


def _bin(name: str) -> str:
    """A console script of this virtualenv (the one running this code), else from PATH."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else (shutil.which(name) or name)


@dataclass
class MLflowServer:
    """``mlflow server`` on SQLite with a local artifact folder, bound to 127.0.0.1.

    :param root: folder for ``mlflow.db`` and ``artifacts/``.
    :param port: TCP port (default: a free one).
    :param artifacts_destination: where the server keeps artifacts (default ``root/artifacts``;
        e.g. ``s3://mlflow/``, as in ``docker-compose.yaml``).
    """

    root: Path
    port: int = field(default_factory=free_port)
    artifacts_destination: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def start(self, timeout: float = 120.0) -> MLflowServer:
        ensure_port_free(self.port, "mlflow server", "--mlflow-port")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "artifacts").mkdir(exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.root / f"server-{self.port}.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [
                _bin("mlflow"),
                "server",
                "--backend-store-uri",
                self.backend_uri,
                "--artifacts-destination",
                self.artifacts_destination or str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        log_path = self.root / f"server-{self.port}.log"
        wait_healthy(self.process, ready, timeout, f"mlflow server on {self.url}", log_path)
        return self

    def stop(self) -> None:
        """Stop the server and its workers (its own process group only)."""
        stop_group(self.process, grace=15)

    def __enter__(self) -> MLflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def airflow_env(
    home: Path,
    mlflow_url: str,
    *,
    dags_folder: Path | None = None,
    plugins_folder: Path | None = None,
) -> dict[str, str]:
    """The environment for Airflow commands on the embedded stack (SQLite, the repo's DAGs).

    :param dags_folder: the DAGs to load; default the checkout's ``dags/``. An installed
        package without one leaves Airflow's own setting (``$AIRFLOW_HOME/dags``) in place.
    :param plugins_folder: likewise for ``plugins/``.
    """
    checkout = checkout_root()
    dags_folder = dags_folder or (checkout / "dags" if checkout else None)
    plugins_folder = plugins_folder or (checkout / "plugins" if checkout else None)
    folders = {
        key: str(folder)
        for key, folder in (
            ("AIRFLOW__CORE__DAGS_FOLDER", dags_folder),
            ("AIRFLOW__CORE__PLUGINS_FOLDER", plugins_folder),
        )
        if folder is not None
    }
    # ``airflow standalone`` starts its components as ``airflow ...`` from PATH: this
    # virtualenv's scripts come first even when it is not activated.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        **os.environ,
        "PATH": path,
        "MLOPS_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        # Explicit, so a copied or moved home uses its own database, not the path that the
        # airflow.cfg written at its first start still names.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        **folders,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow_url}),
        "MLFLOW_TRACKING_URI": mlflow_url,
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def migrate_airflow_db(env: dict[str, str]) -> None:
    """Create or upgrade the SQLite metadata database (fast when already current)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_bin("airflow"), "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_dag_test(dag_id: str, env: dict[str, str], log_path: Path, conf: dict | None = None) -> int:
    """``airflow dags test <dag_id>``: the whole DAG in one process, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [_bin("airflow"), "dags", "test", dag_id]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    with open(log_path, "wb") as log:
        return subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


@dataclass
class AirflowStandalone:
    """``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) on 127.0.0.1.

    :param env: the environment from :func:`airflow_env` (its ``AIRFLOW_HOME`` is used).
    :param port: the api-server port (default: a free one).
    :param open_access: every caller is admin (tests only: no login, no tokens).
    :param unpause_new: DAGs seen for the first time start unpaused (tests); the UI stack keeps
        Airflow's default (paused until someone enables them).
    """

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    open_access: bool = False
    unpause_new: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / f"standalone-{self.port}.log"

    def start(self, timeout: float = 240.0) -> AirflowStandalone:
        env = {
            **self.env,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(not self.unpause_new),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        }
        if self.open_access:
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
        ensure_port_free(self.port, "airflow api-server", "--airflow-port")
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [_bin("airflow"), "standalone"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as r:
                    health = json.loads(r.read())
            except (OSError, ValueError):
                return False
            return bool(health.get("scheduler", {}).get("status") == "healthy")

        what = f"airflow standalone on {self.url} (scheduler healthy)"
        wait_healthy(self.process, ready, timeout, what, self.log_path)
        return self

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call the REST API (``/api/v2/...``); open access only."""
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def stop(self) -> None:
        """Stop every component (the process group this object started) and wait."""
        stop_group(self.process, grace=60)

    def __enter__(self) -> AirflowStandalone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
