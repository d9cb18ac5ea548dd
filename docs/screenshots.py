"""Screenshots of the four lifecycle DAGs in the Airflow UI, for ``docs/dags/*.md``.

Given an ``MLOPS_HOME`` that ``make demo`` populated, this starts ``airflow api-server`` on
127.0.0.1 with that home's metadata database (every caller is admin: no login page), opens each
DAG's latest finished run in headless Chromium, once with the grid and once with the graph
view, waits until the React UI has drawn the tasks, and writes
``docs/img/dag-<dag_id>-grid.png`` and ``docs/img/dag-<dag_id>-graph.png``.

    .venv/bin/python docs/screenshots.py                      # the home of `make demo`
    .venv/bin/python docs/screenshots.py --run ml_rollout     # run a DAG first (dags test)

``make demo`` leaves no ``ml_rollout`` run (its rollout step calls the core runner directly);
``--run ml_rollout`` runs ``airflow dags test ml_rollout`` on the home first, against an MLflow
server started on the home's store, and stops the scoring server that run starts. Use it on a
copy of the home if the demo's state should stay as it is.

Chromium is driven through the DevTools protocol (``websocket-client``, already installed as a
dependency of the Docker and Kubernetes clients): the view (grid or graph) is switched with the
page's own buttons, which a command-line ``--screenshot`` cannot press.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_IDS = ("ml_training", "ml_batch_scoring", "ml_drift_monitor", "ml_rollout")
VIEWS = ("grid", "graph")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTH, HEIGHT = 1400, 900


def say(text: str) -> None:
    print(text, flush=True)


def home_env(home: Path, mlflow_url: str) -> dict[str, str]:
    """``devstack.airflow_env`` for ``home``, with the database and logs of that home.

    The home's ``airflow.cfg`` names absolute paths from where it was created; the environment
    wins over it, so a copied or moved home still opens its own database.
    """
    from airflow_mlops.devstack.stack import airflow_env

    env = airflow_env(home, mlflow_url)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow' / 'airflow.db'}"
    env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(home / "airflow" / "logs")
    return env


def run_dags(home: Path, dag_ids: list[str]) -> None:
    """``airflow dags test`` each DAG on ``home`` with an MLflow server on the home's store."""
    from airflow_mlops.devstack import stack as devstack

    with devstack.MLflowServer(home / "mlflow") as server:
        env = home_env(home, server.url)
        for dag_id in dag_ids:
            state = home / "rollout"
            before = {p: p.read_text() for p in state.glob("*/server.json")}
            log = home / "logs" / f"screenshots-{dag_id}.log"
            say(f"airflow dags test {dag_id} (log {log}) ...")
            with _traffic(home, state, before) if dag_id == "ml_rollout" else _nothing():
                code = devstack.run_dag_test(dag_id, env, log)
            say(f"  exit {code}")
            _stop_new_scoring_servers(state, before, server.url)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _traffic(home: Path, state: Path, before: dict[Path, str]) -> Iterator[None]:
    """Bounded load on the scoring server the rollout starts, so its steps have requests to
    judge (nothing else sends traffic on a laptop): rows of the demo's own data."""
    import threading

    import pandas as pd

    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.rollout.targets.local import LoadGenerator

    config = load_config(REPO_ROOT / "dags" / "configs" / "demo_churn.yaml")
    frame = pd.read_parquet(home / "data" / config.name / "train.parquet").head(200)
    rows = json.loads(frame[list(config.data.features)].to_json(orient="records"))
    done = threading.Event()
    loads: list[LoadGenerator] = []

    def send() -> None:
        while not done.wait(0.5):
            for path in state.glob("*/server.json"):
                if before.get(path) != path.read_text():
                    url = json.loads(path.read_text())["url"]
                    loads.append(LoadGenerator(url, rows, max_requests=100_000, max_seconds=900))
                    loads[-1].start()
                    say(f"  sending load to {url} while the rollout runs")
                    return

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
        for load in loads:
            load.stop()
            say(f"  {load.sent} requests sent, {load.failed} failed; by version {load.versions}")


def _stop_new_scoring_servers(state: Path, before: dict[Path, str], mlflow_url: str) -> None:
    """A local rollout leaves its scoring server running (it must outlive the task); stop the
    ones this run started (their versions' deployed records cleared), and nothing else."""
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.core.rollout.policy import LocalSpec
    from airflow_mlops.core.rollout.targets.local import LocalTarget

    for path in state.glob("*/server.json"):
        if before.get(path) == path.read_text():
            continue
        target = LocalTarget(
            LocalSpec(work_dir=str(path.parent)), TrackingConfig(mlflow_url), path.parent.name
        )
        if target.stop_recorded():
            say(f"  stopped the scoring server the run started ({path})")


@contextlib.contextmanager
def api_server(home: Path, port: int) -> Iterator[str]:
    """``airflow api-server`` on 127.0.0.1 over the home's database; every caller is admin."""
    from airflow_mlops.devstack.stack import _bin, ensure_port_free, stop_group, wait_healthy

    url = f"http://127.0.0.1:{port}"
    env = {
        **home_env(home, "http://127.0.0.1:5000"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    ensure_port_free(port, "airflow api-server", "--port")
    log_path = home / "airflow" / f"api-server-screenshots-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [_bin("airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            health = f"{url}/api/v2/monitor/health"
            wait_healthy(
                proc, lambda: _answers(health), 180, f"airflow api-server on {url}", log_path
            )
            yield url
        finally:
            stop_group(proc, grace=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def latest_run(base: str, dag_id: str) -> dict[str, Any] | None:
    """The newest finished run of ``dag_id`` (success first, else failed), or ``None``."""
    for state in ("success", "failed"):
        query = urllib.parse.urlencode({"order_by": "-run_after", "limit": 1, "state": state})
        runs = get_json(f"{base}/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]
        if runs:
            return dict(runs[0])
    return None


def task_ids(base: str, dag_id: str) -> list[str]:
    return [t["task_id"] for t in get_json(f"{base}/api/v2/dags/{dag_id}/tasks")["tasks"]]


class Browser:
    """Headless Chromium driven through the DevTools protocol on one page."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self.next_id = 0

    def __enter__(self) -> Browser:
        import websocket  # websocket-client, a dependency of the docker/kubernetes clients

        if not os.path.exists(CHROMIUM):
            raise SystemExit(
                f"{CHROMIUM} absent: apt-get install -y --no-install-recommends chromium "
                "fonts-dejavu-core (or set CHROMIUM to the browser's path)"
            )
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        pages = [t for t in get_json(f"http://127.0.0.1:{port}/json/list") if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60)
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        from airflow_mlops.devstack.stack import stop_group

        if self.ws is not None:
            self.ws.close()
        stop_group(self.proc, grace=10)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are dropped)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        """Load ``url`` afresh: wait until the old document (marked here) is gone."""
        self.evaluate("window.__leaving = true")
        self.call("Page.navigate", url=url)
        self.wait_for("!window.__leaving && document.readyState === 'complete'", url)

    def click(self, selector: str) -> bool:
        """Click the first element matching ``selector``; ``False`` when there is none."""
        found = json.dumps(selector)
        return bool(
            self.evaluate(f"(e => e ? (e.click(), true) : false)(document.querySelector({found}))")
        )

    def wait_for(self, expression: str, what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                text = str(self.evaluate("document.body && document.body.innerText") or "")
                raise RuntimeError(f"timed out waiting for {what}; page text: {text[:500]!r}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


def _rendered(view: str, tasks: list[str]) -> str:
    """A JavaScript condition: the view shows the DAG's tasks and no loading bar is visible."""
    drawn = (
        f"{json.dumps(tasks)}.every(t => document.body.innerText.includes(t))"
        if view == "grid"
        else f"document.querySelectorAll('.react-flow__node').length >= {len(tasks)}"
    )
    # The UI keeps its loading bars in the page and hides them with `visibility: hidden`.
    loading = (
        "Array.from(document.querySelectorAll('.chakra-spinner, [role=progressbar]'))"
        ".some(e => getComputedStyle(e).visibility === 'visible'"
        " && e.getBoundingClientRect().height > 0)"
    )
    return f"(() => !!document.body && !({loading}) && {drawn})()"


def _show(browser: Browser, view: str, tasks: list[str], dag_id: str) -> None:
    """Switch the open DAG page to ``view``; the graph gets the whole width, fitted, with the
    Assets next to the tasks (set before the page was opened)."""
    button = f'button[aria-label^="Show {view.title()}"]'
    browser.wait_for(f"!!document.querySelector({json.dumps(button)})", f"{dag_id}'s page")
    browser.click(button)
    if view == "graph":
        browser.wait_for(_rendered(view, tasks), f"the graph of {dag_id}")
        if browser.click('button[aria-label="Collapse Details Panel"]'):
            time.sleep(1)
        browser.click(".react-flow__controls-fitview")
    browser.wait_for(_rendered(view, tasks), f"the {view} view of {dag_id}")


def capture(base: str, out_dir: Path, dag_ids: list[str], settle: float) -> list[Path]:
    """Two screenshots per DAG: its latest finished run in the grid view and the graph view."""
    written = []
    with (
        tempfile.TemporaryDirectory(prefix="mlops-chromium-") as profile,
        Browser(Path(profile)) as browser,
    ):
        for dag_id in dag_ids:
            run = latest_run(base, dag_id)
            tasks = task_ids(base, dag_id)
            if run is None:
                say(f"{dag_id}: no finished run; the views show the DAG without a run")
                page = f"{base}/dags/{dag_id}"
            else:
                page = f"{base}/dags/{dag_id}/runs/{urllib.parse.quote(run['dag_run_id'])}"
            for view in VIEWS:
                browser.open(page)
                if view == "grid":
                    # The graph also draws the Assets the DAG is scheduled on and updates.
                    key = json.dumps(f"dependencies-{dag_id}")
                    browser.evaluate(f"localStorage.setItem({key}, '\"immediate\"')")
                _show(browser, view, tasks, dag_id)
                time.sleep(settle)  # layout animations and the last API answers
                path = out_dir / f"dag-{dag_id}-{view}.png"
                browser.screenshot(path)
                state = f"run {run['dag_run_id']} ({run['state']})" if run else "no run"
                say(f"{path}: {dag_id} {view}, {state}")
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    from airflow_mlops.devstack.stack import free_port

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        default=os.environ.get("MLOPS_HOME", str(REPO_ROOT / ".mlops")),
        help="the MLOPS_HOME `make demo` filled (default: $MLOPS_HOME, else .mlops)",
    )
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "img"))
    parser.add_argument("--dag", action="append", choices=DAG_IDS, help="default: all four")
    parser.add_argument(
        "--run", action="append", default=[], choices=DAG_IDS, help="airflow dags test it first"
    )
    parser.add_argument("--port", type=int, default=0, help="api-server port (default: free)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after rendering")
    args = parser.parse_args(argv)

    home = Path(args.home).resolve()
    if not (home / "airflow" / "airflow.db").exists():
        say(f"{home / 'airflow' / 'airflow.db'} does not exist: run `make demo` first")
        return 2
    os.environ["MLOPS_HOME"] = str(home)
    if args.run:
        run_dags(home, args.run)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with api_server(home, args.port or free_port()) as base:
        say(f"airflow api-server on {base} (database {home / 'airflow' / 'airflow.db'})")
        capture(base, out_dir, list(args.dag or DAG_IDS), args.settle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
