"""A retried partition removes what a killed try left behind: its own temporaries, no other."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.scoring.partition import score_partition


@pytest.fixture(scope="module")
def model(onnx_model):
    from airflow_mlops.core.model.reference import resolve_model

    return resolve_model(onnx_model, name="demo_churn")


def _source(tmp_path: Path) -> str:
    from airflow_mlops.devstack.demo_data import generate

    frame = generate(1_500, seed=3)
    frame.loc[2, "monthly_charges"] = float("inf")  # one reject: the rejects file is written
    path = tmp_path / "in" / "date=2024-05-01" / "p.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return str(path)


def _stale(fs, folder: str, target: str) -> str:
    """A temporary as a killed try of ``target`` leaves it (named as atomic_output names it)."""
    name = f"{folder}/.{target}.{uuid.uuid4().hex}.tmp"
    fs.makedirs(folder, exist_ok=True)
    with fs.open(name, "wb") as handle:
        handle.write(b"17 MB of half a file")
    return name


def _retry_cleans_up(fs, root: str, model, src: str) -> None:
    out_dir = f"{root}/out/date=2024-05-01"
    sample_dir = f"{root}/mon/model=demo_churn/source=batch/version={model.version}/date=2024-05-01"
    own = [
        _stale(fs, out_dir, "p.parquet"),
        _stale(fs, out_dir, "p.parquet"),
        _stale(fs, f"{out_dir}/_rejects", "p.parquet"),
        _stale(fs, sample_dir, "p.parquet"),
    ]
    others = [
        _stale(fs, out_dir, "q.parquet"),  # a concurrent partition's
        _stale(fs, out_dir, "p.parquet.parquet"),  # a longer name that starts alike
        _stale(fs, f"{out_dir}/_rejects", "q.parquet"),
        _stale(fs, sample_dir, "q.parquet"),
    ]
    fs.pipe(f"{out_dir}/.p.parquet.tmp", b"not an atomic_output temporary")
    others.append(f"{out_dir}/.p.parquet.tmp")
    result = score_partition(
        src,
        f"{root}/out/date=2024-05-01/p.parquet",
        model,
        key_columns=("customer_id",),
        monitoring_dir=f"{root}/mon",
        sample_date="2024-05-01",
    )
    assert result.rows_rejected == 1 and result.sample_uri is not None
    for name in own:
        assert not fs.exists(name), name
    for name in others:
        assert fs.exists(name), name
    kept = {name.rsplit("/", 1)[-1] for name in others}
    left = [
        p
        for d in (out_dir, f"{out_dir}/_rejects", sample_dir)
        for p in fs.ls(d, detail=False)
        if p.rsplit("/", 1)[-1].startswith(".") and p.rsplit("/", 1)[-1] not in kept
    ]
    assert left == []


def test_retry_removes_its_own_stale_temporaries_locally(model, tmp_path):
    _retry_cleans_up(fsspec.filesystem("file"), str(tmp_path), model, _source(tmp_path))


def test_retry_removes_its_own_stale_temporaries_on_an_fsspec_store(model, tmp_path):
    # memory:// goes through the same fsspec calls (ls, rm) as s3:// does through s3fs.
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    try:
        _retry_cleans_up(fs, "memory://run", model, _source(tmp_path))
    finally:
        fs.store.clear()


@pytest.mark.integration
def test_retry_removes_its_own_stale_temporaries_on_s3(model, tmp_path, monkeypatch):
    """moto's S3 server on loopback, reached through s3fs as a bucket would be."""
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    server_module = pytest.importorskip("moto.server", reason="moto is not installed")
    import logging

    import s3fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        }.items():
            monkeypatch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = fsspec.filesystem("s3")
        fs.mkdir("scoring")
        _retry_cleans_up(fs, "s3://scoring", model, _source(tmp_path))
    finally:
        s3fs.S3FileSystem.clear_instance_cache()  # no later test may reuse this endpoint
        server.stop()
