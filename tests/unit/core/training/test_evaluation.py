from __future__ import annotations

import math

import pytest

from airflow_mlops.core.config.evaluation import EvaluationSpec
from airflow_mlops.core.training.evaluation import EvaluationError, evaluate, higher_is_better

CHALLENGER = {"roc_auc": 0.8123, "accuracy": 0.801, "log_loss": 0.45, "brier": 0.15}
CHAMPION = {"roc_auc": 0.8000, "accuracy": 0.813, "log_loss": 0.47, "brier": 0.16}


def test_first_model_passes_on_thresholds_alone():
    spec = EvaluationSpec(
        thresholds={"roc_auc": 0.7, "log_loss": 0.5},
        min_improvement=0.5,  # would fail against any champion; ignored without one
        max_regression={"accuracy": 0.0},
    )
    result = evaluate(CHALLENGER, None, spec)
    assert result.passed
    assert [g.name for g in result.gates] == ["threshold:roc_auc", "threshold:log_loss"]
    assert result.gates[0].message == "roc_auc 0.8123 >= 0.7000 (threshold)"
    assert result.gates[1].message == "log_loss 0.4500 <= 0.5000 (threshold)"
    assert result.summary == "passed 2 of 2 gates"
    assert result.champion_version is None


def test_first_model_fails_threshold_with_figure_and_bound():
    result = evaluate(CHALLENGER, None, EvaluationSpec(thresholds={"roc_auc": 0.85}))
    assert not result.passed
    assert result.summary == ("failed gate threshold:roc_auc: roc_auc 0.8123 < 0.8500 (threshold)")


def test_no_gates_at_all_passes():
    result = evaluate(CHALLENGER, None, EvaluationSpec())
    assert result.passed and result.gates == () and result.summary == "passed 0 of 0 gates"


def test_improvement_pass_and_fail():
    ok = evaluate(CHALLENGER, CHAMPION, EvaluationSpec(min_improvement=0.01), "3")
    assert ok.passed and ok.champion_version == "3"
    gate = ok.gates[0]
    assert (gate.name, gate.value, gate.reference, gate.threshold) == (
        "improvement:roc_auc",
        0.8123,
        0.8,
        0.01,
    )
    assert gate.message == (
        "roc_auc 0.8123 improves on champion 0.8000 by 0.0123 (required improvement 0.0100)"
    )

    short = evaluate(CHALLENGER, CHAMPION, EvaluationSpec(min_improvement=0.02))
    assert not short.passed
    assert "required improvement 0.0200" in short.summary

    worse = evaluate({"roc_auc": 0.79}, CHAMPION, EvaluationSpec())
    assert not worse.passed
    assert worse.gates[0].message == (
        "roc_auc 0.7900 is 0.0100 worse than champion 0.8000 (required improvement 0.0000)"
    )


def test_equal_to_champion_passes_zero_improvement_despite_float_noise():
    spec = EvaluationSpec(min_improvement=0.1)
    assert evaluate({"roc_auc": 0.3}, {"roc_auc": 0.2}, spec).passed  # 0.3 - 0.2 < 0.1 in float
    assert evaluate(CHAMPION, CHAMPION, EvaluationSpec()).passed


def test_regression_fails_with_champion_figure_and_allowance():
    spec = EvaluationSpec(max_regression={"accuracy": 0.01, "brier": 0.05})
    result = evaluate(CHALLENGER, CHAMPION, spec, champion_version="7")
    assert not result.passed
    names = [g.name for g in result.gates]
    assert names == ["improvement:roc_auc", "regression:accuracy", "regression:brier"]
    assert result.summary == (
        "failed gate regression:accuracy: accuracy 0.8010 fell 0.0120 below champion 0.8130 "
        "(allowed 0.0100)"
    )
    assert result.to_dict()["gates"][1]["passed"] is False


def test_lower_is_better_direction():
    spec = EvaluationSpec(primary_metric="log_loss", min_improvement=0.01)
    assert evaluate({"log_loss": 0.45}, {"log_loss": 0.47}, spec).passed
    failed = evaluate({"log_loss": 0.47}, {"log_loss": 0.45}, spec)
    assert not failed.passed
    assert "0.0200 worse than champion 0.4500" in failed.summary

    spec = EvaluationSpec(max_regression={"log_loss": 0.01})
    rose = evaluate({"roc_auc": 0.9, "log_loss": 0.50}, {"roc_auc": 0.8, "log_loss": 0.47}, spec)
    assert rose.summary == (
        "failed gate regression:log_loss: log_loss 0.5000 rose 0.0300 above champion 0.4700 "
        "(allowed 0.0100)"
    )
    ceiling = evaluate(
        {"roc_auc": 0.9, "brier": 0.3}, None, EvaluationSpec(thresholds={"brier": 0.2})
    )
    assert ceiling.gates[0].message == "brier 0.3000 > 0.2000 (threshold)"
    assert higher_is_better("roc_auc") and not higher_is_better("brier")


def test_several_failures_are_all_listed():
    spec = EvaluationSpec(thresholds={"roc_auc": 0.9}, max_regression={"accuracy": 0.0})
    result = evaluate(CHALLENGER, CHAMPION, spec)
    assert result.summary.startswith("failed 2 of 3 gates: threshold:roc_auc: roc_auc 0.8123")
    assert "regression:accuracy" in result.summary


def test_champion_without_figure_is_not_compared():
    spec = EvaluationSpec(max_regression={"brier": 0.0})
    result = evaluate(CHALLENGER, {"roc_auc": 0.7}, spec)
    assert result.passed
    assert result.gates[1].reference is None
    assert "champion has no brier figure" in result.gates[1].message


def test_missing_or_unknown_metrics_are_errors():
    with pytest.raises(EvaluationError, match=r"challenger metrics lack 'roc_auc'"):
        evaluate({"accuracy": 0.9}, None, EvaluationSpec())
    with pytest.raises(EvaluationError, match=r"unknown metric 'auc'"):
        evaluate(CHALLENGER, None, EvaluationSpec(primary_metric="auc"))
    with pytest.raises(EvaluationError, match=r"unknown metric 'gini'"):
        evaluate(CHALLENGER, None, EvaluationSpec(thresholds={"gini": 0.5}))
    with pytest.raises(EvaluationError, match=r"challenger metrics lack 'f1'"):
        evaluate(CHALLENGER, CHAMPION, EvaluationSpec(max_regression={"f1": 0.01}))


def test_nan_primary_metric_fails():
    result = evaluate({"roc_auc": math.nan}, None, EvaluationSpec())
    assert not result.passed
    assert (
        result.summary == "failed gate defined:roc_auc: roc_auc is NaN (undefined on this holdout)"
    )
