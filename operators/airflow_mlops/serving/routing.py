"""Which version answers a request: weighted routing (A/B, canary) and a mirrored shadow.

A :class:`RoutingTable` is immutable. The server holds one reference and every request reads
it once, so a weight change is a single reference swap: a request in flight keeps the table it
started with, and no request ever sees half a change.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_mlops.serving.config import ShadowSpec, normalise_routes

__all__ = ["RoutingTable"]


@dataclass(frozen=True)
class RoutingTable:
    """Normalised weights per version and an optional shadow.

    :param weights: ``{version: share}``, shares summing to 1 (see ``normalise_routes``).
    :param shadow: the mirrored version and share, or ``None``.
    """

    weights: Mapping[str, float]
    shadow: ShadowSpec | None = None
    _versions: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _edges: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        routed = [(v, w) for v, w in self.weights.items() if w > 0]
        edges, total = [], 0.0
        for _, w in routed:
            total += w
            edges.append(total)
        object.__setattr__(self, "_versions", tuple(v for v, _ in routed))
        object.__setattr__(self, "_edges", tuple(e / total for e in edges))

    @classmethod
    def build(cls, routes: Mapping[str, float], shadow: ShadowSpec | None = None) -> RoutingTable:
        """A table from raw (un-normalised) weights; raises ``ConfigError`` on bad weights."""
        return cls(normalise_routes(dict(routes)), shadow)

    @property
    def versions(self) -> tuple[str, ...]:
        """Versions that receive routed traffic (weight > 0)."""
        return self._versions

    def choose(self, u: float) -> str:
        """The version for a uniform draw ``u`` in [0, 1)."""
        if len(self._versions) == 1:
            return self._versions[0]
        i = bisect.bisect_right(self._edges, u)
        return self._versions[min(i, len(self._versions) - 1)]

    def pick(self, rng: random.Random | None = None) -> str:
        """The version for one request (``rng`` for seeded tests)."""
        return self.choose((rng or random).random())

    def shadow_for(self, answered: str, u: float) -> str | None:
        """The shadow version to mirror this request to, or ``None``.

        A request answered by the shadow version itself is not mirrored (it would only agree
        with itself).
        """
        s = self.shadow
        if s is None or s.version == answered or u >= s.share:
            return None
        return s.version

    def percent(self) -> dict[str, float]:
        """``{version: percent}`` rounded to 0.01, as ``GET /admin/routes`` shows it."""
        return {v: round(w * 100, 2) for v, w in self.weights.items()}
