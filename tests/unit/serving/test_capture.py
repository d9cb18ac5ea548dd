from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from airflow_mlops.serving.capture import Capture, partition_dir
from airflow_mlops.serving.config import CaptureSpec
from airflow_mlops.serving.feed import build_feed
from airflow_mlops.serving.metrics import Metrics
from airflow_mlops.serving.models import ModelMeta
from airflow_mlops.serving.protocol import mlflow_columns

META = ModelMeta.from_dict(
    {
        "name": "toy",
        "version": "1",
        "numeric_features": ["age"],
        "categorical_features": ["city"],
        "classes": [0, 1],
    }
)


def offer(capture: Capture, rows: int, version: str = "1", start: int = 0) -> None:
    records = [{"age": float(start + i), "city": None if i % 2 else "oslo"} for i in range(rows)]
    feed = build_feed(mlflow_columns({"dataframe_records": records}, 10_000), META)
    labels = np.arange(rows) % 2
    proba = np.column_stack([1 - labels * 0.8, labels * 0.8]).astype(np.float32)
    capture.offer(version, META, feed, labels, proba, f"req-{start}")


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_rows_land_in_the_monitoring_layout(tmp_path):
    metrics = Metrics("toy")
    capture = Capture(CaptureSpec(dir=str(tmp_path), sample_rate=1.0), "toy", metrics)
    capture.start()
    offer(capture, 3, version="1")
    offer(capture, 2, version="2", start=10)
    capture.stop()
    written = files(tmp_path)
    assert len(written) == 2
    day = written[0].parent.name.removeprefix("date=")
    assert written[0].parent == partition_dir(tmp_path, "toy", "1", day)
    table = pq.read_table(written[0]).to_pandas()
    assert list(table.columns) == [
        "age",
        "city",
        "prediction",
        "probability_0",
        "probability_1",
        "request_id",
        "timestamp",
        "version",
        "shadow",
    ]
    assert table["age"].tolist() == [0.0, 1.0, 2.0]
    assert table["city"].tolist() == ["oslo", None, "oslo"]
    assert table["prediction"].tolist() == [0, 1, 0]
    assert table["probability_1"].tolist() == pytest.approx([0.0, 0.8, 0.0])
    assert set(table["request_id"]) == {"req-0"} and set(table["version"]) == {"1"}
    assert str(table["timestamp"].dt.tz) == "UTC"
    assert metrics.capture_rows == {"1": 3, "2": 2}
    assert not list(tmp_path.rglob("*.tmp"))


def test_chunks_are_bounded(tmp_path):
    metrics = Metrics("toy")
    capture = Capture(CaptureSpec(dir=str(tmp_path), sample_rate=1.0, chunk_rows=4), "toy", metrics)
    capture.start()
    for start in range(0, 30, 3):  # 10 requests of 3 rows
        offer(capture, 3, start=start)
    capture.stop()
    sizes = [pq.read_metadata(f).num_rows for f in files(tmp_path)]
    assert sum(sizes) == 30
    assert max(sizes) <= 4 and sizes.count(4) >= 7
    ages = sorted(a for f in files(tmp_path) for a in pq.read_table(f)["age"].to_pylist())
    assert ages == [float(i) for i in range(30)]


def test_partial_chunk_is_written_after_max_seconds(tmp_path):
    capture = Capture(
        CaptureSpec(dir=str(tmp_path), sample_rate=1.0, max_seconds=0.2), "toy", Metrics("toy")
    )
    capture.start()
    offer(capture, 2)
    deadline = time.monotonic() + 10
    while not files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(files(tmp_path)) == 1  # before shutdown
    capture.stop()


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    metrics = Metrics("toy")
    capture = Capture(CaptureSpec(dir=str(tmp_path), sample_rate=1.0, queue_size=2), "toy", metrics)
    # The writer is not started: the queue fills after two requests.
    started = time.perf_counter()
    for start in range(0, 50, 5):
        offer(capture, 5, start=start)
    assert time.perf_counter() - started < 5  # generous: only proves it did not wait
    assert metrics.capture_dropped == 40
    capture.start()
    capture.stop()
    assert sum(pq.read_metadata(f).num_rows for f in files(tmp_path)) == 10


def test_sampling_keeps_about_the_rate(tmp_path):
    metrics = Metrics("toy")
    capture = Capture(CaptureSpec(dir=str(tmp_path), sample_rate=0.2), "toy", metrics, seed=3)
    capture.start()
    for start in range(0, 2000, 100):
        offer(capture, 100, start=start)
    for start in range(2000, 3000):
        offer(capture, 1, start=start)
    capture.stop()
    kept = sum(metrics.capture_rows.values())
    assert 0.15 * 3000 < kept < 0.25 * 3000


def test_disabled_capture_writes_nothing(tmp_path):
    capture = Capture(CaptureSpec(dir="", sample_rate=1.0), "toy", Metrics("toy"))
    assert not capture.enabled
    capture.start()
    capture.stop()
    assert not files(tmp_path)
