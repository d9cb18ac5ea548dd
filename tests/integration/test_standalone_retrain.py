"""Scheduler-driven: a drift Asset event starts ``ml_training`` under ``airflow standalone``.

Starts a real ``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) on
127.0.0.1 with its own SQLite home, bounded in time, stopped by pid.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "demo_churn"


def _wait(predicate, timeout, what, airflow):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    tail = airflow.log_path.read_text()[-4000:] if airflow.log_path.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; standalone log tail:\n{tail}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """Its own MLOPS_HOME and MLflow server: the versions and events it makes stay out of the
    other tests' registry (they count versions of the same model)."""
    from airflow_mlops.devstack.demo_data import write_dataset
    from airflow_mlops.devstack.stack import AirflowStandalone, MLflowServer, airflow_env

    home = tmp_path_factory.mktemp("standalone-home")
    write_dataset(str(home / "data" / "demo_churn" / "train.parquet"), rows=20_000, seed=0)
    with MLflowServer(home / "mlflow") as server:
        env = airflow_env(home, server.url)
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
        # Only ml_training is enabled (below): a rollout started by its promotion would leave a
        # scoring server running after the test.
        with AirflowStandalone(env, open_access=True, unpause_new=False) as airflow:
            airflow.mlflow_url = server.url  # type: ignore[attr-defined]
            yield airflow


def test_drift_asset_event_starts_a_training_run_that_registers(standalone):
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.dags.assets import drift_asset

    tracking = TrackingConfig(tracking_uri=standalone.mlflow_url)
    before = {v.version for v in registry.search_versions(tracking, MODEL)}

    def dag_ready():
        try:
            standalone.api("PATCH", "/dags/ml_training", {"is_paused": False})
            return standalone.api("GET", "/dags/ml_training")["is_paused"] is False
        except OSError:
            return False

    _wait(dag_ready, 180, "ml_training to be parsed and unpaused", standalone)
    uri = drift_asset(MODEL).uri
    query = urllib.parse.urlencode({"uri_pattern": uri})

    def asset_id():
        found = standalone.api("GET", f"/assets?{query}")["assets"]
        return next((a["id"] for a in found if a["uri"] == uri), None)

    asset = _wait(asset_id, 120, f"asset {uri} to be registered", standalone)
    extra = {"model": MODEL, "version": "1", "drifted_columns": ["monthly_charges"]}
    standalone.api("POST", "/assets/events", {"asset_id": asset, "extra": extra})

    def finished_run():
        runs = standalone.api("GET", "/dags/ml_training/dagRuns?run_type=asset_triggered")
        done = [r for r in runs["dag_runs"] if r["state"] in ("success", "failed")]
        return done[0] if done else None

    run = _wait(finished_run, 600, "the asset-triggered ml_training run to finish", standalone)
    assert run["state"] == "success", run
    # The scheduler may also start a cron run of its own; the asset-triggered run is the one
    # whose id the new version carries.
    after = registry.search_versions(tracking, MODEL)
    new = [v for v in after if v.version not in before]
    from_event = [v for v in new if v.tags.get("mlops.airflow.run_id") == run["dag_run_id"]]
    assert len(from_event) == 1, [(v.version, v.tags.get("mlops.airflow.run_id")) for v in new]
    tags = from_event[0].tags
    assert tags["mlops.trigger.type"] == "asset"
    events = json.loads(tags["mlops.trigger.events"])
    assert events[0]["asset"] == uri
    assert events[0]["extra"]["drifted_columns"] == ["monthly_charges"]


def test_stopping_standalone_leaves_no_process_it_started(standalone):
    """Last in this module: after the stop, no component of ``airflow standalone`` (the
    scheduler was seen surviving, reparented to init) and no task process is left."""
    import psutil

    assert standalone.process is not None
    leader = psutil.Process(standalone.process.pid)
    started = [leader, *leader.children(recursive=True)]

    def running(proc: psutil.Process) -> list[str] | None:
        """The command line of a process still running, else None (gone or a zombie)."""
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            if proc.status() != psutil.STATUS_ZOMBIE:
                return proc.cmdline()[:3]
        return None

    names = " ".join(" ".join(running(p) or []) for p in started[1:])
    assert "scheduler" in names, names  # the components are really there to stop
    standalone.stop()
    left = [(p.pid, cmd) for p in started if (cmd := running(p)) is not None]
    assert left == []
