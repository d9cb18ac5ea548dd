"""``ml_rollout`` with ``dag.test()``: a real scoring server, real MLflow, bounded real load.

No server is running when the run starts (as after a restart): the DAG must start the
registry's champion as the baseline, put the candidate beside it at 0 %, shift traffic while a
load generator sends requests, judge every step against the champion, and move ``champion``
only after the last step. The server the run leaves up (on purpose: it is the endpoint) is
stopped here by the pid it recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import urllib.request
from dataclasses import replace

import pytest

pytest.importorskip("airflow_mlops.serving", reason="the scoring server package is not here")

pytestmark = pytest.mark.integration

MODEL = "fixture_churn_dagroll"


@pytest.fixture(scope="module")
def rollout_setup(champion, airflow_db, mlflow_server, mlops_home, tmp_path_factory):
    """v1 champion and v2 candidate of ``MODEL``; a config whose rollout is local and quick."""
    import yaml

    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.devstack.stack import free_port
    from tests.conftest import register_copies

    config = replace(champion["config"], name=MODEL)
    tracking = champion["tracking"]
    versions = register_copies(champion, MODEL, 2, str(mlops_home / "work" / "dagroll-fixture"))
    registry.promote(tracking, MODEL, versions[0], "champion")
    registry.promote(tracking, MODEL, versions[1], "candidate")

    work = tmp_path_factory.mktemp("dagroll")
    port = free_port()
    raw = json.loads(json.dumps(config.to_dict(), default=list))
    raw["data"] = {**raw["data"], "features": {
        "numeric": raw["data"].pop("numeric_features"),
        "categorical": raw["data"].pop("categorical_features"),
    }}  # fmt: skip
    raw["rollout"] = {
        "target": "local",
        "steps": [50, 100],
        "bake_seconds": 0.5,
        "min_requests": 10,
        "analysis_timeout_seconds": 60,
        "max_p99_ms": 1000,
        "min_agreement": 0.9,
        "shadow_share": 0.5,
        "local": {"work_dir": str(work / MODEL), "port": port},
    }
    raw.pop("approval", None)
    path = work / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(raw))
    os.environ["MLOPS_ROLLOUT_CONFIG"] = str(path)
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": mlflow_server}
    )
    try:
        yield {
            "tracking": tracking,
            "versions": versions,
            "url": f"http://127.0.0.1:{port}",
            "work": work,
            "features": list(config.data.features),
        }
    finally:
        os.environ.pop("MLOPS_ROLLOUT_CONFIG", None)
        os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
        _stop_left_server(work)


def _stop_left_server(work) -> None:
    state = work / MODEL / "server.json"
    if state.exists():
        pid = json.loads(state.read_text())["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # the server runs in a session of its own


def _load_when_up(url: str, tracking, version: str, features: list[str], stop: threading.Event):
    """Wait for the server the DAG starts, then send bounded load until told to stop."""
    from airflow_mlops.core.rollout.targets.local import LoadGenerator, reference_rows

    deadline = time.monotonic() + 600
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    rows = reference_rows(tracking, MODEL, version, features, rows=50)
    # Bounded by time, not by a count a fast server reaches before the last step (30k requests
    # ran out at the 50 % step in one CI run: "v2 answered 0 requests").
    load = LoadGenerator(url, rows, max_requests=1_000_000, max_seconds=300)
    load.start()
    stop.wait(timeout=300)
    load.stop()
    return load


def test_rollout_dag_starts_the_champion_as_baseline_and_promotes_after_the_last_step(
    rollout_setup,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.rollout import records
    from tests.conftest import REPO

    tracking = rollout_setup["tracking"]
    v1, v2 = rollout_setup["versions"]
    stop = threading.Event()
    result: dict = {}
    loader = threading.Thread(
        target=lambda: result.update(
            load=_load_when_up(rollout_setup["url"], tracking, v1, rollout_setup["features"], stop)
        ),
        daemon=True,
    )
    loader.start()
    try:
        bag = DagBag(dag_folder=str(REPO / "dags" / "ml_rollout.py"))
        assert bag.import_errors == {}
        run = bag.dags["ml_rollout"].test()
        tis = {ti.task_id: ti for ti in run.get_task_instances()}
        states = {task: str(ti.state) for task, ti in tis.items()}
        live = {v: records.deployments(tracking, MODEL, v) for v in (v1, v2)}
    finally:
        stop.set()
        loader.join(timeout=30)

    assert str(run.state) == "success", states
    assert states["rollback"] == "skipped"
    deployed = tis["deploy_canary"].xcom_pull(task_ids="deploy_canary")
    assert deployed["baseline"] == v1, deployed  # started from the registry, not "first version"
    steps = [tis[f"shift_{p}"].xcom_pull(task_ids=f"shift_{p}") for p in (50, 100)]
    assert [s["percent"] for s in steps] == [50, 100]
    first = steps[0]["analysis"]
    assert first["canary"]["requests"] >= 10 and first["baseline"]["requests"] >= 10
    assert first["canary"]["agreement"] == 1.0  # the same pipeline: mirrored rows agree
    assert registry.get_version(tracking, MODEL, "champion").version == v2
    assert registry.get_version(tracking, MODEL, "candidate") is None
    assert live[v2][0].weight == 100 and live[v1] == []
    assert result["load"].failed == 0
    assert result["load"].versions.get(v1, 0) > 0 and result["load"].versions.get(v2, 0) > 0

    # What the run left serving stops on request (`make airflow` does this on exit), and its
    # versions stop counting as live.
    from airflow_mlops.core.rollout.targets.local import stop_recorded_servers

    state = rollout_setup["work"] / MODEL / "server.json"
    pid = json.loads(state.read_text())["pid"]
    assert stop_recorded_servers(tracking, root=rollout_setup["work"]) == [MODEL]
    assert not state.exists()
    from airflow_mlops.core.rollout.targets.local import _is_our_server

    assert not _is_our_server(pid)
    assert records.deployments(tracking, MODEL, v2) == []
    assert stop_recorded_servers(tracking, root=rollout_setup["work"]) == []  # nothing left
