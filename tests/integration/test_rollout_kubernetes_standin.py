"""The Kubernetes target's client calls, against a STAND-IN API server (no cluster exists here).

A small HTTP server on 127.0.0.1 plays the Kubernetes API for the official ``kubernetes``
client: it stores the objects it is sent, answers 409 on a second create, applies merge
patches, reports Deployment status, and serves a synthetic ``/metrics`` page per version
Service. No cluster is touched; what is checked is the sequence and content of the requests the
target sends, and that every object sent validates against the official schemas.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

kubernetes_validate = pytest.importorskip("kubernetes_validate")
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "gateway-api" / "httproute-v1.schema.json"
MODEL = "fixture_churn_k8s"


def _merge(target, patch):
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return patch
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class StandIn(ThreadingHTTPServer):
    """Objects by API path, a request log, unhealthy Deployments, failing versions' metrics."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str, str, dict | None]] = []
        self.unhealthy: set[str] = set()
        self.failing: set[str] = set()
        self.scrapes: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args):
        pass

    def _send(self, status, doc=None, text=None):
        body = text.encode() if text is not None else json.dumps(doc or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _handle(self, method):
        path = self.path.split("?")[0]
        body = self._body() if method in ("POST", "PATCH", "PUT") else None
        state = self.server
        with state.lock:
            state.requests.append((method, path, self.headers.get("Content-Type", ""), body))
            if path.startswith("/metrics/"):
                return self._metrics(path.removeprefix("/metrics/"))
            status_view = path.endswith("/status")
            key = path.removesuffix("/status")
            if method == "POST":
                key = f"{path}/{body['metadata']['name']}"
                if key in state.objects:
                    return self._send(
                        409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
                    )
                state.objects[key] = body
                return self._send(201, body)
            if key not in state.objects:
                return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
            if method == "GET":
                obj = dict(state.objects[key])
                if status_view:
                    name = obj["metadata"]["name"]
                    ready = 0 if name in state.unhealthy else obj["spec"]["replicas"]
                    obj["status"] = {
                        "availableReplicas": ready,
                        "conditions": [
                            {
                                "type": "Available",
                                "status": "True" if ready else "False",
                                "reason": "MinimumReplicasAvailable"
                                if ready
                                else "CrashLoopBackOff",
                                "message": "stand-in",
                            }
                        ],
                    }
                return self._send(200, obj)
            if method == "PATCH":
                state.objects[key] = _merge(state.objects[key], body)
                return self._send(200, state.objects[key])
            if method == "DELETE":
                state.objects.pop(key)
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            return self._send(405, {})

    def _metrics(self, service):
        state = self.server
        n = state.scrapes[service] = state.scrapes.get(service, 0) + 1
        version = service.rsplit("-v", 1)[1]
        code = "500" if version in state.failing else "200"
        ids = f'model="{MODEL}",version="{version}"'
        requests = 100 * n
        lines = [
            f'mlops_requests_total{{{ids},protocol="mlflow",code="{code}"}} {requests}',
            f'mlops_request_latency_seconds_bucket{{{ids},le="0.001"}} {requests}',
            f'mlops_request_latency_seconds_bucket{{{ids},le="+Inf"}} {requests}',
        ]
        return self._send(200, text="\n".join(lines) + "\n")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")


@pytest.fixture
def standin():
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def registered(mlflow_server):
    """Three bare registry versions (no artifacts: the target only needs tags and images)."""
    from airflow_mlops.core.registry.tracking import TrackingConfig

    tracking = TrackingConfig(tracking_uri=mlflow_server)
    client = tracking.client()
    client.create_registered_model(MODEL)
    versions = [
        client.create_model_version(MODEL, source="s3://no-bucket/no-model").version for _ in "123"
    ]
    client.set_model_version_tag(MODEL, versions[1], "mlops.profile.cpu_request", "300m")
    client.set_registered_model_alias(MODEL, "champion", versions[0])
    return tracking, [str(v) for v in versions]


def _target(standin, tracking, **kube):
    from airflow_mlops.core.rollout.policy import RolloutPolicy
    from airflow_mlops.core.rollout.targets.kubernetes import KubernetesTarget

    policy = RolloutPolicy.from_dict(
        {
            "target": "kubernetes",
            "steps": [50, 100],
            "bake_seconds": 0,
            "min_requests": 10,
            "kubernetes": {
                "namespace": "models",
                "api_url": standin.url,
                "metrics_url": f"{standin.url}/metrics/{{service}}",
                "ready_timeout": 0.2,
                **kube,
            },
        }
    )
    return policy, KubernetesTarget(policy.kubernetes, tracking, MODEL)


def _validate_sent(standin):
    import jsonschema

    route_schema = json.loads(SCHEMA.read_text())
    # Every object as the API server holds it after creates and merge patches.
    assert standin.objects
    for body in standin.objects.values():
        if body["kind"] == "HTTPRoute":
            jsonschema.Draft202012Validator(route_schema).validate(body)
        else:
            kubernetes_validate.validate(body, "1.33", strict=True)


def test_kubernetes_target_against_standin_api_server_rolls_out_and_promotes(standin, registered):
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.rollout import records
    from airflow_mlops.core.rollout.runner import run_rollout

    tracking, (v1, v2, _) = registered
    policy, target = _target(standin, tracking)
    # v1 is already serving: its Deployment, Service and the route exist.
    target.deploy_canary(v1, None, 0.0)
    assert target.live_version() == v1
    standin.requests.clear()

    result = run_rollout(target, policy, tracking, MODEL, v2, sleep=lambda s: None)

    assert result.status == "promoted", result.message
    assert [s.percent for s in result.steps] == [50, 100]
    calls = [(m, p) for m, p, _, _ in standin.requests if not p.startswith("/metrics")]
    base = "/apis/apps/v1/namespaces/models/deployments"
    route = "/apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes/fixture-churn-k8s"
    # The canary's Deployment exists (and was found available) before any route change.
    assert calls.index(("POST", base)) < calls.index(("PATCH", route))
    assert ("GET", f"{base}/fixture-churn-k8s-v{v2}/status") in calls
    patches = [body for m, p, _, body in standin.requests if m == "PATCH" and p == route]
    weights = [
        {r["name"]: r["weight"] for r in patch["spec"]["rules"][0]["backendRefs"]}
        for patch in patches
    ]
    old, new = f"fixture-churn-k8s-v{v1}", f"fixture-churn-k8s-v{v2}"
    assert weights == [
        {old: 100, new: 0},
        {old: 50, new: 50},
        {new: 100},
        {new: 100},
    ]
    # The old version is retired after promotion; the canary's pods were sized by profiling.
    assert ("DELETE", f"{base}/{old}") in calls
    deployment = standin.objects[f"{base}/{new}"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "300m"
    assert container["image"] == f"mlops/fixture_churn_k8s:{v2}"
    assert registry.get_version(tracking, MODEL, "champion").version == v2
    assert records.deployments(tracking, MODEL, v2)[0].weight == 100
    _validate_sent(standin)


def test_kubernetes_target_against_standin_api_server_unready_canary_gets_no_traffic(
    standin, registered
):
    from airflow_mlops.core.rollout.runner import run_rollout

    tracking, (_, v2, v3) = registered
    policy, target = _target(standin, tracking)
    target.deploy_canary(v2, None, 0.0)
    standin.unhealthy.add(f"fixture-churn-k8s-v{v3}")
    standin.requests.clear()

    result = run_rollout(target, policy, tracking, MODEL, v3, sleep=lambda s: None)

    assert result.status == "rolled_back"
    assert "0 of 1 replicas available" in result.message
    assert "CrashLoopBackOff" in result.message
    route_bodies = [b for m, p, _, b in standin.requests if "httproutes" in p and b]
    # The only route change puts everything back on v2; v3 never had a backend weight > 0.
    for body in route_bodies:
        for ref in body["spec"]["rules"][0]["backendRefs"]:
            assert not (ref["name"].endswith(f"-v{v3}") and ref["weight"] > 0)
    assert target.weights() == {v2: 100}
    assert f"/apis/apps/v1/namespaces/models/deployments/fixture-churn-k8s-v{v3}" not in (
        standin.objects
    )


def test_kubernetes_target_against_standin_api_server_rolls_back_on_5xx(standin, registered):
    from airflow_mlops.core.rollout.runner import run_rollout

    tracking, (_, v2, v3) = registered
    policy, target = _target(standin, tracking)
    target.deploy_canary(v2, None, 0.0)
    standin.failing.add(v3)

    result = run_rollout(target, policy, tracking, MODEL, v3, sleep=lambda s: None)

    assert result.status == "rolled_back"
    assert "error rate 100.00%" in result.message and "vs max 1.00%" in result.message
    assert target.weights() == {v2: 100}
