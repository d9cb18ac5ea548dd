"""``ml_drift_monitor`` with ``dag.test()`` against a real MLflow server and the champion fixture.

Same-distribution data gives no event; shifted data must drift in two consecutive windows
(the default policy) before the ``drift/<model>`` Asset event is emitted with its summary.
"""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.integration

DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")


@pytest.fixture(scope="module")
def monitored(champion, airflow_db, mlflow_server, tmp_path_factory):
    """A config for the fixture model whose monitoring layout holds three days of scored data."""
    import yaml

    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    root = tmp_path_factory.mktemp("monitoring")
    version = champion["registered"]["version"]
    for day, seed, shift in zip(DAYS, (21, 22, 23), (0.0, 1.5, 1.5), strict=True):
        folder = root / "model=fixture_churn" / "source=batch" / f"version={version}"
        write_parquet_atomic(
            generate(3_000, seed=seed, shift=shift), str(folder / f"date={day}" / "part-0.parquet")
        )
    raw = json.loads(json.dumps(champion["config"].to_dict(), default=list))
    raw["data"] = {**raw["data"], "features": {
        "numeric": raw["data"].pop("numeric_features"),
        "categorical": raw["data"].pop("categorical_features"),
    }}  # fmt: skip
    raw["monitoring"] = {
        "monitoring_dir": str(root),
        "consecutive_windows": 2,
        "report_rows": 2_000,
    }
    path = tmp_path_factory.mktemp("config") / "fixture_churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    os.environ["MLOPS_MONITOR_CONFIG"] = str(path)
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": mlflow_server}
    )
    yield {"version": version, "tracking": champion["tracking"]}
    os.environ.pop("MLOPS_MONITOR_CONFIG", None)
    os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / "ml_drift_monitor.py"))
    assert bag.import_errors == {}
    return bag.dags["ml_drift_monitor"]


def _events():
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_mlops.dags.assets import drift_asset

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == drift_asset("fixture_churn").uri)
            .order_by(AssetEvent.id)
        ).all()
        return [dict(row.extra or {}) for row in rows]


def _check_state(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}["check_drift"]


def test_drift_event_only_after_two_consecutive_drifting_windows(monitored):
    from airflow_mlops.core.registry import versions as registry

    tracking = monitored["tracking"]
    before = len(_events())

    same = _dag().test(run_conf={"day": DAYS[0]})
    assert _check_state(same) == "skipped"
    tags = registry.get_version(tracking, "fixture_churn", "champion").tags
    assert tags["mlops.drift.last_status"] == "no_drift"
    assert len(_events()) == before

    first = _dag().test(run_conf={"day": DAYS[1]})
    assert _check_state(first) == "skipped"
    tags = registry.get_version(tracking, "fixture_churn", "champion").tags
    assert tags["mlops.drift.last_status"] == "drift"
    assert tags["mlops.drift.consecutive"] == "1"
    assert len(_events()) == before

    second = _dag().test(run_conf={"day": DAYS[2]})
    assert _check_state(second) == "success"
    events = _events()
    assert len(events) == before + 1
    extra = events[-1]
    assert extra["model"] == "fixture_churn" and extra["version"] == monitored["version"]
    assert extra["window"] == f"date={DAYS[2]}"
    assert {"monthly_charges", "support_calls"} <= set(extra["drifted_columns"])
    assert extra["drift_share"] >= 0.3
    assert extra["prediction_drift"]["column"] == "probability_1"
    assert extra["report_uri"] == f"runs:/{extra['run_id']}/drift/report.html"
    assert extra["consecutive"] == 2

    tags = registry.get_version(tracking, "fixture_churn", "champion").tags
    assert tags["mlops.drift.last_run_id"] == extra["run_id"]
    assert tags["mlops.drift.consecutive"] == "0"  # confirmation restarts the count
    history = json.loads(tags["mlops.drift.history"])
    assert [h["s"] for h in history[-3:]] == ["no_drift", "drift", "drift"]
    assert history[-1]["c"] == 1

    # The same window again (a cleared task, a re-run): still drift, but no second event.
    again = _dag().test(run_conf={"day": DAYS[2]})
    assert _check_state(again) == "skipped"
    assert len(_events()) == before + 1
    tags = registry.get_version(tracking, "fixture_churn", "champion").tags
    history = json.loads(tags["mlops.drift.history"])
    assert [h["w"] for h in history].count(f"date={DAYS[2]}") == 1
    assert history[-1]["c"] == 1 and tags["mlops.drift.consecutive"] == "0"

    run = tracking.client().get_run(extra["run_id"])
    assert run.data.tags["mlops.drift.status"] == "drift"
    files = {f.path for f in tracking.client().list_artifacts(extra["run_id"], "drift")}
    assert files == {"drift/report.html", "drift/summary.json"}
