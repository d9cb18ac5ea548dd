"""Batch scoring tasks: pin the model version once, then score partitions (mappable).

Two runners share the pinning and the summary: ``BatchScoreOperator`` scores in the Airflow
worker; for ``scoring.runner: kubernetes``, ``PlanScoringPodsOperator`` plans one pod per
partition and :func:`scoring_pod_partial` / :func:`scoring_pod_kwargs` turn the plan into a
mapped ``KubernetesPodOperator`` running the version's serving image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.links.mlflow import MLflowModelVersionLink
from airflow_mlops.operators.base import MLOpsBaseOperator


class ResolveModelOperator(MLOpsBaseOperator):
    """Resolve the model reference (e.g. ``champion``) to one concrete version, once per run.

    Every scoring task of the run then uses the returned version, so a champion that changes
    while the run is in progress cannot mix versions. Returns ``{name, version, model_uri,
    reference}``.

    :param model: alias, version or ``models:/`` URI, or a local ``.onnx`` path; default the
        config's ``scoring.model`` (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "model")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fdf1e0"

    def __init__(self, *, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.model.reference import (
            parse_reference,
            resolve_version,
        )
        from airflow_mlops.core.scoring.spec import ScoringSpec

        config = self.model_config()
        spec = self.call_core(ScoringSpec.from_dict, config.scoring, f"task {self.task_id}")
        reference = self.model or spec.model
        kind = self.call_core(parse_reference, reference, config.name)[0]
        tracking = self.tracking() if kind == "registry" else None
        pinned = self.call_core(resolve_version, reference, tracking, name=config.name)
        if tracking is not None:
            MLflowModelVersionLink.persist(
                context, tracking.model_version_url(pinned.name, pinned.version)
            )
        self.log.info("scoring with %s v%s (%s)", pinned.name, pinned.version, reference)
        return pinned.to_dict()


class BatchScoreOperator(MLOpsBaseOperator):
    """Score one partition with ONNX Runtime and write predictions, rejects and a sample.

    Designed for dynamic task mapping:
    ``BatchScoreOperator.partial(model=resolve.output, output_uri=...).expand(input_uri=...)``.
    Returns :class:`airflow_mlops.core.scoring.types.ScoreResult` as a dict (with the model version
    the partition was scored with).

    :param input_uri: the partition: a Parquet/CSV file, a folder or a hive dataset (templated).
    :param output_uri: the predictions file; ``{partition}`` is replaced by the partition's
        name and ``{date}`` by the ``date=`` folder of the input (templated).
    :param model: a reference (``champion``, ``"3"``, ``models:/...``, a local ``.onnx`` path)
        or the ``ResolveModelOperator`` result; default the config's ``scoring.model``
        (templated).
    :param partition: the name used in logs, errors and the sample file (default: from the
        input URI) (templated).
    :param sample_date: the ``date=`` of the monitoring sample (default: the input's ``date=``
        folder, else today) (templated).
    :param rejects_uri: the rejects file (default ``<output folder>/_rejects/<file>``)
        (templated).
    :param key_columns: columns copied to the output (default ``scoring.key_columns``, else the
        config's ``data.key_columns``).
    """

    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "input_uri",
        "output_uri",
        "model",
        "partition",
        "sample_date",
        "rejects_uri",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fdf1e0"

    def __init__(
        self,
        *,
        input_uri: str,
        output_uri: str,
        model: str | dict[str, Any] | None = None,
        partition: str | None = None,
        sample_date: str | None = None,
        rejects_uri: str | None = None,
        key_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.model = model
        self.partition = partition
        self.sample_date = sample_date
        self.rejects_uri = rejects_uri
        self.key_columns = key_columns

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.model.reference import parse_reference, resolve_model
        from airflow_mlops.core.scoring.partition import score_partition
        from airflow_mlops.core.scoring.spec import ScoringSpec
        from airflow_mlops.core.scoring.types import partition_target

        config = self.model_config()
        spec = self.call_core(ScoringSpec.from_dict, config.scoring, f"task {self.task_id}")
        model_ref = self.model or spec.model
        partition, date, output_uri = self.call_core(
            partition_target, self.input_uri, self.output_uri, self.partition
        )
        registry = isinstance(model_ref, dict) and not str(model_ref["version"]).startswith(
            "local-"
        )
        if isinstance(model_ref, str):
            registry = self.call_core(parse_reference, model_ref, config.name)[0] == "registry"
        tracking = self.tracking() if registry else None
        model = self.call_core(resolve_model, model_ref, tracking, name=config.name)
        if tracking is not None:
            MLflowModelVersionLink.persist(
                context, tracking.model_version_url(model.name, model.version)
            )
        keys = self.key_columns or spec.key_columns or config.data.key_columns
        # Bad input (ScoringError) does not get better on retry: call_core fails it now.
        result = self.call_core(
            score_partition,
            self.input_uri,
            output_uri,
            model,
            key_columns=tuple(keys),
            rejects_uri=self.rejects_uri,
            batch_rows=spec.batch_rows,
            threads=spec.threads,
            monitoring_dir=spec.monitoring_root() if spec.sample_rows else None,
            sample_rows=spec.sample_rows,
            sample_date=self.sample_date or date,
            seed=config.data.seed,
            partition=partition,
            progress_seconds=spec.progress_seconds,
            format=spec.format,
        )
        return result.to_dict()


class PlanScoringPodsOperator(MLOpsBaseOperator):
    """Plan one Kubernetes pod per partition for ``scoring.runner: kubernetes``.

    Returns a list of ``{arguments, image, container_resources, labels}`` (one per partition,
    in the order given) for ``KubernetesPodOperator.partial(...).expand_kwargs(...)`` through
    :func:`scoring_pod_kwargs`. The image is the pinned version's serving image; the pod's
    requests and limits come from the config, else the version's ``mlops.profile.*`` tags, else
    defaults (:func:`airflow_mlops.core.scoring.pod.pod_resources`).

    :param model: ``ResolveModelOperator``'s result (the pinned version) (templated).
    :param partitions: the input partitions (URIs) (templated).
    :param output_uri: the predictions file per partition, with ``{date}`` and ``{partition}``
        (templated).
    :param key_columns: columns copied to the output (default ``scoring.key_columns``, else the
        config's ``data.key_columns``).
    """

    # model and partitions are templated so that upstream results (XComArgs) are resolved.
    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "model",
        "partitions",
        "output_uri",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fdf1e0"

    def __init__(
        self,
        *,
        model: dict[str, Any] | Any,
        partitions: Sequence[str] | Any,
        output_uri: str,
        key_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.partitions = partitions
        self.output_uri = output_uri
        self.key_columns = key_columns

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from airflow_mlops.core.registry import versions as registry
        from airflow_mlops.core.scoring.pod import plan_pods
        from airflow_mlops.core.scoring.spec import ScoringSpec

        config = self.model_config()
        spec = self.call_core(ScoringSpec.from_dict, config.scoring, f"task {self.task_id}")
        model = dict(self.model)
        tags: dict[str, str] = {}
        if not str(model["version"]).startswith("local-"):
            tracking = self.tracking()
            found = registry.get_version(tracking, model["name"], str(model["version"]))
            tags = dict(found.tags) if found else {}
            MLflowModelVersionLink.persist(
                context, tracking.model_version_url(model["name"], str(model["version"]))
            )
        keys = self.key_columns or spec.key_columns or config.data.key_columns
        plan = self.call_core(
            plan_pods,
            list(self.partitions or []),
            model,
            spec,
            output_template=self.output_uri,
            key_columns=tuple(keys),
            seed=config.data.seed,
            tags=tags,
        )
        if plan:
            first = plan[0]
            self.log.info(
                "%d pod(s) with %s, resources %s",
                len(plan),
                first["image"],
                first["container_resources"],
            )
        return plan


def scoring_pod_partial(kube: Any, model_name: str) -> dict[str, Any]:
    """The ``KubernetesPodOperator.partial()`` keywords shared by every partition's pod.

    :param kube: the :class:`~airflow_mlops.core.scoring.spec.KubernetesScoringSpec`.
    :param model_name: names the pods (``score-<model>-<random>``).
    """
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    from airflow_mlops.core.rollout.targets.manifests import slug
    from airflow_mlops.core.scoring.container import CONTAINER_COMMAND

    secrets = [
        Secret("env", name, *str(ref).split("/", 1)) for name, ref in kube.secret_env.items()
    ]
    secrets += [Secret("env", None, secret) for secret in kube.secret_env_from]
    return {
        "name": f"score-{slug(model_name)}",
        "namespace": kube.namespace,
        "cmds": list(CONTAINER_COMMAND),
        "env_vars": {str(k): str(v) for k, v in kube.env.items()},
        "secrets": secrets,
        "service_account_name": kube.service_account,
        "image_pull_policy": kube.image_pull_policy,
        "kubernetes_conn_id": kube.conn_id,
        "in_cluster": kube.in_cluster,
        "config_file": kube.config_file,
        "cluster_context": kube.context,
        "pod_template_file": kube.pod_template_file,
        "startup_timeout_seconds": kube.startup_timeout_seconds,
        "on_finish_action": kube.on_finish_action,
        "do_xcom_push": True,
        "get_logs": True,
        "log_events_on_failure": True,
        # Locked down like the serving Deployment; /tmp is the only writable path besides the
        # XCom volume the provider mounts.
        "container_security_context": k8s.V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "volumes": [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())],
        "volume_mounts": [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
    }


def scoring_pod_kwargs(item: dict[str, Any]) -> dict[str, Any]:
    """One planned pod as ``KubernetesPodOperator`` keywords (for ``XComArg.map``).

    The plan travels through XCom as plain JSON; the operator wants the resources as a
    ``V1ResourceRequirements``.
    """
    from kubernetes.client import models as k8s

    out = dict(item)
    resources = out.get("container_resources")
    if isinstance(resources, dict):
        out["container_resources"] = k8s.V1ResourceRequirements(
            requests=resources.get("requests"), limits=resources.get("limits")
        )
    return out
