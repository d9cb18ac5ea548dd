"""The rollout step loop, shared by the local and the Kubernetes target.

deploy the canary at 0 % → health-check it (a version that fails to load or to become ready
never gets traffic) → for each step: set weights, bake, analyze → on failure roll back with the
reason → after the last step move the ``champion`` alias, tag the version, retire the old one.

Each phase is also a function of its own (:func:`deploy_canary`, :func:`shift_step`,
:func:`promote_rollout`, :func:`rollback_rollout`) so that Airflow can run them as separate
tasks; :func:`run_rollout` chains them in one call (the demo, the tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from airflow_mlops.core.registry import versions as registry
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.rollout import records
from airflow_mlops.core.rollout.analysis import Analysis, Snapshot, analyze
from airflow_mlops.core.rollout.policy import RolloutPolicy
from airflow_mlops.exceptions import MLOpsError

log = logging.getLogger(__name__)

RESULT_TAG = f"{registry.TAG_PREFIX}rollout.result"
StepCallback = Callable[[dict[str, Any]], None]


class CanaryUnhealthy(MLOpsError, RuntimeError):
    """The new version failed to load or to become ready; it got no traffic."""


class StepFailed(MLOpsError, RuntimeError):
    """A step's analysis failed (or found too little traffic); the message has the figures."""

    def __init__(self, message: str, analysis: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.analysis = analysis


class Target(Protocol):
    """What the step loop needs from a deployment target."""

    name: str

    @property
    def endpoint(self) -> str: ...

    def live_version(self) -> str | None:
        """The version taking most traffic now, if any."""

    def deploy_canary(self, version: str, baseline: str | None, shadow_share: float) -> None:
        """Make ``version`` available at 0 % (mirrored traffic only); raise CanaryUnhealthy."""

    def set_weights(self, weights: dict[str, int], shadow: tuple[str, float] | None) -> None:
        """Route ``weights`` (percent per version) and mirror ``shadow``'s share."""

    def snapshot(self) -> Snapshot:
        """The metrics of every version, now."""

    def rollback(self, canary: str, baseline: str | None) -> None:
        """All traffic back to ``baseline``; the canary removed."""

    def retire(self, version: str) -> None:
        """Remove a version that no longer takes traffic."""


@dataclass(frozen=True)
class StepResult:
    """One canary step."""

    percent: int
    weights: dict[str, int]
    verdict: str
    message: str
    analysis: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class RolloutResult:
    """How a rollout ended: ``promoted``, ``rolled_back`` or ``unchanged``."""

    status: str
    model: str
    canary: str
    baseline: str | None
    target: str
    endpoint: str
    message: str
    steps: tuple[StepResult, ...] = ()
    promotion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = [asdict(s) for s in self.steps]
        return out


def _emit(on_step: StepCallback | None, phase: str, message: str, **extra: Any) -> None:
    log.info("%s: %s", phase, message)
    if on_step is not None:
        on_step({"phase": phase, "message": message, **extra})


def weights_for(canary: str, baseline: str | None, percent: int) -> dict[str, int]:
    """``{canary: percent, baseline: 100 - percent}`` (the baseline dropped at 0 %)."""
    if baseline is None:
        return {canary: 100}
    out = {canary: percent, baseline: 100 - percent}
    return {v: w for v, w in out.items() if w > 0} or {baseline: 100}


def _record_weights(
    tracking: TrackingConfig, name: str, target: Target, weights: dict[str, int], *versions: str
) -> None:
    for version in versions:
        records.record(
            tracking, name, version, target.name, target.endpoint, weights.get(version, 0)
        )


def deploy_canary(
    target: Target,
    policy: RolloutPolicy,
    tracking: TrackingConfig,
    name: str,
    canary: str,
    baseline: str | None,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Deploy ``canary`` beside ``baseline`` at 0 % and health-check it.

    :raises CanaryUnhealthy: the canary failed to load or to become ready (no traffic moved).
    """
    try:
        target.deploy_canary(canary, baseline, policy.shadow_share)
    except CanaryUnhealthy:
        raise
    except Exception as exc:
        raise CanaryUnhealthy(f"v{canary} could not be deployed on {target.name}: {exc}") from exc
    records.record(tracking, name, canary, target.name, target.endpoint, 0)
    if baseline is not None:
        records.record(tracking, name, baseline, target.name, target.endpoint, 100)
    message = (
        f"v{canary} deployed on {target.name} {target.endpoint} at 0% beside v{baseline} "
        f"(mirroring {policy.shadow_share:.0%} of traffic to it)"
        if baseline
        else f"v{canary} deployed on {target.name} {target.endpoint} (first version)"
    )
    _emit(on_step, "deploy", message, canary=canary, baseline=baseline)
    return {"canary": canary, "baseline": baseline, "endpoint": target.endpoint, "message": message}


def shift_step(
    target: Target,
    policy: RolloutPolicy,
    tracking: TrackingConfig,
    name: str,
    canary: str,
    baseline: str | None,
    percent: int,
    on_step: StepCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """Give the canary ``percent`` % of traffic, bake, analyze.

    :raises StepFailed: the analysis failed, or too little traffic arrived within the policy's
        wait limit; nothing is rolled back here (the caller or the rollback task does it).
    """
    started = time.monotonic()
    weights = weights_for(canary, baseline, percent)
    if baseline is None:
        message = (
            f"v{canary} is the first version on {target.name}: nothing to compare, step skipped"
        )
        _emit(on_step, "step", message)
        return StepResult(percent=percent, weights=weights, verdict="pass", message=message)
    # Mirrored traffic goes to the version that does not answer most requests, so agreement is
    # measured at every step, the last one included.
    shadow_version = canary if percent < 100 else baseline
    shadow = (shadow_version, policy.shadow_share) if shadow_version and baseline else None
    target.set_weights(weights, shadow)
    _record_weights(tracking, name, target, weights, *(v for v in (canary, baseline) if v))
    before = target.snapshot()

    def judge() -> Analysis:
        """Live metrics since the step began, against the policy."""
        return analyze(
            before,
            target.snapshot(),
            model=name,
            canary=canary,
            baseline=baseline,
            policy=policy,
            shadow=shadow_version if shadow else None,
        )

    sleep(policy.bake_seconds)
    result = judge()
    waited = 0.0
    while result.verdict == "wait" and waited < policy.wait_limit:
        pause = min(1.0, max(policy.wait_limit - waited, 0.05))
        sleep(pause)
        waited += pause
        result = judge()
    step = StepResult(
        percent=percent,
        weights=weights,
        verdict=result.verdict,
        message=result.message,
        analysis=result.to_dict(),
        seconds=round(time.monotonic() - started, 3),
    )
    _emit(on_step, "step", f"{percent}% → {result.message}", step=asdict(step))
    if result.verdict != "pass":
        reason = result.message
        if result.verdict == "wait":
            reason += f" (waited {policy.bake_seconds + waited:.1f}s)"
        raise StepFailed(f"step {percent}%: {reason}", result.to_dict())
    return step


def promote_rollout(
    target: Target,
    policy: RolloutPolicy,
    tracking: TrackingConfig,
    name: str,
    canary: str,
    baseline: str | None,
    steps: tuple[StepResult, ...] = (),
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """After the last step: all traffic on the canary, alias moved, old version retired.

    The baseline is recorded at 0 % before the alias moves, so the live-version guard lets the
    rollout's own promotion through and nothing else.
    """
    target.set_weights({canary: 100}, None)
    records.record(tracking, name, canary, target.name, target.endpoint, 100)
    if baseline is not None:
        records.record(tracking, name, baseline, target.name, target.endpoint, 0)
    promotion = records.move_alias(tracking, name, policy.promote_alias, canary).to_dict()
    summary = "/".join(str(s.percent) for s in steps) or "direct"
    registry.set_version_tags(
        tracking,
        name,
        canary,
        {RESULT_TAG: f"promoted on {target.name} {target.endpoint} after steps {summary}"},
    )
    if baseline is not None:
        target.retire(baseline)
        records.clear(tracking, name, baseline, target.name)
    _drop_candidate(tracking, name, canary)
    message = f"v{canary} takes 100% on {target.name}; {promotion['message']}"
    _emit(on_step, "promote", message, promotion=promotion)
    return {"promotion": promotion, "message": message}


def _drop_candidate(tracking: TrackingConfig, name: str, canary: str) -> None:
    """The ``candidate`` alias names a version waiting for its rollout: once it is over, none."""
    holder = registry.get_version(tracking, name, registry.CANDIDATE)
    if holder is not None and holder.version == str(canary):
        registry.remove_alias(tracking, name, registry.CANDIDATE)


def rollback_rollout(
    target: Target,
    policy: RolloutPolicy,
    tracking: TrackingConfig,
    name: str,
    canary: str,
    baseline: str | None,
    reason: str,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """All traffic back to the baseline, the canary removed and untagged, the reason recorded.

    If the alias had already been moved to the canary (by the training DAG's promotion), it
    goes back to the baseline: the alias names what is live once the rollout is over.
    """
    target.rollback(canary, baseline)
    records.clear(tracking, name, canary, target.name)
    if baseline is not None:
        records.record(tracking, name, baseline, target.name, target.endpoint, 100)
    registry.set_version_tags(tracking, name, canary, {RESULT_TAG: f"rolled back: {reason}"})
    holder = registry.get_version(tracking, name, policy.promote_alias)
    reverted = None
    if baseline is not None and holder is not None and holder.version == canary:
        reverted = records.move_alias(tracking, name, policy.promote_alias, baseline).to_dict()
    _drop_candidate(tracking, name, canary)
    message = f"rolled back v{canary}" + (f" to v{baseline}" if baseline else "") + f": {reason}"
    _emit(on_step, "rollback", message, reverted_alias=reverted)
    return {"message": message, "reverted_alias": reverted, "reason": reason}


def run_rollout(
    target: Target,
    policy: RolloutPolicy,
    tracking: TrackingConfig,
    name: str,
    canary: str,
    baseline: str | None = None,
    on_step: StepCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutResult:
    """The whole rollout of ``canary``: deploy, steps, promote or roll back.

    :param target: where (a :class:`~airflow_mlops.core.rollout.local.LocalTarget` or
        :class:`~airflow_mlops.core.rollout.kubernetes.KubernetesTarget`).
    :param policy: steps, bake time, thresholds.
    :param tracking: where MLflow is.
    :param name: the registered model.
    :param canary: the version to roll out.
    :param baseline: the version it replaces (default: the target's live version).
    :param on_step: called with ``{"phase", "message", ...}`` after each phase (demo output).
    :param sleep: how to wait out a bake time (tests pass a faster one).
    """
    baseline = baseline if baseline is not None else target.live_version()
    common: dict[str, Any] = {"model": name, "canary": str(canary), "baseline": baseline}
    common |= {"target": target.name, "endpoint": target.endpoint}
    if baseline == str(canary):
        message = f"v{canary} already takes the traffic on {target.name}; nothing to roll out"
        _emit(on_step, "unchanged", message)
        return RolloutResult(status="unchanged", message=message, **common)
    try:
        deploy_canary(target, policy, tracking, name, canary, baseline, on_step)
    except CanaryUnhealthy as exc:
        out = rollback_rollout(target, policy, tracking, name, canary, baseline, str(exc), on_step)
        return RolloutResult(status="rolled_back", message=out["message"], **common)
    steps: list[StepResult] = []
    for percent in policy.steps if baseline else ():
        try:
            steps.append(
                shift_step(
                    target, policy, tracking, name, canary, baseline, percent, on_step, sleep
                )
            )
        except StepFailed as exc:
            out = rollback_rollout(
                target, policy, tracking, name, canary, baseline, str(exc), on_step
            )
            return RolloutResult(
                status="rolled_back", message=out["message"], steps=tuple(steps), **common
            )
    done = promote_rollout(target, policy, tracking, name, canary, baseline, tuple(steps), on_step)
    return RolloutResult(
        status="promoted",
        message=done["message"],
        steps=tuple(steps),
        promotion=done["promotion"],
        **common,
    )


def make_target(
    policy: RolloutPolicy,
    tracking: TrackingConfig,
    name: str,
    images: dict[str, str] | None = None,
    keep_running: bool = True,
) -> Target:
    """The target the policy names, built from its options.

    :param images: image tag per version (Kubernetes).
    :param keep_running: a local server started through this target outlives the caller
        (Airflow tasks); the demo and tests stop theirs.
    """
    if policy.target == "kubernetes":
        from airflow_mlops.core.rollout.targets.kubernetes import KubernetesTarget

        return KubernetesTarget(policy.kubernetes, tracking, name, images=images)
    from airflow_mlops.core.rollout.targets.local import LocalTarget

    return LocalTarget(policy.local, tracking, name, keep_running=keep_running)


def format_event(event: dict[str, Any]) -> str:
    """One line per phase for the demo: ``[step 25%] v2 passed: error rate 0.00% ...``."""
    phase = event.get("phase", "")
    if phase == "step":
        step = event["step"]
        weights = ", ".join(f"v{v} {w}%" for v, w in step["weights"].items())
        return f"[step {step['percent']:>3}%] ({weights}) {step['verdict']}: {step['message']}"
    return f"[{phase}] {event.get('message', '')}"


def demo_rollout(
    tracking: TrackingConfig,
    name: str,
    canary: str,
    baseline: str | None,
    raw_policy: dict[str, Any] | None = None,
    on_step: StepCallback | None = None,
) -> RolloutResult:
    """Roll ``canary`` out on a local server started for the occasion, under bounded load.

    What ``make demo`` calls: it starts the scoring server on 127.0.0.1 answering with
    ``baseline``, sends a bounded background load drawn from the baseline's reference sample,
    runs every step and reports each with its figures through ``on_step`` (default: print
    :func:`format_event` lines), then stops the server and the load it started.
    """
    import json

    from airflow_mlops.core.rollout.targets.local import LoadGenerator, LocalTarget, reference_rows

    policy = RolloutPolicy.from_dict(
        {"bake_seconds": 3, "min_requests": 50, **(raw_policy or {}), "target": "local"}
    )
    say = on_step or (lambda e: print(format_event(e), flush=True))
    with LocalTarget(policy.local, tracking, name) as target:
        first = baseline or canary
        target.start(first)
        meta = json.loads((target.model_folder(first) / "model.json").read_text())
        features = list(meta["numeric_features"]) + list(meta["categorical_features"])
        rows = reference_rows(tracking, name, first, features)
        with LoadGenerator(target.url, rows, max_seconds=600) as load:
            load.start()
            result = run_rollout(target, policy, tracking, name, canary, baseline, say)
        _emit(
            say,
            "load",
            f"{load.sent} requests sent during the rollout, {load.failed} failed; "
            f"answered by version: {load.versions}",
        )
        return result
