"""core.profiling: spec parsing, measurements on a real ONNX model, the sizing model's rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config.data import DataSpec
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.config.training import TrainingSpec
from airflow_mlops.core.profiling.profile import onnx_features, parse_model_ref, profile_model
from airflow_mlops.core.profiling.report import NEAR_BEST, recommend, write_chart
from airflow_mlops.core.profiling.types import (
    TAG_KEYS,
    Measurements,
    ProfileReport,
    ProfilingError,
    ProfilingSpec,
    SloSpec,
    ThroughputPoint,
    available_cores,
)

NUMERIC = ("age", "income", "visits")
CATEGORICAL = ("city",)

# Small enough to keep each profile well under a second; timings are never asserted.
TINY = {
    "batch_sizes": [1, 16, 256],
    "threads": [1, 2],
    "latency_samples": 60,
    "warmup": 5,
    "load_repeats": 2,
    "throughput_seconds": 0.02,
}


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.lognormal(10, 0.5, n),
            "visits": pd.array(rng.integers(0, 30, n), dtype="Int64"),
            "city": rng.choice(np.array(["paris", "rome", None], dtype=object), n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.1, "visits"] = pd.NA  # the missing marker numpy cannot cast
    frame["churn"] = (frame["age"].fillna(40) + rng.normal(0, 10, n) > 45).astype(int)
    return frame


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    from airflow_mlops.core.training.convert import convert_to_onnx
    from airflow_mlops.core.training.pipeline import build_pipeline

    config = ModelConfig(
        name="tiny",
        data=DataSpec(
            uri="unused.parquet",
            target="churn",
            numeric_features=NUMERIC,
            categorical_features=CATEGORICAL,
        ),
        training=TrainingSpec(
            estimator="sklearn.ensemble.HistGradientBoostingClassifier", params={"max_iter": 10}
        ),
    )
    frame = make_frame(800)
    pipeline = build_pipeline(config).fit(frame, frame["churn"])
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    path.write_bytes(convert_to_onnx(pipeline, config))
    return str(path), frame


@pytest.fixture(scope="module")
def report(model) -> ProfileReport:
    path, frame = model
    return profile_model(path, frame, NUMERIC, CATEGORICAL, ProfilingSpec.from_dict(TINY))


def test_empty_section_gives_the_documented_defaults():
    for raw in (None, {}):
        spec = ProfilingSpec.from_dict(raw)
        assert spec == ProfilingSpec()
    assert ProfilingSpec().batch_sizes == (1, 32, 1024, 65536)
    assert ProfilingSpec().slo == SloSpec(p99_ms=5.0, requests_per_second=200.0)
    assert ProfilingSpec().gate is False


def test_section_values_are_read():
    spec = ProfilingSpec.from_dict(
        {
            "batch_sizes": [8, 8, 64],
            "threads": [1],
            "gate": True,
            "slo": {"p99_ms": 2, "requests_per_second": 50, "min_throughput_rows_per_s": 1e5},
        }
    )
    assert spec.batch_sizes == (8, 64)  # duplicates dropped, order kept
    assert spec.gate is True
    assert spec.slo == SloSpec(2.0, 50.0, 1e5)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"batch_size": [1]}, "unknown key(s) ['batch_size']"),
        ({"batch_sizes": []}, "p.batch_sizes must be a non-empty list"),
        ({"batch_sizes": [1, 0]}, "p.batch_sizes[1] must be an integer >= 1, got 0"),
        ({"threads": "2"}, "p.threads must be a non-empty list"),
        ({"latency_samples": 1.5}, "p.latency_samples must be an integer"),
        ({"utilisation": 1.0}, "p.utilisation must be below 1"),
        ({"memory_headroom": 0.5}, "p.memory_headroom must be at least 1"),
        ({"gate": "yes"}, "p.gate must be true or false"),
        ({"slo": {"p99": 3}}, "p.slo: unknown key(s) ['p99']"),
        ({"slo": {"p99_ms": -1}}, "p.slo.p99_ms must be positive, got -1"),
        ({"slo": {"requests_per_second": True}}, "p.slo.requests_per_second must be a number"),
        (["x"], "p: expected a mapping"),
    ],
)
def test_bad_section_names_the_key(raw, named):
    with pytest.raises(ConfigError) as err:
        ProfilingSpec.from_dict(raw, source="p")
    assert named in str(err.value)


def test_thread_counts_are_capped_at_the_cores():
    spec = ProfilingSpec(threads=(1, 2, 64, 128))
    assert spec.thread_counts() == tuple(
        dict.fromkeys((1, min(2, available_cores()), available_cores()))
    )


def test_profile_measures_every_figure(model, report):
    path, _ = model
    m = report.measurements
    assert m.size_bytes == __import__("os").path.getsize(path)
    assert m.load_ms > 0
    assert 0 < m.p50_ms <= m.p95_ms <= m.p99_ms
    assert m.latency_samples == 60
    cells = {(p.batch_size, p.threads) for p in m.throughput}
    threads = ProfilingSpec.from_dict(TINY).thread_counts()
    assert cells == {(b, t) for b in (1, 16, 256) for t in threads}
    assert all(p.rows_per_s > 0 and p.runs >= 3 for p in m.throughput)
    # The child process imported numpy + ONNX Runtime, then loaded and scored the model.
    assert 0 < m.baseline_rss_mb <= m.peak_rss_mb < 2048
    assert m.rss_batch_size == 256
    assert report.environment["cores"] == available_cores()


def test_recommendation_is_consistent_with_its_own_measurements(report):
    spec, m, rec = report.spec, report.measurements, report.recommendation
    # CPU: the target rate keeps the request at most `utilisation` busy, with less than one
    # 100m step to spare.
    busy_cores = spec.slo.requests_per_second * m.p50_ms / 1000
    assert rec.capacity_rps_per_core == pytest.approx(1000 / m.p50_ms)
    assert rec.cpu_request_milli % 100 == 0 and rec.cpu_request_milli >= 100
    assert busy_cores / (rec.cpu_request_milli / 1000) <= spec.utilisation + 1e-9
    assert rec.cpu_request_milli == 100 or (
        busy_cores / ((rec.cpu_request_milli - 100) / 1000) > spec.utilisation
    )
    assert rec.utilisation_at_target == pytest.approx(busy_cores / (rec.cpu_request_milli / 1000))
    assert rec.cpu_limit_milli == max(2 * rec.cpu_request_milli, 1000)
    # Memory: peak RSS with headroom, rounded up to 64 MiB; limit twice that.
    assert rec.memory_request_mib % 64 == 0
    assert m.peak_rss_mb * spec.memory_headroom <= rec.memory_request_mib
    assert rec.memory_request_mib < m.peak_rss_mb * spec.memory_headroom + 64
    assert rec.memory_limit_mib == 2 * rec.memory_request_mib
    # Latency verdict from the measured tail and the utilisation.
    assert rec.predicted_p99_ms == pytest.approx(m.p99_ms / (1 - rec.utilisation_at_target))
    assert rec.slo_met == (rec.predicted_p99_ms <= spec.slo.p99_ms)
    # Batch size: a measured cell within 95% of the best, and no smaller batch at its threads is.
    best = max(p.rows_per_s for p in m.throughput)
    assert rec.max_rows_per_s == best
    chosen = [p for p in m.throughput if (p.batch_size, p.threads) == (rec.batch_size, rec.threads)]
    assert len(chosen) == 1 and chosen[0].rows_per_s >= NEAR_BEST * best
    assert chosen[0].rows_per_s == rec.batch_rows_per_s
    assert all(
        p.rows_per_s < NEAR_BEST * best
        for p in m.throughput
        if p.threads == rec.threads and p.batch_size < rec.batch_size
    )


def test_tags_carry_exactly_the_documented_names(report):
    tags = report.tags()
    assert list(tags) == [f"mlops.profile.{key}" for key in TAG_KEYS]
    rec = report.recommendation
    assert tags["mlops.profile.cpu_request"] == f"{rec.cpu_request_milli}m"
    assert tags["mlops.profile.memory_limit"] == f"{rec.memory_limit_mib}Mi"
    assert tags["mlops.profile.batch_size"] == str(rec.batch_size)
    assert tags["mlops.profile.slo_met"] in ("true", "false")
    assert float(tags["mlops.profile.p99_ms"]) == pytest.approx(
        report.measurements.p99_ms, abs=1e-4
    )


def test_report_is_json_and_the_chart_a_png(report, tmp_path):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["recommendation"]["cpu_request"] == report.recommendation.cpu_request
    assert len(data["measurements"]["throughput"]) == len(report.measurements.throughput)
    chart = write_chart(report, str(tmp_path / "profile.png"))
    with open(chart, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def _measured(p50: float, p99: float, peak: float, points: list[tuple[int, int, float]]):
    return Measurements(
        size_bytes=1,
        load_ms=1.0,
        p50_ms=p50,
        p95_ms=p99,
        p99_ms=p99,
        latency_samples=100,
        throughput=tuple(ThroughputPoint(b, t, r, 3) for b, t, r in points),
        peak_rss_mb=peak,
        baseline_rss_mb=peak / 2,
        rss_batch_size=1024,
    )


def test_sizing_rules_on_known_figures():
    spec = ProfilingSpec(slo=SloSpec(p99_ms=5.0, requests_per_second=200.0))
    points = [(1, 1, 1e4), (64, 1, 9.6e5), (1024, 1, 1e6), (64, 2, 9e5), (1024, 2, 9.4e5)]
    rec = recommend(_measured(p50=2.0, p99=3.0, peak=100.0, points=points), spec)
    # 200 req/s x 2 ms = 0.4 busy cores; / 0.6 = 0.667 -> 700m.
    assert rec.cores_needed == pytest.approx(0.4 / 0.6)
    assert (rec.cpu_request, rec.cpu_limit) == ("700m", "1400m")
    assert rec.utilisation_at_target == pytest.approx(0.4 / 0.7)
    # 3 ms / (1 - 0.571) = 7 ms > 5 ms: missed, and the reason names figure and target.
    assert rec.predicted_p99_ms == pytest.approx(7.0)
    assert not rec.slo_met
    assert "predicted p99 7 ms at 200 req/s on 700m" in rec.reasons[0]
    assert "exceeds target 5 ms" in rec.reasons[0]
    # 100 MiB x 1.5 = 150 -> 192Mi; limit 384Mi.
    assert (rec.memory_request, rec.memory_limit) == ("192Mi", "384Mi")
    # Best is 1e6 at 1 thread; 64 rows reach 96% of it.
    assert (rec.batch_size, rec.threads, rec.max_rows_per_s) == (64, 1, 1e6)


def test_small_model_gets_the_floors_and_meets_the_slo():
    spec = ProfilingSpec(slo=SloSpec(p99_ms=5.0, requests_per_second=10.0))
    rec = recommend(_measured(p50=0.05, p99=0.1, peak=10.0, points=[(1, 1, 2e4)]), spec)
    assert (rec.cpu_request, rec.cpu_limit, rec.memory_request) == ("100m", "1000m", "64Mi")
    assert rec.slo_met


def test_throughput_floor_is_part_of_the_slo():
    spec = ProfilingSpec(
        slo=SloSpec(p99_ms=5.0, requests_per_second=10.0, min_throughput_rows_per_s=5e4)
    )
    rec = recommend(_measured(p50=0.05, p99=0.1, peak=10.0, points=[(1, 1, 2e4)]), spec)
    assert not rec.slo_met
    assert "best throughput 20,000 rows/s is below floor 50,000 rows/s" in rec.reasons[1]


@pytest.mark.parametrize("enforced", [True, False])
def test_gate_blocks_only_when_enforced(report, enforced):
    from dataclasses import replace

    missed = replace(
        report,
        spec=replace(report.spec, gate=enforced, slo=SloSpec(p99_ms=1e-6, requests_per_second=1)),
    )
    missed = replace(missed, recommendation=recommend(missed.measurements, missed.spec))
    gate = missed.gate()
    assert gate["slo_met"] is False
    assert gate["passed"] is (not enforced)
    assert gate["target_p99_ms"] == 1e-6
    assert ("gate failed" in gate["message"]) is enforced
    assert "exceeds target 1e-06 ms" in gate["message"]


def test_onnx_features_reads_the_input_types(model):
    path, _ = model
    assert onnx_features(path) == (list(NUMERIC), list(CATEGORICAL))


def test_bad_sample_is_named(model):
    path, frame = model
    with pytest.raises(ProfilingError, match="sample frame has no rows"):
        profile_model(path, frame.head(0), NUMERIC, CATEGORICAL, model="m v1")
    with pytest.raises(ProfilingError, match=r"m v1: sample lacks feature column\(s\) \['city'\]"):
        profile_model(path, frame.drop(columns="city"), NUMERIC, CATEGORICAL, model="m v1")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"name": "churn", "version": "3", "run_id": "x"}, ("churn", "3")),
        ("models:/churn/4", ("churn", "4")),
        ("models:/churn@champion", ("churn", "champion")),
        ("7", ("default", "7")),
        ("@challenger", ("default", "challenger")),
    ],
)
def test_model_references(ref, expected):
    assert parse_model_ref(ref, "default") == expected


@pytest.mark.parametrize("ref", [{"name": "churn"}, "", "models:/churn"])
def test_bad_model_references_are_named(ref):
    with pytest.raises(ProfilingError, match="model reference"):
        parse_model_ref(ref, "default")


def test_rounding_never_undershoots():
    from airflow_mlops.core.profiling.report import round_up

    assert round_up(0.1 * 3 * 1000, 100) == 300  # 300.00000000000006: float noise stays put
    assert round_up(301, 100) == 400
    assert round_up(0, 64) == 64
    assert all(round_up(v, 64) >= v for v in np.linspace(0, 1000, 97))
    assert math.isclose(round_up(128, 64), 128)
