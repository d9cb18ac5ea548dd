"""Promotion gates: does a challenger meet the thresholds and beat the champion?

Three kinds of gate, each named ``<kind>:<metric>``:

- ``threshold:<m>`` for every entry of ``evaluation.thresholds``: an absolute floor (or ceiling,
  for lower-is-better metrics), checked with or without a champion;
- ``improvement:<primary>``: with a champion, the primary metric must beat it by at least
  ``min_improvement`` in the metric's own direction;
- ``regression:<m>`` for every entry of ``evaluation.max_regression``: with a champion, the
  metric may not get worse than the champion's by more than the allowed amount.

The first model (no champion) is judged on the thresholds alone. A champion that lacks a figure
(an older run that did not compute it) cannot be compared on it: that gate passes and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.config.evaluation import HIGHER_IS_BETTER, LOWER_IS_BETTER, EvaluationSpec
from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "EvaluationError",
    "EvaluationResult",
    "Gate",
    "evaluate",
    "higher_is_better",
]


# Metrics are sums of many float ops: 0.3 - 0.2 is 0.09999999999999998, which must still meet
# a required improvement of 0.1.
_EPS = 1e-12


class EvaluationError(MLOpsError, ValueError):
    """The evaluation spec or the metrics cannot be used; the message names the metric."""


def higher_is_better(metric: str) -> bool:
    """The direction of ``metric``; unknown names raise :class:`EvaluationError`."""
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    known = sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER)
    raise EvaluationError(f"unknown metric {metric!r}; known metrics: {known}")


@dataclass(frozen=True)
class Gate:
    """One promotion check.

    :param name: ``threshold:<metric>``, ``improvement:<metric>`` or ``regression:<metric>``.
    :param metric: the metric checked.
    :param value: the challenger's figure.
    :param reference: the champion's figure (``None`` for thresholds, or when it has none).
    :param threshold: the absolute bound, the required improvement, or the allowed regression.
    :param passed: whether the challenger passed.
    :param message: one line with the figure, the reference and the threshold.
    """

    name: str
    metric: str
    value: float
    reference: float | None
    threshold: float
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "name": self.name,
            "metric": self.metric,
            "value": self.value,
            "reference": self.reference,
            "threshold": self.threshold,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True)
class EvaluationResult:
    """All gates for one challenger.

    :param passed: every gate passed.
    :param gates: the gates, thresholds first, then improvement, then regressions.
    :param champion_version: the registered version compared against (``None``: first model).
    """

    passed: bool
    gates: tuple[Gate, ...]
    champion_version: str | None = None

    @property
    def failed_gates(self) -> tuple[Gate, ...]:
        """The gates that did not pass."""
        return tuple(g for g in self.gates if not g.passed)

    @property
    def summary(self) -> str:
        """``passed 3 of 3 gates`` or ``failed gate <name>: <message>`` (all failures listed)."""
        failed = self.failed_gates
        if not failed:
            return f"passed {len(self.gates)} of {len(self.gates)} gates"
        if len(failed) == 1:
            return f"failed gate {failed[0].name}: {failed[0].message}"
        listed = "; ".join(f"{g.name}: {g.message}" for g in failed)
        return f"failed {len(failed)} of {len(self.gates)} gates: {listed}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom and MLflow tags)."""
        return {
            "passed": self.passed,
            "summary": self.summary,
            "champion_version": self.champion_version,
            "gates": [g.to_dict() for g in self.gates],
        }


def _figure(metrics: dict[str, float], metric: str, who: str) -> float:
    if metric not in metrics:
        raise EvaluationError(f"{who} metrics lack {metric!r}; they have {sorted(metrics)}")
    return float(metrics[metric])


def _threshold_gate(metric: str, value: float, bound: float) -> Gate:
    up = higher_is_better(metric)
    passed = value >= bound - _EPS if up else value <= bound + _EPS
    op = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
        (up, passed)
    ]
    return Gate(
        name=f"threshold:{metric}",
        metric=metric,
        value=value,
        reference=None,
        threshold=bound,
        passed=passed,
        message=f"{metric} {value:.4f} {op} {bound:.4f} (threshold)",
    )


def _no_reference_gate(kind: str, metric: str, value: float, threshold: float) -> Gate:
    return Gate(
        name=f"{kind}:{metric}",
        metric=metric,
        value=value,
        reference=None,
        threshold=threshold,
        passed=True,
        message=f"{metric} {value:.4f}: champion has no {metric} figure, not compared",
    )


def _improvement_gate(metric: str, value: float, champion: float, required: float) -> Gate:
    sign = 1.0 if higher_is_better(metric) else -1.0
    gain = (value - champion) * sign  # positive: better, in the metric's own direction
    passed = gain >= required - _EPS
    if gain >= 0:
        text = f"{metric} {value:.4f} improves on champion {champion:.4f} by {gain:.4f}"
    else:
        text = f"{metric} {value:.4f} is {-gain:.4f} worse than champion {champion:.4f}"
    return Gate(
        name=f"improvement:{metric}",
        metric=metric,
        value=value,
        reference=champion,
        threshold=required,
        passed=passed,
        message=f"{text} (required improvement {required:.4f})",
    )


def _regression_gate(metric: str, value: float, champion: float, allowed: float) -> Gate:
    up = higher_is_better(metric)
    loss = (champion - value) if up else (value - champion)  # positive: worse
    passed = loss <= allowed + _EPS
    if loss > 0:
        moved = "fell" if up else "rose"
        side = "below" if up else "above"
        text = f"{metric} {value:.4f} {moved} {loss:.4f} {side} champion {champion:.4f}"
    else:
        text = f"{metric} {value:.4f} is no worse than champion {champion:.4f}"
    return Gate(
        name=f"regression:{metric}",
        metric=metric,
        value=value,
        reference=champion,
        threshold=allowed,
        passed=passed,
        message=f"{text} (allowed {allowed:.4f})",
    )


def evaluate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    spec: EvaluationSpec,
    champion_version: str | None = None,
) -> EvaluationResult:
    """Run every gate of ``spec`` for ``challenger`` against ``champion``.

    :param challenger: the new model's holdout metrics.
    :param champion: the current champion's metrics (``None``: no champion yet, only the
        thresholds apply).
    :param spec: the promotion criteria.
    :param champion_version: the champion's registered version, carried into the result.
    :raises EvaluationError: a metric name is unknown, or the challenger lacks a metric the spec
        names (the primary metric included).
    """
    for metric in (spec.primary_metric, *spec.thresholds, *spec.max_regression):
        higher_is_better(metric)
    primary = _figure(challenger, spec.primary_metric, "challenger")

    gates: list[Gate] = [
        _threshold_gate(m, _figure(challenger, m, "challenger"), float(bound))
        for m, bound in spec.thresholds.items()
    ]
    if champion is not None:
        required = float(spec.min_improvement)
        if spec.primary_metric in champion:
            reference = float(champion[spec.primary_metric])
            gates.append(_improvement_gate(spec.primary_metric, primary, reference, required))
        else:
            gates.append(_no_reference_gate("improvement", spec.primary_metric, primary, required))
        for metric, allowed in spec.max_regression.items():
            value = _figure(challenger, metric, "challenger")
            if metric in champion:
                gates.append(_regression_gate(metric, value, float(champion[metric]), allowed))
            else:
                gates.append(_no_reference_gate("regression", metric, value, float(allowed)))
    # NaN (e.g. roc_auc on a single-class holdout) fails every comparison above, so a gate on
    # it fails; make that explicit for the primary metric even without any gate configured.
    if math.isnan(primary):
        gates.append(
            Gate(
                name=f"defined:{spec.primary_metric}",
                metric=spec.primary_metric,
                value=primary,
                reference=None,
                threshold=0.0,
                passed=False,
                message=f"{spec.primary_metric} is NaN (undefined on this holdout)",
            )
        )
    return EvaluationResult(
        passed=all(g.passed for g in gates),
        gates=tuple(gates),
        champion_version=champion_version,
    )
