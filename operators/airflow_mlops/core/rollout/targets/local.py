"""The local target: the scoring server as a process on 127.0.0.1, weights shifted live.

Model versions are written as local model folders (``model.onnx`` + ``model.json``) under the
target's work folder, so the server never needs MLflow. The server's URL and pid are kept in
``<work_dir>/server.json``: a later task (another process) connects to the same server instead
of starting a second one.

Each start generates the server's admin token into ``<work_dir>/admin.token`` (mode 0600,
named in the server config, never on its command line, which ``ps`` shows to every user);
every admin call sends it as a Bearer token. The server may load folders only under
``<work_dir>/models``. A server given by ``local.url`` is driven with the token in
``MLOPS_SERVING_ADMIN_TOKEN``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from airflow_mlops import settings
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.rollout.analysis import Snapshot
from airflow_mlops.core.rollout.policy import LocalSpec
from airflow_mlops.core.rollout.targets.base import CanaryUnhealthy

log = logging.getLogger(__name__)


ADMIN_TOKEN_ENV = "MLOPS_SERVING_ADMIN_TOKEN"


def http(
    method: str,
    url: str,
    body: Any = None,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """One HTTP exchange with JSON in and text out; connection errors raise ``OSError``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return http("GET", f"{url}/health", timeout=2)[0] == 200
    except OSError:
        return False


class LocalTarget:
    """Drive a scoring server on this machine through ``/admin/routes`` and ``/metrics``.

    :param spec: the policy's ``local`` options.
    :param tracking: where MLflow is (model folders are downloaded from it).
    :param name: the registered model.
    :param keep_running: leave a server started here running on exit (Airflow tasks: the
        endpoint must outlive the task that deployed it).
    """

    name = "local"

    def __init__(
        self, spec: LocalSpec, tracking: TrackingConfig, name: str, keep_running: bool = False
    ) -> None:
        self.spec = spec
        self.tracking = tracking
        self.model = name
        self.keep_running = keep_running
        self.work_dir = Path(spec.work_dir or Path(settings.mlops_home()) / "rollout" / name)
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = spec.url.rstrip("/") if spec.url else None
        if self._url is None:
            self._url = self._recorded_url()

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep_running:
            self.stop()

    @property
    def state_file(self) -> Path:
        return self.work_dir / "server.json"

    @property
    def token_file(self) -> Path:
        """The admin token of the server this target started (0600)."""
        return self.work_dir / "admin.token"

    def _new_token(self) -> None:
        token = secrets.token_urlsafe(32)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older file may have been made with other bits
            os.write(fd, token.encode() + b"\n")
        finally:
            os.close(fd)

    def _admin_headers(self) -> dict[str, str]:
        try:
            token = self.token_file.read_text().strip()
        except OSError:
            token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _recorded_url(self) -> str | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        url = state.get("url")
        return url if url and _healthy(url) else None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError(f"no scoring server for {self.model}: start() one or give local.url")
        return self._url

    @property
    def endpoint(self) -> str:
        return self._url or f"http://{self.spec.host}:{self.spec.port or 'auto'}"

    @property
    def running(self) -> bool:
        return self._url is not None and _healthy(self._url)

    def model_folder(self, version: str) -> Path:
        """The version's local model folder (downloaded once, then reused)."""
        from airflow_mlops.core.packaging.context import model_folder

        folder = self.work_dir / "models" / f"v{version}"
        if not (folder / "model.json").is_file():
            model_folder(self.tracking, self.model, str(version), folder)
        return folder

    def start(self, version: str) -> str:
        """Start the server answering with ``version`` only; returns its URL."""
        if self.running:
            return self.url
        port = self.spec.port or _free_port(self.spec.host)
        config = {
            "model": self.model,
            "versions": {str(version): str(self.model_folder(version))},
            "routes": {str(version): 100},
            "shadow": None,
            "capture": {
                "dir": self.spec.capture_dir or "",
                "sample_rate": self.spec.capture_sample_rate if self.spec.capture_dir else 0.0,
            },
            "admin": {
                "token_file": str(self.token_file.resolve()),
                "model_root": str((self.work_dir / "models").resolve()),
            },
            "host": self.spec.host,
            "port": port,
        }
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._new_token()
        config_path = self.work_dir / "serving.json"
        config_path.write_text(json.dumps(config, indent=2))
        log_path = self.work_dir / "server.log"
        with log_path.open("ab") as log_file:
            # A session of its own: the server outlives a task process when keep_running.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "airflow_mlops.serving", "--config", str(config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://{self.spec.host}:{port}"
        deadline = time.monotonic() + self.spec.startup_timeout
        while not _healthy(url):
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"scoring server for {self.model} v{version} exited with code "
                    f"{self._proc.returncode}; log {log_path}:\n{tail}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"scoring server for {self.model} not healthy at {url}/health after "
                    f"{self.spec.startup_timeout:.0f}s; log {log_path}"
                )
            time.sleep(0.2)
        self._url = url
        self.state_file.write_text(json.dumps({"url": url, "pid": self._proc.pid}))
        log.info(
            "scoring server for %s v%s on %s (pid %s)", self.model, version, url, self._proc.pid
        )
        return url

    def stop(self) -> None:
        """Stop the server if this object started it (never one it only connected to).

        The versions it served lose their ``mlops.deployed.local`` record: nothing answers for
        them any more, and a stale record would make the live-version guard refuse the next
        promotion.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        served = self._served()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        self._forget(served)

    def stop_recorded(self) -> bool:
        """Stop the server an earlier task left running for this model (``server.json``).

        What ``ml_rollout`` starts outlives its task on purpose; this is its way out (``make
        airflow`` calls it on exit, ``airflow-mlops serve-stop`` on request). The pid is
        signalled only while it still runs this package's server. Returns whether one stopped.
        """
        try:
            state = json.loads(self.state_file.read_text())
            pid = int(state["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not _is_our_server(pid):
            self.state_file.unlink(missing_ok=True)
            return False
        self._url = self._url or state.get("url")
        served = self._served()
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and nothing else
        deadline = time.monotonic() + 15
        while _is_our_server(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_our_server(pid):
            os.killpg(pid, signal.SIGKILL)
        self._forget(served)
        log.info("stopped the scoring server of %s (pid %s)", self.model, pid)
        return True

    def _served(self) -> list[str]:
        try:
            doc = self.routes()
        except Exception:  # a server that cannot answer serves nothing worth recording
            return []
        return sorted({str(v) for v in [*(doc.get("routes") or {}), *doc.get("loaded", [])]})

    def _forget(self, served: list[str]) -> None:
        from airflow_mlops.core.rollout import records

        self._url = self.spec.url
        self.state_file.unlink(missing_ok=True)
        self.token_file.unlink(missing_ok=True)
        for version in served:
            records.clear(self.tracking, self.model, version, self.name)

    def routes(self) -> dict[str, Any]:
        """``GET /admin/routes``."""
        status, text = http("GET", f"{self.url}/admin/routes", headers=self._admin_headers())
        if status != 200:
            raise RuntimeError(f"GET {self.url}/admin/routes answered {status}: {text[:300]}")
        return dict(json.loads(text))

    def live_version(self) -> str | None:
        if not self.running:
            return None
        weights = {str(v): float(w) for v, w in self.routes().get("routes", {}).items()}
        return max(weights, key=lambda v: weights[v]) if weights else None

    def _put(self, body: dict[str, Any]) -> tuple[int, str]:
        return http(
            "PUT", f"{self.url}/admin/routes", body, timeout=120, headers=self._admin_headers()
        )

    def deploy_canary(self, version: str, baseline: str | None, shadow_share: float) -> None:
        if not self.running:
            self.start(baseline or version)
            if baseline is None:
                return
        try:
            folder = self.model_folder(version)
        except Exception as exc:
            raise CanaryUnhealthy(f"v{version}: model folder could not be made: {exc}") from exc
        current = baseline or self.live_version()
        routes = {str(current): 100, str(version): 0} if current else {str(version): 100}
        shadow = {"version": str(version), "share": shadow_share} if current else None
        status, text = self._put(
            {"routes": routes, "shadow": shadow, "sources": {str(version): str(folder)}}
        )
        if status != 200:
            raise CanaryUnhealthy(
                f"v{version} refused by the server at {self.url} (HTTP {status}): {_message(text)}"
            )
        ready_url = f"{self.url}/v2/models/{self.model}/versions/{version}/ready"
        status, text = http("GET", ready_url)
        if status != 200:
            raise CanaryUnhealthy(
                f"v{version} not ready at {ready_url} (HTTP {status}): {text[:300]}"
            )

    def set_weights(self, weights: dict[str, int], shadow: tuple[str, float] | None) -> None:
        body = {
            "routes": {str(v): int(w) for v, w in weights.items()},
            "shadow": {"version": shadow[0], "share": shadow[1]} if shadow else None,
        }
        status, text = self._put(body)
        if status != 200:
            raise RuntimeError(
                f"PUT {self.url}/admin/routes {body} answered {status}: {text[:300]}"
            )

    def snapshot(self) -> Snapshot:
        status, text = http("GET", f"{self.url}/metrics")
        if status != 200:
            raise RuntimeError(f"GET {self.url}/metrics answered {status}")
        return Snapshot.from_texts(text)

    def rollback(self, canary: str, baseline: str | None) -> None:
        if not self.running:
            return
        if baseline is not None:
            self.set_weights({baseline: 100}, None)

    def retire(self, version: str) -> None:
        """Unload ``version`` from the server once no route or shadow uses it (its memory back)."""
        if not self.running:
            return
        doc = self.routes()
        if str(version) not in doc.get("loaded", []):
            return
        status, text = self._put({"routes": doc.get("routes") or {}, "unload": [str(version)]})
        if status != 200:
            # Still routed or mirrored (the caller's mistake) or the server refused: say so,
            # the rollout's outcome does not depend on it.
            log.warning(
                "v%s not unloaded from %s: HTTP %s %s", version, self.url, status, text[:300]
            )
            return
        log.info("v%s retired and unloaded from %s", version, self.url)


def _is_our_server(pid: int) -> bool:
    """Whether ``pid`` still runs this package's scoring server (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"airflow_mlops.serving" in cmdline


def stop_recorded_servers(tracking: TrackingConfig, root: Path | None = None) -> list[str]:
    """Stop every scoring server ``ml_rollout`` left running under ``root`` (default
    ``$MLOPS_HOME/rollout``); returns the models whose server stopped."""
    root = root or Path(settings.mlops_home()) / "rollout"
    stopped = []
    for state in sorted(root.glob("*/server.json")):
        model = state.parent.name
        target = LocalTarget(LocalSpec(work_dir=str(state.parent)), tracking, model)
        if target.stop_recorded():
            stopped.append(model)
    return stopped


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))[:500]
    except (ValueError, AttributeError):
        return text[:500]


def reference_rows(
    tracking: TrackingConfig, name: str, version: str, features: list[str], rows: int = 200
) -> list[dict[str, Any]]:
    """Feature rows from the version's reference sample, as JSON-ready records for load."""
    import tempfile

    import pandas as pd

    from airflow_mlops.core.registry import versions as registry

    found = registry.get_version(tracking, name, str(version))
    uri = found.tags.get("mlops.reference.uri") if found else None
    if not uri:
        raise RuntimeError(f"{name} v{version} has no mlops.reference.uri tag to draw load from")
    path = tracking.download(uri, tempfile.mkdtemp())
    frame = pd.read_parquet(path, columns=features).head(rows)
    return [dict(r) for r in json.loads(frame.to_json(orient="records"))]


class LoadGenerator:
    """Bounded background load on ``/invocations`` (count and time capped), failures counted.

    :param url: the server.
    :param rows: request rows to cycle through (one row per request).
    :param max_requests: stop after this many requests.
    :param max_seconds: stop after this long.
    """

    def __init__(
        self,
        url: str,
        rows: list[dict[str, Any]],
        max_requests: int = 50_000,
        max_seconds: float = 300.0,
    ) -> None:
        self.url = url
        self.rows = rows
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.sent = 0
        self.failed = 0
        self.versions: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlops-load", daemon=True)

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop.is_set() and self.sent < self.max_requests:
            if time.monotonic() > deadline:
                return
            row = self.rows[i % len(self.rows)]
            i += 1
            body = json.dumps({"dataframe_records": [row]}).encode()
            request = urllib.request.Request(f"{self.url}/invocations", data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            self.sent += 1
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    version = response.headers.get("X-Model-Version", "?")
                    self.versions[version] = self.versions.get(version, 0) + 1
            except (urllib.error.HTTPError, OSError):
                self.failed += 1
