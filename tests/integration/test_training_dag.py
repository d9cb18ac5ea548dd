"""``ml_training`` end to end: real MLflow server, real Airflow ``dag.test()`` runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.integration

MODEL = "demo_churn"


@pytest.fixture(scope="module")
def webhook():
    """A receiver for lifecycle events, reached through the ``mlops_events`` connection."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["AIRFLOW_CONN_MLOPS_EVENTS"] = json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_port}/events"}
    )
    yield received
    os.environ.pop("AIRFLOW_CONN_MLOPS_EVENTS", None)
    server.shutdown()


def _events(mlops_home, kind):
    from airflow_mlops.core.events import read_events

    log = mlops_home / "events" / "events.jsonl"
    return [e for e in read_events(log) if e["kind"] == kind and e["model"] == MODEL]


@pytest.fixture(scope="module")
def stack(mlflow_server, airflow_db, mlops_home, tmp_path_factory, webhook):
    """Airflow pointed at the MLflow server through an ``mlflow`` connection, demo data ready."""
    from airflow_mlops.devstack.demo_data import write_dataset

    data = tmp_path_factory.mktemp("data")
    write_dataset(str(mlops_home / "data" / "demo_churn" / "train.parquet"), rows=20_000, seed=0)
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": mlflow_server}
    )
    from airflow_mlops.core.registry.tracking import TrackingConfig

    yield {"tracking": TrackingConfig(tracking_uri=mlflow_server), "data": data, "home": mlops_home}
    os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / "ml_training.py"))
    assert bag.import_errors == {}
    return bag.dags["ml_training"]


def _states(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_first_run_registers_and_promotes_v1(stack):
    from airflow_mlops.core.registry import versions as registry

    run = _dag().test()
    assert str(run.state) == "success", _states(run)
    champion = registry.get_version(stack["tracking"], MODEL, "champion")
    assert champion is not None and champion.version == "1"
    # The champion is no longer a challenger: one version, one role.
    assert set(champion.aliases) == {"champion"}
    tags = champion.tags
    # Lineage: Airflow ids, data fingerprint, validation, parity, metrics, trigger.
    assert tags["mlops.airflow.dag_id"] == "ml_training"
    assert tags["mlops.airflow.task_id"] == "register"
    assert tags["mlops.data.rows"] == "20000"
    assert len(tags["mlops.data.sha256"]) == 64
    assert tags["mlops.validation.success"] == "true"
    assert float(tags["mlops.parity.max_abs_diff"]) <= 1e-4
    assert float(tags["mlops.metric.roc_auc"]) > 0.7
    assert tags["mlops.evaluation.passed"] == "true"
    assert "mlops.trigger.type" in tags


def test_first_run_recorded_lifecycle_events(stack, mlops_home, webhook):
    registered = _events(mlops_home, "model_registered")
    promoted = _events(mlops_home, "model_promoted")
    assert [e["version"] for e in registered] == ["1"]
    assert [e["version"] for e in promoted] == ["1"]
    assert promoted[0]["source"]["task_id"] == "promote"
    assert {(e["kind"], e["version"]) for e in webhook} >= {
        ("model_registered", "1"),
        ("model_promoted", "1"),
    }


def test_champion_loads_with_pyfunc_and_onnx_runtime_with_native_parity(stack):
    import mlflow

    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.data.io import load_frame
    from airflow_mlops.core.model.session import load_session
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.training.parity import predict_proba_onnx
    from tests.conftest import REPO

    tracking = stack["tracking"]
    config = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    frame = load_frame(config.data.uri).head(500)
    features = frame[list(config.data.features)]
    champion = registry.get_version(tracking, MODEL, "champion")
    with tracking.activate():
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
        native = mlflow.sklearn.load_model(f"runs:/{champion.run_id}/native")
    expected = native.predict_proba(features)
    via_pyfunc = pyfunc.predict(features).filter(like="probability_").to_numpy()
    session = load_session(registry.download_onnx(tracking, f"models:/{MODEL}@champion"))
    via_ort = predict_proba_onnx(
        session, features, config.data.numeric_features, config.data.categorical_features
    )
    assert via_pyfunc.shape == expected.shape == via_ort.shape
    assert np.abs(via_pyfunc - expected).max() <= config.onnx.max_abs_diff
    assert np.abs(via_ort - expected).max() <= config.onnx.max_abs_diff


def test_second_run_on_worse_data_registers_v2_but_keeps_champion(stack):
    """Labels shuffled: the challenger falls below the roc_auc threshold and is rejected."""
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.devstack.demo_data import generate

    frame = generate(20_000, seed=1)
    frame["churned"] = np.random.default_rng(0).permutation(frame["churned"].to_numpy())
    bad = str(stack["data"] / "shuffled.parquet")
    write_parquet_atomic(frame, bad)

    run = _dag().test(run_conf={"data_uri": bad})
    states = _states(run)
    assert states["register"] == "success", states
    assert states["promote"] == "skipped", states
    tracking = stack["tracking"]
    assert registry.get_version(tracking, MODEL, "champion").version == "1"
    v2 = registry.get_version(tracking, MODEL, "challenger")
    assert v2.version == "2"
    assert v2.tags["mlops.evaluation.passed"] == "false"
    assert "roc_auc" in v2.tags["mlops.promotion"] and v2.tags["mlops.promotion"].startswith(
        "rejected"
    )
    assert v2.tags["mlops.data.uri"] == bad
    rejected = _events(stack["home"], "promotion_rejected")
    assert [e["version"] for e in rejected] == ["2"]
    assert "roc_auc" in rejected[0]["message"]


def test_bad_input_fails_at_prepare_and_registers_nothing(stack):
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.devstack.demo_data import generate

    frame = generate(2_000, seed=2).drop(columns=["monthly_charges"])
    bad = str(stack["data"] / "missing_column.parquet")
    write_parquet_atomic(frame, bad)
    before = len(registry.search_versions(stack["tracking"], MODEL))

    run = _dag().test(run_conf={"data_uri": bad})
    states = _states(run)
    assert str(run.state) == "failed"
    assert states["prepare"] == "failed", states
    assert states["register"] != "success"
    assert len(registry.search_versions(stack["tracking"], MODEL)) == before
    assert registry.get_version(stack["tracking"], MODEL, "champion").version == "1"


def test_a_retrain_on_identical_data_and_config_registers_nothing(stack):
    """Same data bytes, same config, same metrics as v1: register names v1, nothing new."""
    from airflow_mlops.core.registry import versions as registry

    tracking = stack["tracking"]
    before = registry.search_versions(tracking, MODEL)
    run = _dag().test()
    states = _states(run)
    assert str(run.state) == "success", states
    assert states["register"] == "success", states
    assert states["profile"] == "skipped" and states["promote"] == "skipped", states
    assert registry.search_versions(tracking, MODEL) == before
    register = next(ti for ti in run.get_task_instances() if ti.task_id == "register")
    result = register.xcom_pull(task_ids="register")
    assert result["unchanged"] is True and result["version"] == "1", result
    assert "v1 already holds this model" in result["message"]
    assert registry.get_version(tracking, MODEL, "champion").version == "1"

    # Asked for in the run conf: a new version, the same model again.
    run = _dag().test(run_conf={"register_identical": True})
    assert _states(run)["register"] == "success", _states(run)
    newest = registry.search_versions(tracking, MODEL)[0]
    assert int(newest.version) == int(before[0].version) + 1
    assert (
        newest.tags["mlops.data.sha256"]
        == registry.get_version(tracking, MODEL, "1").tags["mlops.data.sha256"]
    )
