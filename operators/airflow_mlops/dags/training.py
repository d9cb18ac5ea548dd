"""The training DAG (``ml_training``) built from a model config.

Parsing a DAG built here reads one small YAML file and imports no heavy library: every
operator imports what it needs inside ``execute()``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.pipeline.approval import ApprovalSpec
from airflow_mlops.dags.assets import candidate_asset, champion_asset, drift_asset
from airflow_mlops.dags.common import default_args, operator_args, read_config
from airflow_mlops.operators.approval import ModelApprovalOperator
from airflow_mlops.operators.data import PrepareDataOperator, ValidateDataOperator
from airflow_mlops.operators.profiling import ProfileModelOperator
from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
from airflow_mlops.operators.training import (
    ConvertToOnnxOperator,
    EvaluateModelOperator,
    TrainModelOperator,
)


def training_dag(
    config_path: str | os.PathLike[str],
    *,
    dag_id: str = "ml_training",
    schedule: Any = "from-config",
    retrain_on_drift: bool = True,
    mlflow_conn_id: str = "mlflow_default",
    start_date: pendulum.DateTime | None = None,
    tags: list[str] | None = None,
    approval: dict[str, Any] | None = None,
) -> DAG:
    """prepare → validate → train → evaluate + convert (parity) → register → profile → promote.

    :param config_path: the model config YAML (read at parse time: it is small and local).
    :param dag_id: the DAG id.
    :param schedule: an Airflow schedule; by default the config's ``schedule`` (cron or preset).
    :param retrain_on_drift: also start a run on each event of the model's drift Asset
        (``AssetOrTimeSchedule``: the cron OR confirmed drift, whichever comes first).
    :param mlflow_conn_id: the ``mlflow`` connection the tasks use.
    :param start_date: first logical date (default none: the first cron run is the next tick
        after the DAG is enabled).
    :param tags: extra DAG tags.
    :param approval: the approval options (``core.approval``); default: the config's
        ``approval`` section. With ``promotion: true`` an ``approve`` task (Airflow
        human-in-the-loop) sits between profile and promote.
    """
    config_file, config = read_config(config_path)
    common = operator_args(config_file, mlflow_conn_id)
    with DAG(
        dag_id=dag_id,
        schedule=_schedule(config, schedule, retrain_on_drift),
        # No default start date: the cron's first run is its next tick after the DAG is
        # enabled, not an immediate catch-up run the moment it is deployed.
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        description=config.description or f"Train, check and register {config.name}",
        doc_md=_doc(config, config_file),
        tags=["mlops", "training", config.name, *(tags or [])],
        params={
            "data_uri": Param(
                None,
                type=["null", "string"],
                description="Train on this file or folder instead of the config's data.uri",
            ),
            "register_identical": Param(
                False,
                type="boolean",
                description=(
                    "Register a new version even when an existing one was trained on the same "
                    "data bytes with the same training config and has the same metrics"
                ),
            ),
        },
    ) as dag:
        prepare = PrepareDataOperator(
            task_id="prepare", data_uri="{{ params.data_uri or '' }}", **common
        )
        validate = ValidateDataOperator(task_id="validate", prepared=prepare.output, **common)
        train = TrainModelOperator(task_id="train", prepared=prepare.output, **common)
        evaluate = EvaluateModelOperator(
            task_id="evaluate", prepared=prepare.output, trained=train.output, **common
        )
        convert = ConvertToOnnxOperator(
            task_id="convert", prepared=prepare.output, trained=train.output, **common
        )
        register = RegisterModelOperator(
            task_id="register",
            prepared=prepare.output,
            validation=validate.output,
            trained=train.output,
            evaluation=evaluate.output,
            converted=convert.output,
            register_identical="{{ params.register_identical }}",
            **common,
        )
        # With a rollout section, promotion names a candidate and ml_rollout (scheduled on
        # that Asset) moves champion after its last traffic step; without one, it is final.
        via_rollout = bool(config.rollout)
        profile = ProfileModelOperator(task_id="profile", model=register.output, **common)
        promote = PromoteModelOperator(
            task_id="promote",
            registered=register.output,
            evaluation=evaluate.output,
            via_rollout=via_rollout,
            profile=profile.output,
            outlets=[candidate_asset(config.name) if via_rollout else champion_asset(config.name)],
            **common,
        )
        validate >> train
        register >> promote
        gate = ApprovalSpec.from_config(config, approval)
        if gate.promotion:
            approve = ModelApprovalOperator(
                task_id="approve",
                gate="promotion",
                model=register.output,
                evaluation=evaluate.output,
                profile=profile.output,
                timeout_hours=gate.timeout_hours,
                on_timeout=gate.on_timeout,
                assigned_users=gate.assigned_users,
                **common,
            )
            profile >> approve >> promote
    return dag


def _schedule(config: ModelConfig, schedule: Any, retrain_on_drift: bool) -> Any:
    if schedule != "from-config":
        return schedule
    if not retrain_on_drift:
        return config.schedule
    drift = drift_asset(config.name)
    if not config.schedule:
        return [drift]
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(config.schedule, timezone="UTC"), assets=[drift]
    )


def _doc(config: ModelConfig, config_file: str) -> str:
    return (
        f"### Training: `{config.name}`\n\n"
        f"Config: `{config_file}`  \n"
        f"Data: `{config.data.uri}` (target `{config.data.target}`)  \n"
        f"Estimator: `{config.training.estimator}`  \n"
        f"Promotion: `{config.evaluation.primary_metric}` must improve by "
        f"{config.evaluation.min_improvement}; thresholds {config.evaluation.thresholds}; "
        f"allowed regressions {config.evaluation.max_regression}.\n\n"
        "Runs on its schedule and whenever drift is confirmed for this model (Asset "
        f"`{drift_asset(config.name).uri}`). Trigger with `data_uri` in the run conf to train "
        "on another file."
    )
