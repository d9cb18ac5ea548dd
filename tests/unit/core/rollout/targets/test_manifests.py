"""Generated Kubernetes manifests validate against the official schemas (offline).

Deployment and Service: the Kubernetes JSON schemas shipped by ``kubernetes-validate``
(strict: unknown fields fail). HTTPRoute: Gateway API CRDs are not in those schemas, so it is
checked against ``tests/data/gateway-api/httproute-v1.schema.json``, written from the CRD's
OpenAPI schema (its source is noted in the file).
"""

from __future__ import annotations

import copy
import json

import pytest

from airflow_mlops.core.rollout.policy import RolloutPolicy
from airflow_mlops.core.rollout.targets import manifests
from tests.conftest import REPO

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate (offline Kubernetes schemas) not installed"
)
K8S_VERSION = "1.33"
SCHEMA = REPO / "tests" / "data" / "gateway-api" / "httproute-v1.schema.json"
SPEC = RolloutPolicy.from_dict(
    {
        "kubernetes": {
            "namespace": "models",
            "hostnames": ["churn.example.com"],
            "gateway": {"name": "public", "namespace": "gateways", "section_name": "https"},
        }
    }
).kubernetes
PROFILE = {
    "mlops.profile.cpu_request": "300m",
    "mlops.profile.cpu_limit": "2",
    "mlops.profile.memory_request": "200Mi",
    "mlops.profile.memory_limit": "1Gi",
    "mlops.profile.p99_ms": "1.7",
}


def _validate_route(doc):
    import jsonschema

    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)


def test_deployment_validates_strictly_and_is_locked_down():
    doc = manifests.deployment("Demo_Churn", "3", "mlops/demo_churn:3", SPEC, PROFILE)
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    pod = doc["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert doc["metadata"]["name"] == "demo-churn-v3"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # Resources come from the version's profiling figures.
    assert container["resources"] == {
        "requests": {"cpu": "300m", "memory": "200Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    assert doc["metadata"]["labels"]["app.kubernetes.io/version"] == "3"
    selector = doc["spec"]["selector"]["matchLabels"]
    assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()


def test_deployment_without_profiling_tags_uses_default_resources():
    doc = manifests.deployment("m", "1", "img:1", SPEC, {})
    assert doc["spec"]["template"]["spec"]["containers"][0]["resources"] == SPEC.resources


def test_a_wrong_field_fails_the_official_schema():
    doc = manifests.deployment("m", "1", "img:1", SPEC, {})
    broken = copy.deepcopy(doc)
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = copy.deepcopy(doc)
    unknown["spec"]["template"]["spec"]["containers"][0]["probe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_services_validate_and_select_their_pods():
    version = manifests.service("m", "2", SPEC)
    stable = manifests.service("m", None, SPEC)
    for doc in (version, stable):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert version["spec"]["selector"] == {
        "app.kubernetes.io/name": "m",
        "app.kubernetes.io/instance": "m-v2",
    }
    assert stable["spec"]["selector"] == {"app.kubernetes.io/name": "m"}


def test_httproute_validates_against_the_gateway_api_schema_with_weights():
    doc = manifests.httproute("m", {"1": 90, "2": 10, "10": 0}, SPEC)
    _validate_route(doc)
    refs = doc["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("m-v1", 90), ("m-v2", 10), ("m-v10", 0)]
    assert doc["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
            "sectionName": "https",
        }
    ]
    assert doc["spec"]["hostnames"] == ["churn.example.com"]


@pytest.mark.parametrize(
    ("mutate", "what"),
    [
        (lambda d: d["spec"]["rules"][0]["backendRefs"][0].update(weight=-1), "negative weight"),
        (lambda d: d["spec"]["rules"][0]["backendRefs"][0].pop("port"), "Service without port"),
        (lambda d: d["spec"].update(hostnames=["Bad_Host"]), "hostname pattern"),
        (
            lambda d: d["spec"]["rules"][0]["backendRefs"].extend([{"name": "x", "port": 1}] * 16),
            "more than 16 backends",
        ),
    ],
)
def test_httproute_schema_catches_mistakes(mutate, what):
    import jsonschema

    doc = manifests.httproute("m", {"1": 100}, SPEC)
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validate_route(doc)


def _routed(doc, path: str) -> bool:
    """Whether the gateway would send ``path`` to the backends (Gateway API path semantics:
    PathPrefix matches whole path elements)."""
    for rule in doc["spec"]["rules"]:
        for match in rule["matches"]:
            kind, value = match["path"]["type"], match["path"]["value"]
            if kind == "Exact" and path == value:
                return True
            if kind == "PathPrefix" and (
                path == value.rstrip("/") or path.startswith(value.rstrip("/") + "/")
            ):
                return True
    return False


def test_httproute_exposes_prediction_and_health_paths_only():
    doc = manifests.httproute("Demo_Churn", {"1": 100}, SPEC)
    _validate_route(doc)
    for path in (
        "/invocations",
        "/v2/models/Demo_Churn/infer",
        "/v2/models/Demo_Churn/versions/1/infer",
        "/v2/models/Demo_Churn",
        "/v2/models/Demo_Churn/ready",
        "/v2/health/ready",
        "/v2/health/live",
        "/v2",
        "/health",
        "/ping",
    ):
        assert _routed(doc, path), path
    for path in (
        "/admin/routes",
        "/metrics",
        "/",
        "/v2/models/other/infer",
        "/v2/models/Demo_ChurnX/infer",
        "/invocations/x",
    ):
        assert not _routed(doc, path), path


def test_metrics_are_scraped_on_the_pod_not_through_the_gateway():
    doc = manifests.deployment("m", "3", "mlops/m:3", SPEC)
    annotations = doc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(SPEC.port)
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
