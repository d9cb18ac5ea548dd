"""The drift policy and check: same data stays quiet, shifted data drifts, bad data is named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.drift import stats as drift_stats
from airflow_mlops.core.drift.check import check_drift
from airflow_mlops.core.drift.monitor import MonitoringSpec, _Streak, _streak
from airflow_mlops.core.drift.types import DriftPolicy
from airflow_mlops.devstack.demo_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, generate

FEATURES = {"numeric": NUMERIC_FEATURES, "categorical": CATEGORICAL_FEATURES}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate(20_000, seed=100)


def _check(reference, current, policy=None, **kwargs):
    return check_drift(reference, current, policy or DriftPolicy(), **FEATURES, **kwargs)


def test_empty_section_gives_defaults_and_bad_keys_are_named():
    policy = DriftPolicy.from_dict({})
    assert policy == DriftPolicy()
    assert policy.min_rows >= 1000 and policy.consecutive_windows == 2
    with pytest.raises(ConfigError, match="unknown key"):
        DriftPolicy.from_dict({"drift_shares": 0.5})
    with pytest.raises(ConfigError, match=r"drift_share.*\(0, 1\]"):
        DriftPolicy.from_dict({"drift_share": 1.5})
    with pytest.raises(ConfigError, match="numeric_method"):
        DriftPolicy.from_dict({"numeric_method": "ks"})
    spec = MonitoringSpec.from_dict({"current_uri": "/x.parquet", "drift_share": 0.5})
    assert spec.current_uri == "/x.parquet" and spec.policy.drift_share == 0.5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_distribution_is_no_drift(reference, seed):
    result = _check(reference, generate(2_000, seed=seed))
    assert result.status == "no_drift", result.summary
    assert not result.dataset_drift and result.drifted_columns == []


def test_shifted_data_drifts_and_names_the_columns(reference):
    result = _check(reference, generate(2_000, seed=7, shift=1.0))
    assert result.status == "drift", result.summary
    assert result.dataset_drift and result.drift_share >= 0.3
    assert {"monthly_charges", "support_calls", "days_since_last_login"} <= set(
        result.drifted_columns
    )
    assert "monthly_charges" in result.summary


def test_weights_make_an_important_column_count_more(reference):
    current = generate(2_000, seed=8, shift=1.0)
    plain = _check(reference, current)
    weighted = _check(
        reference, current, DriftPolicy(weights={c: 0.01 for c in plain.drifted_columns})
    )
    assert weighted.drift_share < plain.drift_share
    assert weighted.status == "no_drift"


@pytest.mark.parametrize("rows", [0, 10, 999])
def test_too_few_rows_is_insufficient_data_never_no_drift(reference, rows):
    current = generate(max(rows, 1), seed=3).head(rows)
    result = _check(reference, current)
    assert result.status == "insufficient_data"
    assert f"{rows:,} rows" in result.summary and "min_rows=1000" in result.summary


def test_missing_column_is_unusable_and_named(reference):
    current = generate(2_000, seed=4).drop(columns=["monthly_charges"])
    result = _check(reference, current)
    assert result.status == "unusable"
    assert result.unusable_columns == ["monthly_charges"]
    assert "'monthly_charges' is missing from the current data" in result.summary


def test_all_null_and_changed_type_columns_are_unusable(reference):
    current = generate(2_000, seed=5)
    current["age"] = np.nan
    current["tenure_months"] = current["tenure_months"].astype(str)
    result = _check(reference, current)
    assert result.status == "unusable"
    assert set(result.unusable_columns) == {"age", "tenure_months"}
    assert "'age' is entirely null in the current data" in result.columns["age"].reason
    assert "expected numeric" in result.columns["tenure_months"].reason


def test_unusable_column_does_not_hide_real_drift(reference):
    current = generate(2_000, seed=6, shift=1.5).drop(columns=["age"])
    result = _check(reference, current)
    assert result.status == "drift" and result.unusable_columns == ["age"]


def test_extra_columns_are_reported_not_compared(reference):
    current = generate(2_000, seed=9)
    current["new_signal"] = 1.0
    result = _check(reference, current)
    assert result.status == "no_drift"
    assert result.ignored_columns == ["new_signal"]
    assert "new_signal" in result.summary


def test_prediction_drift_is_its_own_signal(reference):
    ref = reference.assign(probability_1=np.random.default_rng(0).beta(2, 5, len(reference)))
    current = generate(2_000, seed=10)
    current["probability_1"] = np.random.default_rng(1).beta(5, 2, len(current))
    result = _check(ref, current, prediction_column="probability_1")
    assert result.dataset_drift is False
    assert result.prediction_drift.drifted and result.status == "drift"
    quiet = _check(
        ref, current, DriftPolicy(prediction_triggers=False), prediction_column="probability_1"
    )
    assert quiet.status == "no_drift" and quiet.prediction_drift.drifted


def test_unknown_counted_column_is_a_config_error(reference):
    with pytest.raises(ConfigError, match="not_a_feature"):
        _check(reference, generate(2_000, seed=1), DriftPolicy(columns=("not_a_feature",)))


@pytest.mark.parametrize("seed", range(40))
def test_bounded_wasserstein_decision_equals_the_exact_one(seed):
    from scipy import stats

    rng = np.random.default_rng(seed)
    ref = rng.lognormal(0, 0.8, 5_000)
    cur = rng.lognormal(rng.uniform(0.0, 0.2), 0.8, 3_000)
    exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
    # Put the threshold right next to the exact value half of the time: the hard case.
    threshold = exact * (1 + rng.choice([-1, 1]) * 1e-6) if seed % 2 else 0.1
    stat = drift_stats.wasserstein_norm(ref, cur, threshold)
    assert stat.lower - 1e-12 <= exact <= stat.upper + 1e-12
    assert stat.drifted == (exact >= threshold)


def test_streak_counts_drift_since_last_confirmation_and_skips_undecided():
    history = [
        {"w": "a", "s": "drift", "c": 1},
        {"w": "b", "s": "drift", "c": 0},
        {"w": "c", "s": "insufficient_data", "c": 0},
        {"w": "d", "s": "drift", "c": 0},
    ]
    assert _streak(history) == 2
    assert _streak([*history, {"w": "e", "s": "no_drift", "c": 0}]) == 0


def test_a_second_drifting_window_confirms_once_and_its_rerun_is_not_news():
    import json

    policy = DriftPolicy(consecutive_windows=2)
    first = _Streak.advance(None, "d1", "drift", policy)
    assert (first.streak, first.confirmed, first.already) == (1, False, False)
    second = _Streak.advance(json.dumps(first.history), "d2", "drift", policy)
    assert (second.streak, second.confirmed, second.already) == (2, True, False)
    rerun = _Streak.advance(json.dumps(second.history), "d2", "drift", policy)
    assert (rerun.confirmed, rerun.already) == (True, True)
    assert [h["w"] for h in rerun.history] == ["d1", "d2"]  # the window's entry is replaced
    calm = _Streak.advance(json.dumps(rerun.history), "d3", "no_drift", policy)
    assert (calm.streak, calm.confirmed) == (0, False)
    assert _Streak.advance("not json", "d4", "drift", policy).history == [
        {"w": "d4", "s": "drift", "c": 0}
    ]


def test_evidently_report_is_written_and_agrees_column_by_column(reference, tmp_path):
    """Evidently on the same rows, configured by the policy, flags exactly the same columns."""
    from airflow_mlops.core.drift.report import evidently_decisions, run_evidently

    policy = DriftPolicy(report_rows=3_000)
    current = generate(3_000, seed=11, shift=0.8)
    ref = reference.head(3_000)
    result = _check(ref, current, policy, report_path=str(tmp_path / "report.html"))
    assert result.report_uri == str(tmp_path / "report.html") and result.report_error is None
    assert "<html" in (tmp_path / "report.html").read_text()[:2000].lower()
    kinds = {c: "numeric" for c in NUMERIC_FEATURES} | {
        c: "categorical" for c in CATEGORICAL_FEATURES
    }
    scores = evidently_decisions(run_evidently(ref, current, policy, kinds, list(kinds)))
    ours = {c: col.drifted for c, col in result.columns.items()}
    theirs = {c: scores[c] >= policy.rule(c, kinds[c] == "numeric").threshold for c in kinds}
    assert ours == theirs
    for c, col in result.columns.items():
        assert col.statistic == pytest.approx(scores[c], abs=5e-3)
