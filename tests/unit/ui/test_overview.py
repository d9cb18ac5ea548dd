"""Tags of MLflow ``ModelVersion`` entities (the real class, no server) as the page shows them."""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.ui import overview

NO_UI = TrackingConfig(tracking_uri="sqlite:///unused.db")
WITH_UI = TrackingConfig(tracking_uri="http://mlflow:5000", ui_url="https://mlflow.example.org/")


def version(number: int, tags: dict[str, str], aliases: list[str] | None = None) -> ModelVersion:
    return ModelVersion(
        name="churn model",
        version=str(number),
        creation_timestamp=1_700_000_000_000,
        run_id="abc123",
        tags=[ModelVersionTag(k, v) for k, v in tags.items()],
        aliases=aliases or [],
    )


def test_metrics_key_ones_first_then_the_rest_sorted() -> None:
    tags = {
        "mlops.metric.brier": "0.1",
        "mlops.metric.accuracy": "0.8",
        "mlops.metric.roc_auc": "0.91",
        "mlops.metric.odd": "n/a",
        "mlops.parity.max_abs_diff": "1e-07",
    }
    view = overview.version_view(version(1, tags), NO_UI, overview._Runs(None))
    assert list(view.metrics) == ["roc_auc", "accuracy", "brier", "odd"]
    assert view.metrics["roc_auc"] == 0.91
    assert view.metrics["odd"] == "n/a"
    assert view.parity == {"max_abs_diff": "1e-07"}


def test_deployments_parse_endpoint_and_weight() -> None:
    tags = {
        "mlops.deployed.local": "http://127.0.0.1:8080|90",
        "mlops.deployed.k8s": "svc/churn",
        "mlops.deployed.retired": "",
    }
    view = overview.version_view(version(2, tags), NO_UI, overview._Runs(None))
    assert view.deployments == (
        overview.Deployment("k8s", "svc/churn", None),
        overview.Deployment("local", "http://127.0.0.1:8080", 90),
    )


def test_profile_and_drift_without_a_ui_have_no_links() -> None:
    tags = {
        "mlops.profile.p99_ms": "1.5",
        "mlops.profile.load_ms": "20",
        "mlops.drift.last_status": "drift",
        "mlops.drift.consecutive": "2",
        "mlops.drift.last_window": "2026-01-02",
    }
    view = overview.version_view(version(3, tags, ["champion"]), NO_UI, overview._Runs(None))
    assert view.profile == {"p99_ms": "1.5"}
    assert view.drift == overview.Drift(status="drift", consecutive=2, window="2026-01-02")
    assert view.version_url is None and view.run_url is None
    assert view.aliases == ("champion",)


def test_links_use_the_ui_url_and_quote_the_name() -> None:
    view = overview.version_view(version(4, {}), WITH_UI, overview._Runs(None))
    assert view.version_url == "https://mlflow.example.org/#/models/churn%20model/versions/4"
    assert view.run_url == "https://mlflow.example.org/#/runs/abc123"
    assert view.drift is None


def test_old_versions_hidden_unless_aliased_or_deployed() -> None:
    versions = [version(n, {}) for n in range(1, 8)]
    versions[0] = version(1, {"mlops.deployed.local": "http://x|10"})
    versions[1] = version(2, {}, ["champion"])
    shown = [mv.version for mv in overview._shown(versions, 3)]
    assert shown == ["7", "6", "5", "2", "1"]


def test_aliases_come_from_the_registered_model_when_search_omits_them() -> None:
    # search_model_versions returns versions with no aliases; the model's alias map has them.
    view = overview.version_view(
        version(5, {}), NO_UI, overview._Runs(None), {"champion": "5", "challenger": "6"}
    )
    assert view.aliases == ("champion",)
    versions = [version(n, {}) for n in range(1, 6)]
    assert [mv.version for mv in overview._shown(versions, 2, frozenset({"1"}))] == ["5", "4", "1"]
