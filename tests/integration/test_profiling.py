"""Profiling a registered version: real MLflow server, real ONNX Runtime, real ``dag.test()``."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

pytestmark = pytest.mark.integration

# Small enough for a few seconds per profile; timings are never asserted.
TINY = {
    "batch_sizes": [1, 64, 1024],
    "threads": [1, 2],
    "latency_samples": 100,
    "warmup": 10,
    "load_repeats": 2,
    "throughput_seconds": 0.05,
}


@pytest.fixture(scope="module")
def profiled(champion):
    """The champion profiled once through the core function."""
    from airflow_mlops.core.profiling.profile import profile_registered

    config = replace(champion["config"], profiling=TINY)
    result = profile_registered(champion["tracking"], config, config.name, "champion")
    return champion, result


def test_profile_is_recorded_on_the_version(profiled):
    import mlflow

    from airflow_mlops.core.profiling.types import TAG_KEYS
    from airflow_mlops.core.registry import versions as registry

    champion, result = profiled
    tracking, registered = champion["tracking"], champion["registered"]
    assert result["version"] == registered["version"]
    version = registry.get_version(tracking, registered["name"], registered["version"])
    assert version is not None
    tags = version.tags
    for key in TAG_KEYS:
        if key != "slo_met":  # a bool in the result, "true"/"false" as a tag
            assert tags[f"mlops.profile.{key}"] == str(result[key]), key
    assert tags["mlops.profile.slo_met"] == ("true" if result["slo_met"] else "false")
    assert tags["mlops.profile.cpu_request"].endswith("m")
    assert tags["mlops.profile.memory_request"].endswith("Mi")
    assert tags["mlops.profile.report_uri"] == f"runs:/{registered['run_id']}/profile/profile.json"

    names = {a.path for a in tracking.client().list_artifacts(registered["run_id"], "profile")}
    assert names == {"profile/profile.json", "profile/profile.png"}
    with tracking.activate():
        report = json.loads(mlflow.artifacts.load_text(result["report_uri"]))
    # The report is the one the tags came from, and its sample is the version's reference.
    assert report["recommendation"]["cpu_request"] == tags["mlops.profile.cpu_request"]
    assert report["recommendation"]["batch_size"] == int(tags["mlops.profile.batch_size"])
    assert report["measurements"]["size_bytes"] == int(tags["mlops.onnx.size_bytes"])
    assert report["environment"]["sample_rows"] == 4096
    assert report["spec"]["batch_sizes"] == TINY["batch_sizes"]


def test_result_carries_the_slo_verdict_for_promotion(profiled):
    _, result = profiled
    # Whether a 5 ms p99 is met depends on the machine's load; with the gate off (the
    # default) promotion goes on either way, and the message says which it was.
    assert result["gate"]["enforced"] is False
    assert result["passed"] is True
    verdict = "met" if result["slo_met"] else "not met (profiling.gate is off"
    assert result["message"].startswith(f"profiling SLO {verdict}")
    assert "predicted p99 " in result["message"]
    assert json.loads(json.dumps(result)) == result  # XCom-safe
    assert result["report_url"].endswith(
        f"/runs/{result['run_id']}/artifactPath/profile/profile.png"
    )


def test_unknown_version_is_named(champion):
    from airflow_mlops.core.profiling.profile import profile_registered
    from airflow_mlops.core.profiling.types import ProfilingError

    with pytest.raises(ProfilingError, match="fixture_churn 999: no such version"):
        profile_registered(champion["tracking"], champion["config"], "fixture_churn", "999")


_DAG_FILE = """
import pendulum
from airflow.sdk import DAG
from airflow_mlops.operators.profiling import ProfileModelOperator

with DAG(
    dag_id="test_profile_model",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
):
    ProfileModelOperator(task_id="profile", config={config!r}, model={model!r})
"""


def _profile_dag(folder, config_path: str, model: str):
    """A one-task DAG file, parsed and written to the metadata DB as the dag-processor would
    (``dag.test()`` runs only DAGs it finds serialized)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    path = folder / "profile_dag.py"
    path.write_text(_DAG_FILE.format(config=config_path, model=model))
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()  # the bundle row the DAG row points to
    sync_bag_to_db(bag, "dags-folder", None)
    return bag.dags["test_profile_model"]


def test_operator_in_a_dag_returns_the_gate_and_persists_its_link(champion, airflow_db, tmp_path):
    """An enforced, unreachable SLO: the task still succeeds, and says promotion must not go on."""
    from airflow_mlops.links.profiling import MLflowProfileReportLink

    config = replace(
        champion["config"],
        profiling={**TINY, "gate": True, "slo": {"p99_ms": 0.0001, "requests_per_second": 500}},
    )
    # JSON is YAML: the operator reads it as a model config file.
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config.to_dict()))
    dag = _profile_dag(tmp_path, str(config_path), f"models:/{config.name}@champion")
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": champion["tracking"].tracking_uri}
    )
    try:
        run = dag.test()
    finally:
        os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
    (ti,) = run.get_task_instances()
    assert str(ti.state) == "success"
    result = ti.xcom_pull(task_ids="profile")
    assert result["passed"] is False and result["slo_met"] is False
    assert result["message"].startswith("profiling SLO gate failed: predicted p99 ")
    assert "exceeds target 0.0001 ms" in result["message"]
    link = ti.xcom_pull(task_ids="profile", key=MLflowProfileReportLink().xcom_key)
    assert link == result["report_url"]
