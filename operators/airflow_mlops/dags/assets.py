"""The Assets the lifecycle DAGs emit and listen to, named in one place."""

from __future__ import annotations

from airflow.sdk import Asset


def champion_asset(model_name: str) -> Asset:
    """Updated each time a new version of ``model_name`` becomes champion (starts rollout)."""
    return Asset(name=f"mlops.champion.{model_name}", uri=f"mlops://models/{model_name}/champion")


def drift_asset(model_name: str) -> Asset:
    """Updated when drift is confirmed for ``model_name`` (starts retraining)."""
    return Asset(name=f"mlops.drift.{model_name}", uri=f"mlops://models/{model_name}/drift")


def candidate_asset(model_name: str) -> Asset:
    """Updated when a version passed every training gate and waits for its rollout."""
    return Asset(name=f"mlops.candidate.{model_name}", uri=f"mlops://models/{model_name}/candidate")


def incoming_asset(model_name: str) -> Asset:
    """Updated by whoever lands new input data for ``model_name`` (extra: ``{"date": ...}``);
    starts batch scoring."""
    return Asset(name=f"mlops.incoming.{model_name}", uri=f"mlops://data/{model_name}/incoming")
