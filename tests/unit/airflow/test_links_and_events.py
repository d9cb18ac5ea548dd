"""Links and lifecycle events go through XCom, not through attributes of the operator object.

The fakes stand for Airflow's task instance in the worker (``xcom_push``/``xcom_pull``); the
last test runs a real task with ``dag.test()`` so that Airflow's own ``finalize`` (which stores
each link for the UI) and the listener plugin see what the task pushed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from airflow_mlops.links.drift import DriftReportLink
from airflow_mlops.links.mlflow import MLflowModelVersionLink, MLflowRunLink
from airflow_mlops.links.profiling import MLflowProfileReportLink
from airflow_mlops.links.rollout import RolloutEndpointLink, ServingImageLink
from airflow_mlops.operators.events import EVENT_XCOM_KEY, announce, announced


class FakeTI:
    """The XCom side of a task instance: what was pushed, per key."""

    def __init__(self, task: Any = None, map_index: int = -1) -> None:
        self.task = task
        self.dag_id, self.run_id, self.task_id = "d", "r", "t"
        self.map_index = map_index
        self.try_number = 1
        self.pushed: dict[str, Any] = {}
        self.pulls: list[dict[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, **kwargs: Any) -> Any:
        self.pulls.append(kwargs)
        return self.pushed.get(kwargs["key"])


class Announcer:
    announces_events: ClassVar[bool] = True


def test_link_names_and_keys_stay_as_they_were() -> None:
    links = [
        MLflowRunLink,
        MLflowModelVersionLink,
        MLflowProfileReportLink,
        DriftReportLink,
        RolloutEndpointLink,
        ServingImageLink,
    ]
    assert [(cls.name, cls.key) for cls in links] == [
        ("MLflow run", "mlflow_run_url"),
        ("MLflow model version", "mlflow_model_version_url"),
        ("Profile report", "mlflow_profile_report_url"),
        ("Drift report", "mlflow_drift_report_url"),
        ("Serving endpoint", "rollout_endpoint_url"),
        ("Serving image", "serving_image_url"),
    ]


def test_persist_pushes_the_url_to_xcom_and_leaves_the_operator_alone() -> None:
    task = object.__new__(Announcer)
    ti = FakeTI(task)
    MLflowRunLink.persist({"ti": ti, "task": task}, "http://mlflow/#/runs/1")
    MLflowModelVersionLink.persist({"ti": ti, "task": task}, None)  # no MLflow UI: no link
    assert ti.pushed == {"mlflow_run_url": "http://mlflow/#/runs/1"}
    assert vars(task) == {}


def test_get_link_reads_the_url_the_task_instance_pushed(monkeypatch) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    asked: list[tuple[Any, str]] = []

    def get_value(*, ti_key: Any, key: str) -> Any:
        asked.append((ti_key, key))
        return {"mlflow_drift_report_url": "http://mlflow/get-artifact?x"}.get(key)

    monkeypatch.setattr(XCom, "get_value", staticmethod(get_value))
    ti_key = FakeTI(map_index=3)
    assert DriftReportLink().get_link(None, ti_key=ti_key) == "http://mlflow/get-artifact?x"
    assert MLflowRunLink().get_link(None, ti_key=ti_key) == ""
    assert asked == [(ti_key, "mlflow_drift_report_url"), (ti_key, "mlflow_run_url")]


def test_announce_pushes_the_event_and_the_listener_reads_it_back(tmp_path, monkeypatch) -> None:
    from airflow_mlops.core.events import read_events
    from airflow_mlops.plugins.events import record

    monkeypatch.setenv("MLOPS_EVENT_LOG", str(tmp_path / "events.jsonl"))
    monkeypatch.setattr("airflow_mlops.plugins.events._webhook_url", lambda: None)
    ti = FakeTI(Announcer(), map_index=2)
    announce({"ti": ti}, kind="model_promoted", model="m", version="4", message="m v4 is champion")
    assert ti.pushed[EVENT_XCOM_KEY]["details"] == {}
    record(ti)
    (event,) = read_events(tmp_path / "events.jsonl")
    assert (event["kind"], event["model"], event["version"]) == ("model_promoted", "m", "4")
    assert event["source"] == {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1}
    assert ti.pulls == [{"task_ids": "t", "key": EVENT_XCOM_KEY, "map_indexes": 2}]


def test_the_listener_asks_xcom_only_of_operators_that_announce() -> None:
    quiet = FakeTI(object())
    assert announced(quiet) is None and quiet.pulls == []
    silent = FakeTI(Announcer())  # announces, but had nothing to say this time
    assert announced(silent) is None and len(silent.pulls) == 1


def test_an_event_that_cannot_be_pushed_never_fails_the_task(caplog) -> None:
    class Broken(FakeTI):
        def xcom_push(self, key: str, value: Any) -> None:
            raise TypeError("not serializable")

    announce({"ti": Broken()}, kind="drift_detected", model="m", version=None, message="")
    assert "could not hand the lifecycle event drift_detected" in caplog.text


def test_operators_no_longer_keep_side_channels() -> None:
    import inspect

    from airflow_mlops.operators import approval, base, drift, registry

    for module in (approval, base, drift, registry):
        source = inspect.getsource(module)
        for name in ("_mlops_links", "self.mlops_event", "_mlflow_checked"):
            assert name not in source, (module.__name__, name)
    assert registry.RegisterModelOperator.announces_events is True
    assert registry.PromoteModelOperator.announces_events is True
    assert drift.DriftCheckOperator.announces_events is True
    assert approval.ModelApprovalOperator.announces_events is True


_DAG_FILE = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, BaseOperator

from airflow_mlops.links.mlflow import MLflowRunLink
from airflow_mlops.operators.events import announce


class Registers(BaseOperator):
    operator_extra_links = (MLflowRunLink(),)
    announces_events = True

    def execute(self, context):
        MLflowRunLink.persist(context, "http://mlflow/#/experiments/1/runs/abc")
        announce(context, kind="model_registered", model="toy", version="7", message="m")
        return {"version": "7"}


with DAG("t_links_events", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    Registers(task_id="register")
"""


@pytest.mark.integration
def test_a_real_task_stores_its_link_and_its_event_through_xcom(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from airflow_mlops.core.events import read_events

    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("MLOPS_EVENT_LOG", str(log))
    path = tmp_path / "links_events_dag.py"
    path.write_text(_DAG_FILE)
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()  # dag.test() runs only DAGs it finds serialized
    sync_bag_to_db(bag, "dags-folder", None)
    run = bag.dags["t_links_events"].test()
    (ti,) = run.get_task_instances()
    assert str(ti.state) == "success"
    stored = ti.xcom_pull(task_ids="register", key=MLflowRunLink().xcom_key)
    assert stored == "http://mlflow/#/experiments/1/runs/abc"
    (event,) = [e for e in read_events(log) if e["model"] == "toy"]
    assert (event["kind"], event["version"]) == ("model_registered", "7")
    assert event["source"]["task_id"] == "register"
    assert event["details"] == {}
