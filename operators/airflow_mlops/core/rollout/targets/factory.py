"""The target a rollout policy names, built from its options."""

from __future__ import annotations

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.rollout.policy import RolloutPolicy
from airflow_mlops.core.rollout.targets.base import Target

__all__ = ["make_target"]


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
