"""Package a version as a serving image and roll it out step by step, or roll it back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops.links.rollout import RolloutEndpointLink, ServingImageLink
from airflow_mlops.operators.base import MLOpsBaseOperator, Result

if TYPE_CHECKING:
    from airflow_mlops.core.config.model import ModelConfig
    from airflow_mlops.core.rollout.policy import RolloutPolicy
    from airflow_mlops.core.rollout.targets.base import Target


class _RolloutOperator(MLOpsBaseOperator):
    """Shared by the rollout operators: the policy and the target from the model config."""

    ui_color = "#eef7e8"

    def policy(self, config: ModelConfig) -> RolloutPolicy:
        from airflow_mlops.core.rollout.policy import RolloutPolicy

        return self.call_core(RolloutPolicy.from_dict, config.rollout, f"{config.name}: rollout")

    def target(
        self, config: ModelConfig, policy: RolloutPolicy, images: dict[str, str] | None = None
    ) -> Target:
        from airflow_mlops.core.rollout.targets.factory import make_target

        return make_target(policy, self.tracking(), config.name, images=images)

    def deployed(
        self, context: Any, deployment: Result
    ) -> tuple[ModelConfig, RolloutPolicy, Target]:
        """Config, policy and the target holding ``deployment``'s canary; links the endpoint."""
        config = self.model_config()
        policy = self.policy(config)
        target = self.target(config, policy, {deployment["canary"]: deployment["image"]})
        RolloutEndpointLink.persist(context, _endpoint_url(target.endpoint))
        return config, policy, target


def _endpoint_url(endpoint: str) -> str | None:
    url = endpoint.split(" ")[0]
    return url if url.startswith(("http://", "https://")) else None


class PackageModelOperator(_RolloutOperator):
    """Write the Docker build context of a version and build the image if an engine answers.

    Without a Docker engine the task fails naming the engine URL and the context folder, or,
    with ``allow_context_only``, succeeds with status ``context_only`` and says no image was built.

    :param version: the version to package; default the ``champion`` (templated).
    :param docker_url: the Docker engine (default: ``DOCKER_HOST``) (templated).
    :param allow_context_only: succeed with the build context alone when no engine answers.
    :param image_registry: registry prefix of the image tag (default: the config's
        ``rollout.kubernetes.image_registry``) (templated).
    """

    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "version",
        "docker_url",
        "image_registry",
    )
    operator_extra_links = (ServingImageLink(),)

    def __init__(
        self,
        *,
        version: str | None = None,
        docker_url: str | None = None,
        allow_context_only: bool = False,
        image_registry: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.docker_url = docker_url
        self.allow_context_only = allow_context_only
        self.image_registry = image_registry

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.packaging import context as packaging
        from airflow_mlops.core.registry import versions as registry

        config = self.model_config()
        tracking = self.tracking()
        ref = str(self.version or registry.CHAMPION)
        found = registry.get_version(tracking, config.name, ref)
        if found is None and ref == registry.CANDIDATE:
            # The first version of a model is champion at once (nothing live to protect):
            # its rollout is a first deployment of the champion.
            found = registry.get_version(tracking, config.name, registry.CHAMPION)
        if found is None:
            raise AirflowFailException(f"{config.name}: no version {ref!r} to package")
        prefix = self.image_registry or self.policy(config).kubernetes.image_registry
        folder = f"{self.run_folder(config, context)}/image-v{found.version}"
        built = self.call_core(
            packaging.build_context, tracking, config.name, found.version, folder, registry=prefix
        )
        # No engine (DockerUnavailable) fails at once: a retry does not start a daemon.
        result = self.call_core(
            packaging.build_image,
            built,
            docker_url=self.docker_url or None,
            allow_context_only=self.allow_context_only,
        )
        if prefix and "." in prefix.split("/")[0]:
            ServingImageLink.persist(context, f"https://{built.image_tag.rsplit(':', 1)[0]}")
        self.log.info("%s", result.message)
        return {
            "name": config.name,
            "version": found.version,
            "image": built.image_tag,
            "context_path": built.path,
            "digest_of_context": built.digest_of_context,
            "status": result.status,
            "image_id": result.image_id,
            "message": result.message,
        }


class DeployCanaryOperator(_RolloutOperator):
    """Deploy the packaged version beside the live one at 0 % and health-check it.

    A version that fails to load or to become ready fails this task and never gets traffic.

    :param package: the ``PackageModelOperator`` result (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "package")
    operator_extra_links = (RolloutEndpointLink(),)

    def __init__(self, *, package: Result, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.package = package

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.rollout import runner

        config = self.model_config()
        policy = self.policy(config)
        canary = str(self.package["version"])
        target = self.target(config, policy, {canary: self.package.get("image", "")})
        baseline = target.live_version() or self._champion_to_start(target, config.name, canary)
        if baseline == canary:
            raise AirflowSkipException(f"v{canary} already takes the traffic on {target.name}")
        out = self.call_core(
            runner.deploy_canary, target, policy, self.tracking(), config.name, canary, baseline
        )
        RolloutEndpointLink.persist(context, _endpoint_url(target.endpoint))
        return {**out, "target": target.name, "image": self.package.get("image")}

    def _champion_to_start(self, target: Any, name: str, canary: str) -> str | None:
        """With no server running locally, the registry's champion is the baseline: the local
        target starts it first, so the canary is still compared with what it replaces."""
        from airflow_mlops.core.registry import versions as registry
        from airflow_mlops.core.rollout.targets.local import LocalTarget

        if not isinstance(target, LocalTarget):
            return None
        champion = registry.get_version(self.tracking(), name, "champion")
        if champion is None or champion.version == canary:
            return None
        self.log.info(
            "no local server answers; starting champion v%s as the baseline", champion.version
        )
        return str(champion.version)


class ShiftTrafficOperator(_RolloutOperator):
    """Give the canary ``percent`` % of traffic, wait the bake time, analyze live metrics.

    Fails (no retry) with the figures and thresholds when the analysis fails.

    :param deployment: the ``DeployCanaryOperator`` result (templated).
    :param percent: the canary's share at this step.
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "deployment")
    operator_extra_links = (RolloutEndpointLink(),)

    def __init__(self, *, deployment: Result, percent: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.percent = percent

    def execute(self, context: Any) -> dict[str, Any]:
        from dataclasses import asdict

        from airflow_mlops.core.rollout import runner

        config, policy, target = self.deployed(context, self.deployment)
        step = self.call_core(
            runner.shift_step,
            target,
            policy,
            self.tracking(),
            config.name,
            str(self.deployment["canary"]),
            self.deployment.get("baseline"),
            int(self.percent),
        )
        self.log.info("%s%%: %s", self.percent, step.message)
        return asdict(step)


class PromoteRolloutOperator(_RolloutOperator):
    """After the last step: all traffic on the canary, ``champion`` moved, old version retired.

    :param deployment: the ``DeployCanaryOperator`` result (templated).
    """

    template_fields: Sequence[str] = (*MLOpsBaseOperator.template_fields, "deployment")
    operator_extra_links = (RolloutEndpointLink(),)

    def __init__(self, *, deployment: Result, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.rollout import runner

        config, policy, target = self.deployed(context, self.deployment)
        out = runner.promote_rollout(
            target,
            policy,
            self.tracking(),
            config.name,
            str(self.deployment["canary"]),
            self.deployment.get("baseline"),
        )
        self.log.info("%s", out["message"])
        return out


class RollbackOperator(_RolloutOperator):
    """Put all traffic back on the previous version when a rollout task failed.

    Meant to run with ``trigger_rule="one_failed"`` downstream of the deploy and shift tasks.
    It reads what to roll back from the package and deploy tasks' XComs; with nothing
    packaged it is skipped.

    :param package_task_id: the ``PackageModelOperator`` task.
    :param deploy_task_id: the ``DeployCanaryOperator`` task.
    """

    template_fields: Sequence[str] = MLOpsBaseOperator.template_fields
    operator_extra_links = (RolloutEndpointLink(),)

    def __init__(
        self,
        *,
        package_task_id: str = "package",
        deploy_task_id: str = "deploy_canary",
        trigger_rule: str = "one_failed",
        **kwargs: Any,
    ) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        self.package_task_id = package_task_id
        self.deploy_task_id = deploy_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.core.rollout import runner

        ti = context["ti"]
        package = ti.xcom_pull(task_ids=self.package_task_id) or {}
        deployment = ti.xcom_pull(task_ids=self.deploy_task_id) or {}
        canary = deployment.get("canary") or package.get("version")
        if not canary:
            raise AirflowSkipException("nothing was packaged: nothing to roll back")
        config = self.model_config()
        policy = self.policy(config)
        target = self.target(config, policy)
        baseline = deployment.get("baseline") if deployment else None
        if baseline is None and not deployment:
            live = target.live_version()
            baseline = live if live != str(canary) else None
        reason = f"a task of {ti.dag_id} run {ti.run_id} failed; see its log for the figures"
        out = runner.rollback_rollout(
            target, policy, self.tracking(), config.name, str(canary), baseline, reason
        )
        RolloutEndpointLink.persist(context, _endpoint_url(target.endpoint))
        self.log.warning("%s", out["message"])
        return out
