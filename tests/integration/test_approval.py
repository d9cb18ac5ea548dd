"""The human approval gate in real ``dag.test()`` runs against a real MLflow server.

``dag.test()`` parks a human-in-the-loop task in ``awaiting_input`` and polls the metadata DB
until a response arrives (airflow/sdk/definitions/dag.py). The response here is given by the
same function the Airflow API server runs for the *Required actions* form
(``core_api.routes.public.hitl.update_hitl_detail``), called from a helper thread: what is
simulated is only the person, not the HITL machinery.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

import pytest

pytestmark = pytest.mark.integration

MODEL = "approval_churn"


@pytest.fixture(scope="module")
def approvable(champion, airflow_db):
    """A fresh version of its own model (the champion's artifacts), so tags on it stay local."""
    from dataclasses import replace

    tracking = champion["tracking"]
    client = tracking.client()
    source = client.get_model_version("fixture_churn", champion["registered"]["version"])
    tags = dict(source.tags)
    with contextlib.suppress(Exception):  # already there from an earlier run on this server
        client.create_registered_model(MODEL)
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": tracking.tracking_uri}
    )
    config = replace(champion["config"], name=MODEL).to_dict()
    yield {"client": client, "source": source, "tags": tags, "config": config}
    os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)


def _new_version(approvable) -> str:
    client, src = approvable["client"], approvable["source"]
    version = client.copy_model_version(f"models:/{src.name}/{src.version}", MODEL)
    for key, value in approvable["tags"].items():
        client.set_model_version_tag(MODEL, version.version, key, value)
    return str(version.version)


_DAG_FILE = """
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_mlops.operators.approval import ModelApprovalOperator

with DAG(dag_id={dag_id!r}, schedule=None) as dag:
    ModelApprovalOperator(
        task_id="approve",
        gate="promotion",
        model={{"name": {model!r}, "version": {version!r}}},
        evaluation={evaluation!r},
        config={config!r},
        timeout_hours=1,
    ) >> EmptyOperator(task_id="promote")
"""


def _gate_dag(folder, dag_id: str, config: dict, version: str, evaluation: dict | None = None):
    """A two-task DAG file, parsed and written to the metadata DB as the dag-processor would
    (``dag.test()`` runs only DAGs it finds serialized)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    evaluation = evaluation or {"passed": True, "summary": "passed 2 of 2 gates", "gates": []}
    path = folder / f"{dag_id}.py"
    path.write_text(
        _DAG_FILE.format(
            dag_id=dag_id, model=MODEL, version=version, evaluation=evaluation, config=config
        )
    )
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return bag.dags[dag_id]


def _respond_when_asked(dag_id: str, chosen: str, comment: str, seen: dict) -> threading.Thread:
    """Answer the request as user ``alice`` once the task waits for it (within 120 s)."""

    def answer() -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalars(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == dag_id,
                        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    )
                ).first()
                if ti is not None:
                    detail = session.scalars(
                        select(HITLDetail).where(HITLDetail.ti_id == ti.id)
                    ).one()
                    seen.update(subject=detail.subject, body=detail.body, options=detail.options)
                    update_hitl_detail(
                        dag_id=dag_id,
                        dag_run_id=ti.run_id,
                        task_id=ti.task_id,
                        update_hitl_detail_payload=UpdateHITLDetailPayload(
                            chosen_options=[chosen], params_input={"comment": comment}
                        ),
                        user=SimpleAuthManagerUser(username="alice", role="admin"),
                        session=session,
                    )
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def _states(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_approval_with_simulated_human_reject_skips_promote_and_tags_version(approvable, tmp_path):
    version = _new_version(approvable)
    dag = _gate_dag(tmp_path, "approval_reject", approvable["config"], version)
    seen: dict = {}
    answering = _respond_when_asked(dag.dag_id, "Reject", "latency too close to the SLO", seen)
    run = dag.test()
    answering.join(5)
    assert _states(run) == {"approve": "success", "promote": "skipped"}
    assert seen["options"] == ["Approve", "Reject"]
    assert seen["subject"] == f"{MODEL} v{version}: approve the promotion?"
    # The approver reads the version's figures: metrics table, parity and the gate verdict.
    assert "| roc_auc |" in seen["body"] and "### ONNX parity" in seen["body"]
    assert "passed 2 of 2 gates" in seen["body"]
    tags = approvable["client"].get_model_version(MODEL, version).tags
    assert tags["mlops.approval.promotion.decision"] == "rejected"
    assert tags["mlops.approval.promotion.by"] == "alice"
    assert tags["mlops.promotion"] == (
        "rejected at the promotion approval by alice: latency too close to the SLO"
    )


def test_approval_with_simulated_human_approve_runs_promote(approvable, tmp_path):
    version = _new_version(approvable)
    dag = _gate_dag(tmp_path, "approval_approve", approvable["config"], version)
    answering = _respond_when_asked(dag.dag_id, "Approve", "", {})
    run = dag.test()
    answering.join(5)
    assert _states(run) == {"approve": "success", "promote": "success"}
    tags = approvable["client"].get_model_version(MODEL, version).tags
    assert tags["mlops.approval.promotion.decision"] == "approved"
    assert "mlops.promotion" not in tags or not tags["mlops.promotion"].startswith("rejected at")


def test_failed_gates_promote_decides_without_asking(approvable, tmp_path):
    """A version that failed a gate is refused by promote anyway: nobody is made to wait."""
    version = _new_version(approvable)
    failed = {"passed": False, "summary": "failed 1 of 2 gates: roc_auc 0.61 < 0.7"}
    dag = _gate_dag(tmp_path, "approval_not_asked", approvable["config"], version, failed)
    run = dag.test()
    assert _states(run) == {"approve": "success", "promote": "success"}
    assert "mlops.approval.promotion.decision" not in (
        approvable["client"].get_model_version(MODEL, version).tags
    )
