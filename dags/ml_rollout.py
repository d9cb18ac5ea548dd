"""Roll the candidate out: package → canary at 0 % → traffic steps → promote, or roll back.

Starts when the training DAG names a new ``candidate`` (every gate passed; the model config has
a ``rollout`` section). ``champion`` moves to it only after the last traffic step, and the
promote task then updates the model's champion Asset. The model config
(``MLOPS_ROLLOUT_CONFIG``, default the demo config) is read at parse time; its ``rollout``
section picks the target (``local`` by default, or ``kubernetes``) and the steps; with
``approval.rollout: true`` a person approves before the 100 % step. Nothing heavy
is imported here: every operator imports what it needs when it runs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_mlops import settings
from airflow_mlops.core.config.model import load_config
from airflow_mlops.core.pipeline.approval import ApprovalSpec
from airflow_mlops.core.rollout.policy import RolloutPolicy
from airflow_mlops.dags.assets import candidate_asset, champion_asset
from airflow_mlops.operators.approval import ModelApprovalOperator
from airflow_mlops.operators.rollout import (
    DeployCanaryOperator,
    PackageModelOperator,
    PromoteRolloutOperator,
    RollbackOperator,
    ShiftTrafficOperator,
)

CONFIG = str(
    Path(
        settings.dag_config("rollout", str(Path(__file__).parent / "configs" / "demo_churn.yaml"))
    ).resolve()
)
config = load_config(CONFIG)
policy = RolloutPolicy.from_dict(config.rollout, f"{CONFIG}: rollout")
approval = ApprovalSpec.from_config(config)
common = {"config": CONFIG, "mlflow_conn_id": "mlflow_default"}

with DAG(
    dag_id="ml_rollout",
    schedule=[candidate_asset(config.name)],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mlops", "retries": 0, "retry_delay": timedelta(minutes=1)},
    description=f"Roll the new {config.name} candidate out on the {policy.target} target",
    doc_md=__doc__,
    tags=["mlops", "rollout", config.name, policy.target],
) as dag:
    package = PackageModelOperator(
        task_id="package", version="candidate", allow_context_only=True, **common
    )
    deploy = DeployCanaryOperator(task_id="deploy_canary", package=package.output, **common)
    previous = deploy
    steps = []
    for percent in policy.steps:
        if percent == 100 and approval.rollout:
            # A person looks at the canary before it takes all traffic; a rejection fails
            # this task, so the rollback below puts all traffic back on the champion.
            gate = ModelApprovalOperator(
                task_id="approve_full_rollout",
                gate="rollout",
                model="candidate",
                timeout_hours=approval.timeout_hours,
                on_timeout=approval.on_timeout,
                assigned_users=approval.assigned_users,
                **common,
            )
            previous >> gate
            previous = gate
            steps.append(gate)
        step = ShiftTrafficOperator(
            task_id=f"shift_{percent}", deployment=deploy.output, percent=percent, **common
        )
        previous >> step
        previous = step
        steps.append(step)
    promote = PromoteRolloutOperator(
        task_id="promote",
        deployment=deploy.output,
        outlets=[champion_asset(config.name)],
        **common,
    )
    previous >> promote
    rollback = RollbackOperator(task_id="rollback", **common)
    [deploy, *steps, promote] >> rollback
