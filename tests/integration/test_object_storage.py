"""Object storage end to end: data, run folder, models and MLflow artifacts all on ``s3://``.

A real S3-compatible server (moto's server mode, HTTP on 127.0.0.1) stands where MinIO stands in
``docker-compose.yaml``; the MLflow server is started the way the compose file starts it
(``--artifacts-destination s3://mlflow/`` with ``MLFLOW_S3_ENDPOINT_URL``). The AWS variables
(fake credentials, the endpoint) exist only while this module runs.

First the training steps are called one by one; then ``ml_training``, ``ml_batch_scoring`` and
``ml_drift_monitor`` run with ``dag.test()`` from one config whose data, run folder, scoring
input and output and monitoring layout are all in the bucket, and bad input on ``s3://`` must
fail naming the URI. Some objects are written with boto3 instead of s3fs: another writer (a
producer landing data) that this process's cached listings do not know about.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("s3fs", reason="s3fs is not installed (pin s3fs==2026.9.0)")
pytest.importorskip("moto.server", reason="moto is not installed (pin moto[s3]==5.2.5)")

pytestmark = pytest.mark.integration

MODEL = "s3_churn"
ROWS = 3_000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, the AWS environment pointing at it."""
    import fsspec
    from moto.server import ThreadedMotoServer

    # One line per request from werkzeug would drown the test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # botocore (s3fs through aiobotocore) and MLflow's S3 artifact store read these.
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        fsspec.filesystem("s3", skip_instance_cache=True)
        fs = fsspec.filesystem("s3")
        fs.mkdir("mlops")
        fs.mkdir("mlflow")
        try:
            yield {"endpoint": endpoint, **env}
        finally:
            # s3fs caches filesystems by their arguments, not by the environment: a later test
            # must not reuse a client bound to this (stopped) endpoint.
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture(scope="module")
def mlflow_s3(s3: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` as in docker-compose.yaml: artifacts proxied to ``s3://mlflow/``."""
    from airflow_mlops.devstack.stack import MLflowServer

    root = tmp_path_factory.mktemp("mlflow-s3")
    with MLflowServer(root, artifacts_destination="s3://mlflow/") as server:
        yield server.url


def _config(data_uri: str, work_dir: str):
    """The demo config on S3, with a fast linear model (the suite stays quick)."""
    from airflow_mlops.core.config.model import load_config
    from tests.conftest import REPO

    base = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    return replace(
        base,
        name=MODEL,
        data=replace(base.data, uri=data_uri),
        training=replace(
            base.training,
            estimator="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 300},
        ),
        work_dir=work_dir,
    )


def test_training_steps_read_and_write_s3_and_mlflow_keeps_artifacts_in_the_bucket(
    s3: dict[str, str], mlflow_s3: str
) -> None:
    import fsspec

    from airflow_mlops.core.pipeline import steps
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.devstack.demo_data import write_dataset

    fs = fsspec.filesystem("s3")
    write_dataset("s3://mlops/data/s3_churn/train.parquet", rows=ROWS, seed=0)
    config = _config("s3://mlops/data/s3_churn/train.parquet", "s3://mlops/work")
    out = steps.run_dir(config.work_dir, "pytest", "manual__s3")
    tracking = TrackingConfig(tracking_uri=mlflow_s3)

    prepared = steps.prepare(config, out)
    assert prepared["train_uri"] == f"{out}/train.parquet"
    assert prepared["train_rows"] + prepared["holdout_rows"] == ROWS
    validation = steps.validate(config, prepared["train_uri"], report_uri=f"{out}/validation.json")
    trained = steps.train(config, prepared, out)
    converted = steps.convert(config, prepared, trained, out)
    evaluation = steps.evaluate(tracking, config, prepared, trained)
    registered = steps.register(
        tracking,
        config,
        prepared=prepared,
        validation=validation,
        trained=trained,
        evaluation=evaluation,
        converted=converted,
        airflow={"dag_id": "pytest"},
    )

    run_folder = out.removeprefix("s3://")
    written = {path.rsplit("/", 1)[-1] for path in fs.find(run_folder)}
    assert written == {
        "train.parquet",
        "holdout.parquet",
        "validation.json",
        "model.joblib",
        "model.onnx",
    }, "temporary files were left behind or an output is missing"
    assert json.loads(fs.cat(f"{run_folder}/validation.json"))["success"] is True

    # MLflow proxied the artifacts into the bucket; the registered ONNX model is the very file
    # the convert step wrote to the run folder.
    artifacts = fs.find("mlflow")
    assert any(path.endswith("/model.onnx") for path in artifacts), artifacts[:20]
    assert any(path.endswith("reference/reference.parquet") for path in artifacts)
    downloaded = Path(registry.download_onnx(tracking, registered["model_uri"])).read_bytes()
    assert downloaded == fs.cat(f"{run_folder}/model.onnx")
    version = registry.get_version(tracking, MODEL, registered["version"])
    assert version is not None
    assert version.tags["mlops.data.uri"] == "s3://mlops/data/s3_churn/train.parquet"
    assert version.tags["mlops.data.rows"] == str(ROWS)


FLOW = "s3_flow"
TRAIN_ROWS = 20_000
DAY = "2024-06-01"
DRIFT_DAY = "2024-06-02"
BAD_DAY = "2024-06-03"
SAMPLE_ROWS = 1_000
BUCKET = "s3://mlops"


@pytest.fixture(scope="module")
def flow(
    s3: dict[str, str], mlflow_s3: str, airflow_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """One config for the three DAGs, everything it points at on s3://.

    The DAG files read the config's path from the environment when parsed; tasks run in this
    process and reach MLflow through the ``mlflow_default`` connection (also from the
    environment).
    """
    import yaml

    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.devstack.demo_data import write_dataset
    from tests.conftest import REPO

    write_dataset(f"{BUCKET}/data/{FLOW}/train.parquet", rows=TRAIN_ROWS, seed=0)
    raw = yaml.safe_load((REPO / "dags" / "configs" / "demo_churn.yaml").read_text())
    raw.pop("rollout")  # champion moves at promotion; ml_rollout is not part of this test
    raw["name"] = FLOW
    raw["data"]["uri"] = f"{BUCKET}/data/{FLOW}/train.parquet"
    raw["training"] = {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 300},
    }
    raw["work_dir"] = f"{BUCKET}/work"
    raw["scoring"] = {
        "input_uri": f"{BUCKET}/incoming/{FLOW}",
        "output_uri": f"{BUCKET}/scored/{FLOW}",
        "monitoring_dir": f"{BUCKET}/monitoring",
        "sample_rows": SAMPLE_ROWS,
        "batch_rows": 1_000,
    }
    raw["monitoring"] = {
        "monitoring_dir": f"{BUCKET}/monitoring",
        "consecutive_windows": 1,
        "report_rows": 1_000,
    }
    # A short profile: its figures are not what this module checks.
    raw["profiling"] = {
        "batch_sizes": [1, 1024],
        "threads": [1],
        "latency_samples": 200,
        "warmup": 20,
        "load_repeats": 2,
        "throughput_seconds": 0.1,
    }
    config = tmp_path_factory.mktemp("s3-config") / f"{FLOW}.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow_s3})
        )
        for name in ("MLOPS_TRAINING_CONFIG", "MLOPS_SCORING_CONFIG", "MLOPS_MONITOR_CONFIG"):
            patch.setenv(name, str(config))
        yield {"config": config, "tracking": TrackingConfig(tracking_uri=mlflow_s3)}


def _dag(file: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / file))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def _states(run) -> dict:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def _bucket_path(artifact_uri: str) -> str:
    """Where the proxied ``mlflow-artifacts:/`` URI lives in the bucket."""
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    return "mlflow/" + artifact_uri.removeprefix("mlflow-artifacts:/").lstrip("/")


def test_training_dag_on_s3_registers_a_champion_whose_artifacts_are_in_the_bucket(flow):
    import hashlib

    import fsspec
    import pyarrow.parquet as pq

    from airflow_mlops.core.registry import versions as registry

    fs = fsspec.filesystem("s3")
    run = _dag("ml_training.py", "ml_training").test()
    assert str(run.state) == "success", _states(run)

    version = registry.get_version(flow["tracking"], FLOW, "champion")
    assert version is not None and version.version == "1"
    tags = version.tags
    assert tags["mlops.airflow.dag_id"] == "ml_training"
    assert tags["mlops.airflow.run_id"] == run.run_id
    assert tags["mlops.data.uri"] == f"{BUCKET}/data/{FLOW}/train.parquet"
    assert tags["mlops.data.rows"] == str(TRAIN_ROWS)
    source = fs.cat(f"mlops/data/{FLOW}/train.parquet")
    assert tags["mlops.data.sha256"] == hashlib.sha256(source).hexdigest()
    assert tags["mlops.validation.success"] == "true"
    assert float(tags["mlops.parity.max_abs_diff"]) <= 1e-4
    assert tags["mlops.parity.label_disagreements"] == "0"
    assert tags["mlops.evaluation.passed"] == "true"

    # The run folder: every step's file, nothing half-written left behind.
    from airflow_mlops.core.pipeline.steps import run_dir

    folder = run_dir(f"{BUCKET}/work", "ml_training", run.run_id).removeprefix("s3://")
    assert {p.rsplit("/", 1)[-1] for p in fs.find(folder)} == {
        "train.parquet",
        "holdout.parquet",
        "validation.json",
        "model.joblib",
        "model.onnx",
    }
    assert json.loads(fs.cat(f"{folder}/validation.json"))["success"] is True

    # The version's models and reference sample, proxied by MLflow into the bucket.
    client = flow["tracking"].client()
    mlflow_run = client.get_run(version.run_id)
    run_artifacts = _bucket_path(mlflow_run.info.artifact_uri)
    reference = f"{run_artifacts}/reference/reference.parquet"
    assert tags["mlops.reference.uri"] == f"runs:/{version.run_id}/reference/reference.parquet"
    with fs.open(reference, "rb") as fh:
        assert pq.read_metadata(fh).num_rows == int(tags["mlops.reference.rows"]) > 0
    assert fs.exists(f"{run_artifacts}/reports/validation.json")
    logged = {
        m.name: _bucket_path(m.artifact_location)
        for m in client.search_logged_models(
            experiment_ids=[mlflow_run.info.experiment_id],
            filter_string=f"source_run_id = '{version.run_id}'",
        )
    }
    assert set(logged) == {"model", "native"}, logged
    onnx_files = [p for p in fs.find(logged["model"]) if p.endswith(".onnx")]
    assert len(onnx_files) == 1, onnx_files
    assert fs.cat(onnx_files[0]) == fs.cat(f"{folder}/model.onnx")
    assert any(p.endswith("model.skops") for p in fs.find(logged["native"]))


def _write_day(day: str, seed: int, shift: float = 0.0) -> None:
    """Two partitions of one day in the scoring input; part-1 has two rows that must be rejected."""
    import numpy as np

    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    folder = f"{BUCKET}/incoming/{FLOW}/date={day}"
    write_parquet_atomic(generate(3_000, seed=seed, shift=shift), f"{folder}/part-0.parquet")
    bad = generate(2_000, seed=seed + 1, shift=shift)
    bad.loc[[3, 4], "monthly_charges"] = np.inf
    write_parquet_atomic(bad, f"{folder}/part-1.parquet")


def _read(fs, path: str, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns).to_pandas()


def test_scoring_dag_on_s3_writes_outputs_rejects_and_samples_equal_to_local_scoring(
    flow, tmp_path: Path
) -> None:
    import fsspec
    import pandas as pd

    from airflow_mlops.core.model.reference import resolve_model
    from airflow_mlops.core.scoring.partition import score_partition

    fs = fsspec.filesystem("s3")
    _write_day(DAY, seed=11)
    run = _dag("ml_batch_scoring.py", "ml_batch_scoring").test(run_conf={"date": DAY})
    states = _states(run)
    assert str(run.state) == "success", states
    assert states[("score", 0)] == states[("score", 1)] == "success", states

    out = f"mlops/scored/{FLOW}/date={DAY}"
    assert sorted(p.removeprefix(f"{out}/") for p in fs.find(out)) == [
        "_rejects/part-1.parquet",
        "part-0.parquet",
        "part-1.parquet",
    ]
    rejects = _read(fs, f"{out}/_rejects/part-1.parquet")
    assert len(rejects) == 2 and rejects["reject_reason"].str.contains("monthly_charges").all()
    samples = f"mlops/monitoring/model={FLOW}/source=batch/version=1/date={DAY}"
    assert {p.rsplit("/", 1)[-1]: len(_read(fs, p)) for p in fs.find(samples)} == {
        "part-0.parquet": SAMPLE_ROWS,
        "part-1.parquet": SAMPLE_ROWS,
    }

    # The same rows scored from local copies with the same version give the same predictions.
    model = resolve_model(f"models:/{FLOW}/1", flow["tracking"])
    for part, rows_in in (("part-0", 3_000), ("part-1", 2_000)):
        local_in = tmp_path / f"{part}.parquet"
        fs.get(f"mlops/incoming/{FLOW}/date={DAY}/{part}.parquet", str(local_in))
        local = score_partition(
            str(local_in),
            str(tmp_path / "out" / f"{part}.parquet"),
            model,
            key_columns=("customer_id",),
            batch_rows=1_000,
        )
        assert local.rows_in == rows_in
        on_s3 = _read(fs, f"{out}/{part}.parquet")
        assert len(on_s3) == local.rows_out == rows_in - local.rows_rejected
        expected = pd.read_parquet(local.output_uri)
        columns = ["customer_id", "prediction", "probability_0", "probability_1"]
        pd.testing.assert_frame_equal(on_s3[columns], expected[columns])
        assert set(on_s3["model_version"]) == {"1"} and set(on_s3["model_name"]) == {FLOW}


def test_drift_monitor_reads_the_s3_monitoring_layout_and_logs_its_report_to_the_bucket(
    flow,
) -> None:
    import fsspec

    from airflow_mlops.core.registry import versions as registry

    fs = fsspec.filesystem("s3")
    _write_day(DRIFT_DAY, seed=21, shift=1.5)
    scored = _dag("ml_batch_scoring.py", "ml_batch_scoring").test(run_conf={"date": DRIFT_DAY})
    assert str(scored.state) == "success", _states(scored)

    run = _dag("ml_drift_monitor.py", "ml_drift_monitor").test(run_conf={"day": DRIFT_DAY})
    states = _states(run)
    assert states[("check_drift", -1)] == "success", states  # success = drift confirmed
    version = registry.get_version(flow["tracking"], FLOW, "champion")
    tags = version.tags
    assert tags["mlops.drift.last_status"] == "drift"
    assert tags["mlops.drift.last_window"] == f"date={DRIFT_DAY}"
    drift_run_id = tags["mlops.drift.last_run_id"]
    drift_run = flow["tracking"].client().get_run(drift_run_id)
    assert drift_run.data.tags["mlops.drift.confirmed"] == "true"
    assert drift_run.data.metrics["rows_current"] == 2 * SAMPLE_ROWS
    artifacts = _bucket_path(drift_run.info.artifact_uri)
    report = fs.cat(f"{artifacts}/drift/report.html")
    assert len(report) > 10_000 and b"<html" in report[:2_000].lower()
    summary = json.loads(fs.cat(f"{artifacts}/drift/summary.json"))
    assert summary["confirmed"] is True
    assert {"monthly_charges", "support_calls"} <= set(summary["drifted_columns"])
    # The drift Asset event (what starts retraining) points at that report.
    extra = _drift_events()[-1]
    assert extra["run_id"] == drift_run_id and extra["window"] == f"date={DRIFT_DAY}"
    assert extra["report_uri"] == f"runs:/{drift_run_id}/drift/report.html"


def _drift_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_mlops.dags.assets import drift_asset

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == drift_asset(FLOW).uri)
            .order_by(AssetEvent.id)
        ).all()
        return [dict(row.extra or {}) for row in rows]


def _error_lines(text: str, task: str) -> list[str]:
    """The task's own error log lines (dag.test() runs tasks in this process, logging to stdout)."""
    return [line for line in text.splitlines() if "[error" in line and task in line]


def test_training_dag_on_a_missing_s3_key_fails_at_prepare_naming_the_uri(flow, capsys) -> None:
    from airflow_mlops.core.registry import versions as registry

    missing = f"{BUCKET}/data/{FLOW}/2024-06-03/train.parquet"
    before = len(registry.search_versions(flow["tracking"], FLOW))
    run = _dag("ml_training.py", "ml_training").test(run_conf={"data_uri": missing})
    states = _states(run)
    assert str(run.state) == "failed"
    assert states[("prepare", -1)] == "failed", states
    assert len(registry.search_versions(flow["tracking"], FLOW)) == before
    errors = _error_lines(capsys.readouterr().out, "PrepareDataOperator")
    assert any(f"cannot read {missing}: No such file or directory" in e for e in errors), errors


def test_scoring_dag_sees_partitions_landed_by_another_client_and_names_empty_ones(
    flow, s3: dict[str, str], capsys
) -> None:
    """Partitions land through boto3 (another writer, as a producer would) after this process
    listed the day: the run must see them, and each empty one fails alone, naming its URI
    (``s3://...`` as written, not the bucket path s3fs lists)."""
    import boto3
    import fsspec

    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.core.scoring.runs import list_partitions
    from airflow_mlops.devstack.demo_data import generate

    fs = fsspec.filesystem("s3")
    base = f"{BUCKET}/incoming/{FLOW}"
    folder = f"{base}/date={BAD_DAY}"
    write_parquet_atomic(generate(500, seed=31), f"{folder}/part-0.parquet")
    assert list_partitions(base, BAD_DAY) == [f"{folder}/part-0.parquet"]
    client = boto3.client("s3", endpoint_url=s3["endpoint"])
    key = folder.removeprefix(f"{BUCKET}/")
    client.put_object(Bucket="mlops", Key=f"{key}/part-1.parquet", Body=b"")
    client.put_object(Bucket="mlops", Key=f"{key}/part-2/_SUCCESS", Body=b"")
    client.put_object(Bucket="mlops", Key=f"{key}/part-3/chunk-0.parquet", Body=b"")

    run = _dag("ml_batch_scoring.py", "ml_batch_scoring").test(run_conf={"date": BAD_DAY})
    states = _states(run)
    assert str(run.state) == "failed", states
    assert states[("score", 0)] == "success", states
    assert states[("score", 1)] == states[("score", 2)] == states[("score", 3)] == "failed"
    assert states[("summary", -1)] == "failed", states
    out = f"mlops/scored/{FLOW}/date={BAD_DAY}"
    assert [p.rsplit("/", 1)[-1] for p in fs.find(out)] == ["part-0.parquet"]
    errors = _error_lines(capsys.readouterr().out, "BatchScoreOperator")
    expected = (
        f"partition part-1: {folder}/part-1.parquet has no rows: the file is empty (0 bytes)",
        f"partition part-2: {folder}/part-2 has no rows: the folder holds no data files",
        f"partition part-3: {folder}/part-3/chunk-0.parquet (in {folder}/part-3) is empty",
    )
    for message in expected:
        assert any(message in e for e in errors), (message, errors)


def test_a_file_rewritten_by_another_client_is_read_afresh(s3: dict[str, str]) -> None:
    """A listing cached by this process (s3fs keeps one per folder) must not stand for the file
    itself: its size and ETag would be the old ones, and the read fail or see the old bytes."""
    import hashlib
    import io

    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.data.io import fingerprint, load_frame, write_parquet_atomic
    from airflow_mlops.core.scoring.runs import list_partitions
    from airflow_mlops.devstack.demo_data import generate

    base = f"{BUCKET}/incoming/rewritten"
    uri = f"{base}/date={DAY}/part-0.parquet"
    write_parquet_atomic(generate(500, seed=41), uri)
    assert list_partitions(base, DAY) == [uri]  # caches the day's listing, sizes included
    newer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(generate(700, seed=42), preserve_index=False), newer)
    boto3.client("s3", endpoint_url=s3["endpoint"]).put_object(
        Bucket="mlops", Key=uri.removeprefix(f"{BUCKET}/"), Body=newer.getvalue()
    )
    assert len(load_frame(uri)) == 700
    assert fingerprint(uri) == hashlib.sha256(newer.getvalue()).hexdigest()


def test_credentials_and_endpoint_from_an_airflow_connection_alone(
    s3: dict[str, str], flow: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No AWS_* variable in the task's environment: the ``aws_default`` connection serves."""
    import fsspec.config
    import s3fs

    from airflow_mlops.devstack.demo_data import write_dataset

    data = f"{BUCKET}/data/{FLOW}/conn-only/train.parquet"
    write_dataset(data, rows=ROWS, seed=3)  # written with the environment's credentials
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": s3["AWS_ACCESS_KEY_ID"],
                "password": s3["AWS_SECRET_ACCESS_KEY"],
                "extra": {"endpoint_url": s3["endpoint"], "region_name": "us-east-1"},
            }
        ),
    )
    saved = {k: dict(v) for k, v in fsspec.config.conf.items()}
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        dag = _dag("ml_training.py", "ml_training").partial_subset(task_ids=["prepare"])
        run = dag.test(run_conf={"data_uri": data})
        (ti,) = run.get_task_instances()
        assert str(ti.state) == "success"
        prepared = ti.xcom_pull(task_ids="prepare")
        assert prepared["data_uri"] == data
        assert prepared["train_uri"].startswith(f"{BUCKET}/work/")
        assert prepared["train_rows"] + prepared["holdout_rows"] == ROWS
        assert fsspec.config.conf["s3"]["client_kwargs"]["endpoint_url"] == s3["endpoint"]
    finally:
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved)
        s3fs.S3FileSystem.clear_instance_cache()
