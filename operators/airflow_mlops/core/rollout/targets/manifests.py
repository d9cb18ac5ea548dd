"""Kubernetes manifests for serving model versions: plain dicts, validated in the tests.

Per version: a ``Deployment`` (resources from the version's profiling tags when present,
probes on the Open Inference Protocol health endpoints, a non-root read-only security context)
and a ``Service``. Per model: one stable ``Service`` over every version and a Gateway API
``HTTPRoute`` whose weighted ``backendRefs`` split the traffic between version Services.

The HTTPRoute matches only the prediction and health paths (:func:`public_matches`): ``/admin``
and ``/metrics`` are never reachable through the gateway. Prometheus scrapes ``/metrics`` on
each pod, found by the ``prometheus.io/*`` annotations of the pod template.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from airflow_mlops.core.rollout.policy import KubernetesSpec

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
HTTPROUTE_PLURAL = "httproutes"
PROFILE_PREFIX = "mlops.profile."
MANAGED_BY = "airflow-mlops"
APP_UID = 10001


def slug(name: str) -> str:
    """A DNS-1123 label from a model name (``Demo_Churn`` → ``demo-churn``)."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (text or "model")[:40].rstrip("-")


def version_name(model: str, version: str) -> str:
    """The Deployment and Service name of one version: ``<slug>-v<version>``."""
    return f"{slug(model)}-v{version}"


def public_matches(model: str) -> list[dict[str, Any]]:
    """The HTTPRoute path matches: what the scoring server answers to clients, nothing else.

    ``PathPrefix`` matches whole path elements (``/v2/models/churn`` matches
    ``/v2/models/churn/infer``, not ``/v2/models/churnx``).
    """
    return [
        {"path": {"type": "Exact", "value": "/invocations"}},
        {"path": {"type": "PathPrefix", "value": f"/v2/models/{quote(model, safe='')}"}},
        {"path": {"type": "PathPrefix", "value": "/v2/health"}},
        {"path": {"type": "Exact", "value": "/v2"}},
        {"path": {"type": "Exact", "value": "/health"}},
        {"path": {"type": "Exact", "value": "/ping"}},
    ]


def scrape_annotations(port: int) -> dict[str, str]:
    """Prometheus annotations of a server pod: ``/metrics`` is scraped on the pod itself."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def labels(model: str, version: str | None = None) -> dict[str, str]:
    """Recommended ``app.kubernetes.io`` labels (the version's only when given)."""
    out = {
        "app.kubernetes.io/name": slug(model),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "airflow-mlops",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if version is not None:
        out["app.kubernetes.io/instance"] = version_name(model, version)
        out["app.kubernetes.io/version"] = str(version)
    return out


def resources(tags: dict[str, str], spec: KubernetesSpec) -> dict[str, dict[str, str]]:
    """Requests and limits from ``mlops.profile.*`` tags, else the spec's defaults."""
    out = {kind: dict(values) for kind, values in spec.resources.items()}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            value = tags.get(f"{PROFILE_PREFIX}{resource}_{kind.rstrip('s')}")
            if value:
                out.setdefault(kind, {})[resource] = str(value)
    return out


def deployment(
    model: str,
    version: str,
    image: str,
    spec: KubernetesSpec,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Deployment of one version."""
    name = version_name(model, version)
    selector = {
        "app.kubernetes.io/name": slug(model),
        "app.kubernetes.io/instance": name,
    }
    annotations = {"mlops.model.name": model, "mlops.model.version": str(version)}
    p99 = (tags or {}).get(f"{PROFILE_PREFIX}p99_ms")
    if p99:
        annotations["mlops.profile.p99_ms"] = str(p99)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": labels(model, version),
            "annotations": annotations,
        },
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(model, version),
                    "annotations": {**annotations, **scrape_annotations(spec.port)},
                },
                "spec": _pod_spec(image, spec, tags or {}),
            },
        },
    }


def _pod_spec(image: str, spec: KubernetesSpec, tags: dict[str, str]) -> dict[str, Any]:
    """A non-root pod with a read-only root filesystem and one server container."""
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": APP_UID,
            "runAsGroup": APP_UID,
            "fsGroup": APP_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_server_container(image, spec, tags)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}],
    }


def _server_container(image: str, spec: KubernetesSpec, tags: dict[str, str]) -> dict[str, Any]:
    """The scoring server: its port, resources, probes and locked-down security context."""
    return {
        "name": "server",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
        "resources": resources(tags, spec),
        **_probes(),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The root filesystem is read-only: capture and temp files go here.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _probes() -> dict[str, Any]:
    """Startup and liveness on ``/v2/health/live``; readiness (all versions loaded) on
    ``/v2/health/ready``."""
    probe = {"port": "http", "scheme": "HTTP"}
    return {
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", **probe},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", **probe},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", **probe},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
    }


def service(model: str, version: str | None, spec: KubernetesSpec) -> dict[str, Any]:
    """A version's Service, or (``version=None``) the stable Service over every version."""
    name = version_name(model, version) if version is not None else slug(model)
    selector = {"app.kubernetes.io/name": slug(model)}
    if version is not None:
        selector["app.kubernetes.io/instance"] = name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": labels(model, version)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def httproute(model: str, weights: dict[str, int], spec: KubernetesSpec) -> dict[str, Any]:
    """The model's HTTPRoute: one rule on the public paths (:func:`public_matches`), one
    weighted backend per version Service."""
    gateway = spec.gateway
    parent: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway["name"]}
    if gateway.get("namespace"):
        parent["namespace"] = gateway["namespace"]
    if gateway.get("section_name"):
        parent["sectionName"] = gateway["section_name"]
    route_spec: dict[str, Any] = {
        "parentRefs": [parent],
        "rules": [
            {
                "matches": public_matches(model),
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": version_name(model, version),
                        "port": spec.port,
                        "weight": int(weight),
                    }
                    for version, weight in sorted(weights.items(), key=lambda kv: int(kv[0]))
                ],
            }
        ],
    }
    if spec.hostnames:
        route_spec["hostnames"] = list(spec.hostnames)
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": slug(model), "namespace": spec.namespace, "labels": labels(model)},
        "spec": route_spec,
    }
