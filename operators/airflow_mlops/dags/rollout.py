"""Roll the candidate out (``ml_rollout``): package → canary at 0 % → traffic steps → promote,
or roll back.

Starts when the training DAG names a new ``candidate`` (every gate passed; the model config has
a ``rollout`` section). ``champion`` moves to it only after the last traffic step, and the
promote task then updates the model's champion Asset. The config's ``rollout`` section picks
the target (``local`` by default, or ``kubernetes``) and the steps; with
``approval.rollout: true`` a person approves before the 100 % step. Nothing heavy is imported
here: every operator imports what it needs when it runs.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG

from airflow_mlops.core.pipeline.approval import ApprovalSpec
from airflow_mlops.core.rollout.policy import RolloutPolicy
from airflow_mlops.dags.assets import candidate_asset, champion_asset
from airflow_mlops.dags.common import START_DATE, default_args, operator_args, read_config
from airflow_mlops.operators.approval import ModelApprovalOperator
from airflow_mlops.operators.rollout import (
    DeployCanaryOperator,
    PackageModelOperator,
    PromoteRolloutOperator,
    RollbackOperator,
    ShiftTrafficOperator,
)


def rollout_dag(
    config_path: str | os.PathLike[str],
    *,
    dag_id: str = "ml_rollout",
    mlflow_conn_id: str = "mlflow_default",
) -> DAG:
    """Build the rollout DAG for one model config.

    :param config_path: the model config YAML; its ``rollout`` section gives the target and the
        traffic steps, its ``approval`` section whether a person approves the 100 % step.
    :param dag_id: the DAG id.
    :param mlflow_conn_id: the ``mlflow`` connection the tasks use.
    """
    config_file, config = read_config(config_path)
    policy = RolloutPolicy.from_dict(config.rollout, f"{config_file}: rollout")
    approval = ApprovalSpec.from_config(config)
    common = operator_args(config_file, mlflow_conn_id)
    with DAG(
        dag_id=dag_id,
        schedule=[candidate_asset(config.name)],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(retries=0),
        description=f"Roll the new {config.name} candidate out on the {policy.target} target",
        doc_md=__doc__,
        tags=["mlops", "rollout", config.name, policy.target],
    ) as dag:
        package = PackageModelOperator(
            task_id="package", version="candidate", allow_context_only=True, **common
        )
        deploy = DeployCanaryOperator(task_id="deploy_canary", package=package.output, **common)
        previous: Any = deploy
        steps: list[Any] = []
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
    return dag
