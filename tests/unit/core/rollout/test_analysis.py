"""Canary analysis from two metrics snapshots: deltas, p99 from buckets, agreement, verdicts."""

from __future__ import annotations

import pytest

from airflow_mlops.core.rollout.analysis import (
    Snapshot,
    analyze,
    figures,
    histogram_quantile,
    parse_prometheus,
)
from airflow_mlops.core.rollout.policy import RolloutPolicy

LE = ("0.001", "0.005", "0.01", "0.05", "+Inf")


def _page(version_counts: dict[str, dict]) -> str:
    """A /metrics page in the scoring server's names, for the versions given."""
    lines = [
        "# HELP mlops_requests_total Requests answered.",
        "# TYPE mlops_requests_total counter",
    ]
    for version, figs in version_counts.items():
        ids = f'model="m",version="{version}"'
        for code, count in figs.get("codes", {}).items():
            lines.append(f'mlops_requests_total{{{ids},protocol="mlflow",code="{code}"}} {count}')
        for le, count in zip(LE, figs.get("buckets", (0, 0, 0, 0, 0)), strict=True):
            lines.append(f'mlops_request_latency_seconds_bucket{{{ids},le="{le}"}} {count}')
        for agree, count in figs.get("agreement", {}).items():
            lines.append(f'mlops_shadow_agreement_total{{{ids},agree="{agree}"}} {count}')
    return "\n".join(lines) + "\n"


def test_parse_prometheus_reads_labels_escapes_and_skips_comments():
    text = '# TYPE x counter\nx{a="1",b="q\\"uote"} 3.5\ny 2 1700000000\n'
    samples = parse_prometheus(text)
    assert samples[("x", (("a", "1"), ("b", 'q"uote')))] == 3.5
    assert samples[("y", ())] == 2.0
    with pytest.raises(ValueError, match="line 1 is not a Prometheus sample"):
        parse_prometheus("not a metric line at all {")


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.001, 50.0), (0.005, 90.0), (0.01, 100.0), (float("inf"), 100.0)]
    # rank 99 lies in (0.005, 0.01]: 0.005 + 0.005 * (99 - 90) / 10
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.0095)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001)
    assert histogram_quantile(0.99, [(0.01, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.99, [(0.01, 1.0), (float("inf"), 100.0)]) == 0.01


def test_figures_are_deltas_between_snapshots():
    before = Snapshot.from_texts(_page({"2": {"codes": {"200": 100, "500": 1}}}))
    after = Snapshot.from_texts(
        _page(
            {
                "2": {
                    "codes": {"200": 290, "500": 11, "400": 5},
                    "buckets": (100, 200, 205, 205, 205),
                }
            }
        )
    )
    figs = figures(before, after, "m", "2")
    assert figs.requests == 205
    assert figs.server_errors == 10
    assert figs.client_errors == 5
    assert figs.error_rate == pytest.approx(10 / 205)
    # rank 0.99 * 205 = 202.95 falls in (5 ms, 10 ms]: 5 + 5 * 2.95 / 5
    assert figs.p99_ms == pytest.approx(7.95)


def test_snapshots_of_several_endpoints_are_summed():
    page = _page({"2": {"codes": {"200": 10}}})
    assert Snapshot.from_texts(page, page).total("mlops_requests_total", version="2") == 20


def _policy(**kw):
    return RolloutPolicy.from_dict({"min_requests": 50, "max_p99_ms": 20, **kw})


def test_passing_canary_names_every_figure():
    after = Snapshot.from_texts(
        _page(
            {
                "2": {"codes": {"200": 100}, "buckets": (90, 100, 100, 100, 100)},
                "1": {"codes": {"200": 900}, "buckets": (900, 900, 900, 900, 900)},
            }
        )
        + 'mlops_shadow_agreement_total{model="m",version="2",agree="true"} 98\n'
        + 'mlops_shadow_agreement_total{model="m",version="2",agree="false"} 2\n'
    )
    result = analyze(
        Snapshot(), after, model="m", canary="2", baseline="1", policy=_policy(), shadow="2"
    )
    assert result.verdict == "pass", result.message
    assert result.canary.agreement == 0.98
    assert "agreement 98.00% on 100 mirrored rows (v2) vs min 95.00%" in result.message


def test_failing_canary_says_which_figure_and_threshold():
    after = Snapshot.from_texts(
        _page(
            {
                "2": {"codes": {"200": 90, "503": 10}, "buckets": (0, 0, 0, 50, 100)},
                "1": {"codes": {"200": 900}, "buckets": (900, 900, 900, 900, 900)},
            }
        )
        + 'mlops_shadow_agreement_total{model="m",version="2",agree="true"} 50\n'
        + 'mlops_shadow_agreement_total{model="m",version="2",agree="false"} 50\n'
    )
    result = analyze(
        Snapshot(), after, model="m", canary="2", baseline="1", policy=_policy(), shadow="2"
    )
    assert result.verdict == "fail"
    assert "error rate 10.00% (10/100 5xx) vs max 1.00%" in result.message
    assert "p99 50.0 ms vs max 20.0 ms" in result.message
    assert "agreement 50.00% on 100 mirrored rows (v2) vs min 95.00%" in result.message
    assert {c.name for c in result.checks if not c.passed} == {"error_rate", "p99_ms", "agreement"}


def test_canary_4xx_beyond_baseline_fails():
    after = Snapshot.from_texts(
        _page(
            {
                "2": {"codes": {"200": 80, "422": 20}, "buckets": (100, 100, 100, 100, 100)},
                "1": {"codes": {"200": 990, "422": 10}, "buckets": (1000,) * 5},
            }
        )
    )
    result = analyze(Snapshot(), after, model="m", canary="2", baseline="1", policy=_policy())
    assert result.verdict == "fail"
    assert "4xx share 20.00% vs baseline v1 1.00%" in result.message


def test_too_little_traffic_waits_and_missing_agreement_fails_only_when_required():
    few = Snapshot.from_texts(_page({"2": {"codes": {"200": 10}, "buckets": (10,) * 5}}))
    waiting = analyze(Snapshot(), few, model="m", canary="2", baseline="1", policy=_policy())
    assert waiting.verdict == "wait"
    assert "answered 10 requests, fewer than min_requests 50" in waiting.message
    enough = Snapshot.from_texts(
        _page(
            {
                "2": {"codes": {"200": 60}, "buckets": (60,) * 5},
                "1": {"codes": {"200": 60}, "buckets": (60,) * 5},
            }
        )
    )
    lax = analyze(Snapshot(), enough, model="m", canary="2", baseline="1", policy=_policy())
    assert lax.verdict == "pass"
    assert "agreement not measured" in lax.message
    strict = analyze(
        Snapshot(),
        enough,
        model="m",
        canary="2",
        baseline="1",
        policy=_policy(require_agreement=True),
    )
    assert strict.verdict == "fail"
    assert "the policy requires it" in strict.message
