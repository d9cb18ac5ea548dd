"""Extra links from rollout tasks to the serving endpoint and the image."""

from __future__ import annotations

from airflow_mlops.links.mlflow import _PersistedLink


class RolloutEndpointLink(_PersistedLink):
    """The endpoint that serves the model (local URL or the route's hostname)."""

    name = "Serving endpoint"
    key = "rollout_endpoint_url"


class ServingImageLink(_PersistedLink):
    """The serving image in its registry (when the registry has a web address)."""

    name = "Serving image"
    key = "serving_image_url"
