"""What the rollout step loop needs from a target, and the errors a target raises.

The bottom of the rollout's targets: :mod:`.local` and :mod:`.kubernetes` implement
:class:`Target` and raise :class:`CanaryUnhealthy`; :mod:`airflow_mlops.core.rollout.runner`
drives any :class:`Target` and raises :class:`StepFailed`. None of them imports another to
share these.
"""

from __future__ import annotations

from typing import Any, Protocol

from airflow_mlops.core.rollout.analysis import Snapshot
from airflow_mlops.exceptions import MLOpsError

__all__ = ["CanaryUnhealthy", "StepFailed", "Target"]


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
