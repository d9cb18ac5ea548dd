"""Where each version is deployed, as registry tags, and the guard that protects live versions.

A deployed version carries ``mlops.deployed.<target> = <endpoint>|<weight>`` (e.g.
``mlops.deployed.local = http://127.0.0.1:8080|90``): set when it is deployed and every time its
weight changes, removed when it is rolled back or retired. A version is *live* while any of
these tags has a weight above zero.

The guard, :func:`assert_not_live`, runs before anything in this package deletes a version or
moves/removes an alias from it. The rollout's own promotion passes it without a special case:
it moves ``champion`` only after the last step, when the previous holder's weight is already
0, so the version that loses the alias is deployed but not live. A version still answering
traffic must first be rolled back or shifted to 0 %; the error says where it is live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from airflow_mlops.core.registry import versions as registry
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

log = logging.getLogger(__name__)

DEPLOYED_PREFIX = f"{registry.TAG_PREFIX}deployed."


class LiveVersionError(MLOpsError, RuntimeError):
    """A live version would be deleted or lose its alias; the message says where it is live."""


@dataclass(frozen=True)
class Deployment:
    """One place a version is deployed."""

    target: str
    endpoint: str
    weight: int

    @property
    def live(self) -> bool:
        return self.weight > 0

    def describe(self) -> str:
        return f"{self.target} {self.endpoint} with {self.weight}% of traffic"


def tag_key(target: str) -> str:
    """``mlops.deployed.<target>``."""
    return f"{DEPLOYED_PREFIX}{target}"


def parse(tags: dict[str, str]) -> list[Deployment]:
    """The deployments recorded in a version's tags (malformed values count as live: safer)."""
    found = []
    for key, value in sorted(tags.items()):
        if not key.startswith(DEPLOYED_PREFIX) or not value:
            continue
        endpoint, _, weight = value.rpartition("|")
        try:
            pct = int(float(weight))
        except ValueError:
            endpoint, pct = value, 100
        found.append(Deployment(key.removeprefix(DEPLOYED_PREFIX), endpoint, pct))
    return found


def deployments(tracking: TrackingConfig, name: str, version: str) -> list[Deployment]:
    """Where ``name`` v``version`` is deployed, from its tags."""
    found = registry.get_version(tracking, name, str(version))
    return parse(found.tags) if found else []


def record(
    tracking: TrackingConfig, name: str, version: str, target: str, endpoint: str, weight: int
) -> None:
    """Record that ``version`` is deployed on ``target`` at ``endpoint`` with ``weight`` %."""
    registry.set_version_tags(
        tracking, name, str(version), {tag_key(target): f"{endpoint}|{int(weight)}"}
    )


def clear(tracking: TrackingConfig, name: str, version: str, target: str) -> None:
    """Forget ``version``'s deployment on ``target`` (rolled back or retired)."""
    from mlflow.exceptions import MlflowException

    try:
        tracking.client().delete_model_version_tag(name, str(version), tag_key(target))
    except MlflowException as exc:
        # A tag that is already gone is what we wanted.
        log.info("no deployment tag to clear on %s v%s (%s): %s", name, version, target, exc)


def assert_not_live(tracking: TrackingConfig, name: str, version: str, action: str) -> None:
    """Refuse ``action`` on a version that still takes traffic somewhere.

    :param action: what was about to happen, for the message (``"move alias champion"``).
    :raises LiveVersionError: naming every place the version is live.
    """
    live = [d for d in deployments(tracking, name, str(version)) if d.live]
    if live:
        where = "; ".join(d.describe() for d in live)
        raise LiveVersionError(
            f"cannot {action} from {name} v{version}: it is live on {where}. Shift its traffic "
            "to 0% or roll it back first"
        )


def move_alias(
    tracking: TrackingConfig, name: str, alias: str, version: str
) -> registry.PromotionResult:
    """Move ``alias`` to ``version`` unless its current holder is live (see module docs)."""
    current = registry.get_version(tracking, name, alias)
    if current is not None and current.version != str(version):
        assert_not_live(tracking, name, current.version, f"move alias {alias!r}")
    return registry.promote(tracking, name, str(version), alias)


def delete_version(tracking: TrackingConfig, name: str, version: str) -> None:
    """Delete a registered version unless it is live anywhere."""
    assert_not_live(tracking, name, str(version), "delete the version")
    tracking.client().delete_model_version(name, str(version))
