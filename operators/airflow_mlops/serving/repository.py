"""The versions one server has loaded, where each comes from, and the routing table over them.

Shared by the prediction path (:mod:`.app`, which reads it per request) and the admin endpoints
(:mod:`.admin`, which loads versions and installs a new table), so neither imports the other.
"""

from __future__ import annotations

import logging

from airflow_mlops.serving.config import ServingConfig
from airflow_mlops.serving.metrics import Metrics
from airflow_mlops.serving.models import LoadedVersion, load_version
from airflow_mlops.serving.routing import RoutingTable

log = logging.getLogger(__name__)

__all__ = ["VersionRepository"]


class VersionRepository:
    """The loaded versions of one model and the routing table in front of them.

    :param config: the serving config (its versions, routes, shadow and loading options).
    :param metrics: where the routed weights are published.
    """

    def __init__(self, config: ServingConfig, metrics: Metrics) -> None:
        self.config = config
        self.model = config.model
        self.metrics = metrics
        self.versions: dict[str, LoadedVersion] = {}
        self.sources: dict[str, str] = dict(config.versions)
        self.table = RoutingTable(dict(config.routes), config.shadow)

    def load(self, version: str, source: str) -> LoadedVersion:
        """Load one version (blocking; call from a thread when the loop is serving)."""
        return load_version(
            version,
            source,
            tracking_uri=self.config.tracking_uri,
            threads=self.config.threads,
            cache_dir=self.config.cache_dir,
        )

    def load_configured(self) -> None:
        """Load every configured version and publish the routes (blocking).

        All of them, not only the routed ones: a version at weight 0 still answers on its
        forced-version path, and a broken source should stop the server at start, not later.
        """
        loaded = {v: self.load(v, source) for v, source in sorted(self.sources.items())}
        self.versions = loaded
        self.metrics.set_weights(dict(self.table.weights))
        log.info(
            "serving %s: versions %s, routes %s", self.model, sorted(loaded), self.table.percent()
        )

    def swap(self, versions: dict[str, LoadedVersion], table: RoutingTable) -> None:
        """Install new versions and a new routing table (no await in between: atomic)."""
        self.versions = versions
        self.table = table
        self.metrics.set_weights(dict(table.weights))

    def unload(self, versions: list[LoadedVersion]) -> None:
        """Forget versions that no longer serve: their downloads and metric series go."""
        for lv in versions:
            lv.release()
            self.metrics.forget(lv.version)

    def close(self) -> None:
        """Remove the downloads of every loaded version (shutdown; blocking)."""
        for lv in self.versions.values():
            lv.release()

    def default_version(self) -> str | None:
        """The version taking most traffic (what an unversioned metadata request describes)."""
        weights = self.table.weights
        return max(weights, key=weights.__getitem__) if weights else None
