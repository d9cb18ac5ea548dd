from __future__ import annotations

import pytest

from airflow_mlops.serving.metrics import (
    Metrics,
    histogram_quantile,
    metric_sum,
    parse_prometheus,
)


def filled() -> Metrics:
    m = Metrics('churn"x')
    for seconds in (0.0002, 0.0004, 0.0004, 0.003):
        m.observe("1", "mlflow", 200, seconds)
    m.observe("2", "v2", 400, 0.0002)
    m.error("2", "wrong_type")
    m.predicted("1", [0, 1, 1])
    m.shadowed("2", agree=3, disagree=1)
    m.set_weights({"1": 0.9, "2": 0.1})
    m.set_weights({"1": 1.0})
    m.captured("1", 5)
    m.dropped(2)
    return m


def test_exposition_round_trips_through_the_parser():
    parsed = parse_prometheus(filled().render())
    assert metric_sum(parsed, "mlops_requests_total", version="1", code="200") == 4
    assert metric_sum(parsed, "mlops_requests_total", protocol="v2", code="400") == 1
    assert metric_sum(parsed, "mlops_request_errors_total", reason="wrong_type") == 1
    assert metric_sum(parsed, "mlops_predictions_total", version="1", label="1") == 2
    assert metric_sum(parsed, "mlops_shadow_agreement_total", agree="false") == 1
    assert metric_sum(parsed, "mlops_shadow_requests_total", version="2") == 1
    # A version dropped from the routes stays visible at weight 0.
    assert metric_sum(parsed, "mlops_route_weight", version="2") == 0
    assert metric_sum(parsed, "mlops_route_weight", version="1") == 1
    assert metric_sum(parsed, "mlops_capture_rows_total") == 5
    assert metric_sum(parsed, "mlops_capture_dropped_total") == 2
    assert metric_sum(parsed, "mlops_request_latency_seconds_count", version="1") == 4
    assert metric_sum(parsed, "mlops_request_latency_seconds_sum", version="1") == pytest.approx(
        0.004
    )
    # Label values are escaped and read back.
    assert {s.labels["model"] for s in parsed["mlops_requests_total"]} == {'churn"x'}


def test_histogram_buckets_are_cumulative_and_quantiles_interpolate():
    parsed = parse_prometheus(filled().render())
    buckets = [
        s for s in parsed["mlops_request_latency_seconds_bucket"] if s.labels["version"] == "1"
    ]
    values = [s.value for s in buckets]
    assert values == sorted(values) and values[-1] == 4 and buckets[-1].labels["le"] == "+Inf"
    p50 = histogram_quantile(parsed, "mlops_request_latency_seconds", 0.5, version="1")
    assert p50 is not None and 0.00025 < p50 <= 0.0005
    p99 = histogram_quantile(parsed, "mlops_request_latency_seconds", 0.99, version="1")
    assert p99 is not None and 0.0025 < p99 <= 0.005
    assert histogram_quantile(parsed, "mlops_request_latency_seconds", 0.5, version="9") is None


def test_malformed_exposition_names_the_line():
    with pytest.raises(ValueError, match="line 2"):
        parse_prometheus("# HELP x y\nnot a sample line at all{\n")
