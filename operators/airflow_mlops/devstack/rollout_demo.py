"""The demo's rollout: a local server started for the occasion, under bounded load.

Demo only (``make demo``); the rollout itself is
:func:`airflow_mlops.core.rollout.runner.run_rollout`.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.rollout.policy import RolloutPolicy
from airflow_mlops.core.rollout.runner import RolloutResult, StepCallback, emit, run_rollout


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
        emit(
            say,
            "load",
            f"{load.sent} requests sent during the rollout, {load.failed} failed; "
            f"answered by version: {load.versions}",
        )
        return result
