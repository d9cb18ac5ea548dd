"""The Kubernetes target: Deployment + Service per version, weighted Gateway API HTTPRoute.

Applied, patched and rolled back through the official ``kubernetes`` client (``AppsV1Api``,
``CoreV1Api``, ``CustomObjectsApi`` for the HTTPRoute). Traffic is split by the HTTPRoute's
``backendRefs`` weights; each version's pods export ``/metrics``, read through a configurable
URL per version (in cluster: the version Service; outside: a port-forward or a Prometheus
federation endpoint).

Mirrored traffic: a Gateway's ``RequestMirror`` filter discards the mirror's answers, so it
cannot measure agreement. Agreement is read where a version's server reports
``mlops_shadow_agreement_total`` (e.g. a pod configured with the other version as its shadow);
otherwise the analysis says "agreement not measured" and fails only if the policy requires it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_mlops.core.packaging.context import image_repository
from airflow_mlops.core.registry import versions as registry
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.rollout.analysis import Snapshot
from airflow_mlops.core.rollout.policy import KubernetesSpec
from airflow_mlops.core.rollout.targets import manifests
from airflow_mlops.core.rollout.targets.base import CanaryUnhealthy

log = logging.getLogger(__name__)


def api_client(spec: KubernetesSpec) -> Any:
    """A ``kubernetes.client.ApiClient`` from the spec: API URL, in-cluster or kubeconfig."""
    from kubernetes import client, config

    if spec.api_url:
        configuration = client.Configuration()
        configuration.host = spec.api_url.rstrip("/")
        configuration.verify_ssl = spec.verify_ssl
        return client.ApiClient(configuration)
    if spec.in_cluster:
        config.load_incluster_config()
        return client.ApiClient()
    return config.new_client_from_config(config_file=spec.kubeconfig, context=spec.context)


class KubernetesTarget:
    """Roll versions out on a cluster.

    :param spec: the policy's ``kubernetes`` options.
    :param tracking: where MLflow is (profiling tags size the pods).
    :param name: the registered model.
    :param images: image per version (default ``<registry>/mlops/<model>:<version>``).
    :param client: an ``ApiClient`` (e.g. from the cncf provider's ``KubernetesHook``).
    """

    name = "kubernetes"

    def __init__(
        self,
        spec: KubernetesSpec,
        tracking: TrackingConfig,
        name: str,
        images: dict[str, str] | None = None,
        client: Any = None,
    ) -> None:
        self.spec = spec
        self.tracking = tracking
        self.model = name
        self.images = dict(images or {})
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = api_client(self.spec)
        return self._client

    @property
    def endpoint(self) -> str:
        route = f"{self.spec.namespace}/httproute/{manifests.slug(self.model)}"
        if self.spec.hostnames:
            return f"http://{self.spec.hostnames[0]}/ ({route})"
        return f"k8s://{route}"

    def image(self, version: str) -> str:
        return self.images.get(
            str(version),
            f"{image_repository(self.model, self.spec.image_registry)}:{version}",
        )

    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.client)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.client)

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.client)

    def _apply(self, body: dict[str, Any]) -> None:
        """Create, or merge-patch when it exists (409)."""
        from kubernetes.client.exceptions import ApiException

        ns, name, kind = self.spec.namespace, body["metadata"]["name"], body["kind"]
        if kind == "Deployment":
            api = self._apps()
            create, patch = api.create_namespaced_deployment, api.patch_namespaced_deployment
        elif kind == "Service":
            api = self._core()
            create, patch = api.create_namespaced_service, api.patch_namespaced_service
        else:
            raise ValueError(f"cannot apply kind {kind}")
        try:
            create(ns, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            patch(name, ns, body)
        log.info("applied %s %s/%s", kind, ns, name)

    def _route(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(
                self._custom().get_namespaced_custom_object(
                    manifests.GATEWAY_GROUP,
                    manifests.GATEWAY_VERSION,
                    self.spec.namespace,
                    manifests.HTTPROUTE_PLURAL,
                    manifests.slug(self.model),
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def weights(self) -> dict[str, int]:
        """The HTTPRoute's current weights per version (empty when there is no route)."""
        route = self._route()
        if route is None:
            return {}
        prefix = f"{manifests.slug(self.model)}-v"
        out = {}
        for rule in route.get("spec", {}).get("rules", []):
            for ref in rule.get("backendRefs", []):
                if str(ref.get("name", "")).startswith(prefix):
                    out[ref["name"].removeprefix(prefix)] = int(ref.get("weight", 1))
        return out

    def live_version(self) -> str | None:
        weights = {v: w for v, w in self.weights().items() if w > 0}
        return max(weights, key=lambda v: weights[v]) if weights else None

    def set_weights(self, weights: dict[str, int], shadow: tuple[str, float] | None) -> None:
        body = manifests.httproute(self.model, weights, self.spec)
        if self._route() is None:
            self._custom().create_namespaced_custom_object(
                manifests.GATEWAY_GROUP,
                manifests.GATEWAY_VERSION,
                self.spec.namespace,
                manifests.HTTPROUTE_PLURAL,
                body,
            )
        else:
            # A merge patch replaces the backendRefs list as a whole: no stale backend remains.
            self._custom().patch_namespaced_custom_object(
                manifests.GATEWAY_GROUP,
                manifests.GATEWAY_VERSION,
                self.spec.namespace,
                manifests.HTTPROUTE_PLURAL,
                manifests.slug(self.model),
                {"spec": body["spec"]},
            )
        log.info("HTTPRoute %s weights %s", manifests.slug(self.model), weights)

    def deploy_canary(self, version: str, baseline: str | None, shadow_share: float) -> None:
        found = registry.get_version(self.tracking, self.model, str(version))
        tags = found.tags if found else {}
        self._apply(manifests.deployment(self.model, version, self.image(version), self.spec, tags))
        self._apply(manifests.service(self.model, version, self.spec))
        self._apply(manifests.service(self.model, None, self.spec))
        self.wait_available(version)
        current = self.weights()
        if not current:
            weights = {baseline: 100, version: 0} if baseline else {version: 100}
            self.set_weights(weights, None)
        elif str(version) not in current:
            self.set_weights({**current, str(version): 0}, None)

    def wait_available(self, version: str) -> None:
        """Wait until the version's Deployment has every replica available, else fail."""
        name = manifests.version_name(self.model, version)
        deadline = time.monotonic() + self.spec.ready_timeout
        while True:
            status = (
                self._apps().read_namespaced_deployment_status(name, self.spec.namespace).status
            )
            available = (status.available_replicas or 0) if status else 0
            if available >= self.spec.replicas:
                return
            if time.monotonic() > deadline:
                conditions = "; ".join(
                    f"{c.type}={c.status} ({c.reason}: {c.message})"
                    for c in ((status.conditions if status else None) or [])
                )
                raise CanaryUnhealthy(
                    f"v{version}: Deployment {self.spec.namespace}/{name} has {available} of "
                    f"{self.spec.replicas} replicas available after {self.spec.ready_timeout:.0f}s"
                    + (f"; {conditions}" if conditions else "")
                )
            time.sleep(min(2.0, max(self.spec.ready_timeout / 10, 0.05)))

    def metrics_url(self, version: str) -> str:
        return self.spec.metrics_url.format(
            service=manifests.version_name(self.model, version),
            namespace=self.spec.namespace,
            port=self.spec.port,
            version=version,
        )

    def snapshot(self) -> Snapshot:
        from airflow_mlops.core.rollout.targets.local import http

        texts = []
        for version in sorted(self.weights()):
            url = self.metrics_url(version)
            status, text = http("GET", url)
            if status != 200:
                raise RuntimeError(f"GET {url} answered {status}")
            texts.append(text)
        return Snapshot.from_texts(*texts)

    def _delete(self, version: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name = manifests.version_name(self.model, version)
        for delete in (
            self._apps().delete_namespaced_deployment,
            self._core().delete_namespaced_service,
        ):
            try:
                delete(name, self.spec.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def rollback(self, canary: str, baseline: str | None) -> None:
        if baseline is not None:
            self.set_weights({baseline: 100}, None)
        self._delete(canary)

    def retire(self, version: str) -> None:
        self._delete(version)
