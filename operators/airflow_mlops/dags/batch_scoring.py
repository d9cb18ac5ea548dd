"""Batch scoring of a day's input partitions with the champion (``ml_batch_scoring``).

resolve the champion once → list the day's partitions → one mapped scoring task per partition
→ summary (rows in/out/rejected per partition, the model version each used; fails if versions
differ or a partition failed). Runs daily and whenever the incoming-data Asset is updated.

``scoring.runner: worker`` (default) scores each partition in the Airflow worker;
``scoring.runner: kubernetes`` plans one pod per partition (``plan_pods``) and maps the cncf
provider's ``KubernetesPodOperator`` over the plan: the version's serving image runs
``airflow-mlops score`` and hands back the same result through its XCom sidecar.

Inputs: ``<scoring.input_uri>/date=YYYY-MM-DD/<partition>`` (a file or a hive folder each);
outputs: ``<scoring.output_uri>/date=YYYY-MM-DD/<partition>.parquet`` with rejects under
``_rejects/`` beside them. The day is the run conf's ``date``, else the ``date`` in the
triggering Asset event's extra, else the run's logical date, else the day the run was queued.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    get_current_context,
    task,
)

from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.dags.assets import incoming_asset
from airflow_mlops.dags.common import START_DATE, default_args, operator_args, read_config
from airflow_mlops.operators.scoring import BatchScoreOperator, ResolveModelOperator


def run_date(context: Any) -> str:
    """The day a scoring run scores (``YYYY-MM-DD``), in the order the module docstring gives."""
    params = context.get("params") or {}
    if params.get("date"):
        return str(params["date"])
    try:
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                if (event.extra or {}).get("date"):
                    return str(event.extra["date"])
    except Exception:  # the accessor is lazy and absent outside scheduler runs
        pass
    when = context.get("logical_date") or context["dag_run"].run_after
    return pendulum.instance(when).in_timezone("UTC").format("YYYY-MM-DD")


def scoring_dag(
    config_path: str | os.PathLike[str],
    *,
    dag_id: str = "ml_batch_scoring",
    mlflow_conn_id: str = "mlflow_default",
) -> DAG:
    """Build the batch-scoring DAG for one model config.

    :param config_path: the model config YAML; its ``scoring`` section says where inputs and
        outputs are, the schedule and the runner.
    :param dag_id: the DAG id.
    :param mlflow_conn_id: the ``mlflow`` connection the tasks use.
    """
    config_file, config = read_config(config_path)
    spec = ScoringSpec.from_dict(config.scoring, config_file)
    input_base = spec.input_base(config.name)
    output_base = spec.output_base(config.name)
    common = operator_args(config_file, mlflow_conn_id)
    # ``scoring.schedule: null`` keeps the incoming-data Asset: new data still starts a run.
    schedule: Any = [incoming_asset(config.name)]
    if spec.schedule:
        schedule = AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(spec.schedule, timezone="UTC"),
            assets=[incoming_asset(config.name)],
        )
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        description=f"Score the day's input partitions of {config.name} with @{spec.model}",
        doc_md=__doc__,
        tags=["mlops", "scoring", config.name],
        params={
            "date": Param(None, type=["null", "string"], description="Score this day (YYYY-MM-DD)")
        },
    ) as dag:
        resolve = ResolveModelOperator(task_id="resolve_model", **common)

        @task
        def list_partitions() -> list[str]:
            from airflow_mlops.core.scoring.runs import list_partitions as listing
            from airflow_mlops.hooks.storage import configure_object_storage

            configure_object_storage()  # s3:// through aws_default, as the operators do
            day = run_date(get_current_context())
            found = listing(input_base, day)
            print(f"{len(found)} partition(s) for {day} under {input_base}")
            return found

        partitions = list_partitions()
        output_uri = f"{output_base}/date={{date}}/{{partition}}.parquet"
        scored: Any
        if spec.runner == "kubernetes":
            # Imported only for this runner: the provider's import costs seconds per parse.
            from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

            from airflow_mlops.operators.scoring import (
                PlanScoringPodsOperator,
                scoring_pod_kwargs,
                scoring_pod_partial,
            )

            plan = PlanScoringPodsOperator(
                task_id="plan_pods",
                model=resolve.output,
                partitions=partitions,
                output_uri=output_uri,
                **common,
            )
            scored = KubernetesPodOperator.partial(
                task_id="score", **scoring_pod_partial(spec.kubernetes, config.name)
            ).expand_kwargs(plan.output.map(scoring_pod_kwargs))
        else:
            scored = BatchScoreOperator.partial(
                task_id="score", model=resolve.output, output_uri=output_uri, **common
            ).expand(input_uri=partitions)

        @task(trigger_rule="all_done")
        def summary(results: Any, listed: list[str] | None) -> dict[str, Any]:
            """Runs whatever failed upstream (all_done), reports the partitions that did
            score, and fails when anything did not: a run that lost a partition or never
            resolved its model must not end as a success."""
            from airflow.sdk.exceptions import AirflowFailException

            from airflow_mlops.core.scoring.pod import normalize_results
            from airflow_mlops.core.scoring.runs import summarize
            from airflow_mlops.core.scoring.types import ScoringError
            from airflow_mlops.hooks.storage import configure_object_storage

            configure_object_storage()  # the summary reads each output's footer (s3:// too)
            if listed is None:
                raise AirflowFailException(
                    "nothing was scored: resolve_model or list_partitions failed (see their logs)"
                )
            try:
                # One request for every mapped result: iterating the lazy sequence asks for
                # one index past the end, which the API logs as an error on every run.
                scored = normalize_results(results[:] if results is not None else [])
                for row in scored:
                    print(
                        f"{row['input_uri']}: {row['rows_in']} in, {row['rows_out']} out, "
                        f"{row['rows_rejected']} rejected, {row['model_name']} "
                        f"v{row['model_version']}"
                    )
                out = summarize(scored, list(listed))
            except ScoringError as exc:
                raise AirflowFailException(str(exc)) from exc
            print(f"model version(s): {out['model_versions']}; total rows {out['rows_in']}")
            return out

        # The XComArg stands for the listed partitions until the task runs.
        summary(scored.output, partitions)  # type: ignore[arg-type]
        resolve >> partitions
    return dag
