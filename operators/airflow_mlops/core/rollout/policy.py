"""The rollout policy: canary steps, bake time, analysis thresholds, target options.

Parsed from the model config's ``rollout`` section; an empty section gives a safe default
(10 → 25 → 50 → 100 % with one minute per step on the local target)::

    rollout:
      target: local            # or kubernetes
      steps: [10, 25, 50, 100]
      bake_seconds: 60
      min_requests: 100        # per analysis, on the canary
      max_error_rate: 0.01     # 5xx share on the canary
      max_p99_ms: 50
      min_agreement: 0.95      # label agreement with the champion on mirrored traffic
      shadow_share: 0.2
      local: {port: 8080}
      kubernetes: {namespace: models, gateway: {name: public}}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, build_section

TARGETS = ("local", "kubernetes")
_FLOATS: tuple[str, ...] = ("bake_seconds", "analysis_timeout_seconds", "max_error_rate")
_FLOATS += ("max_p99_ms", "min_agreement", "shadow_share")


@dataclass(frozen=True)
class LocalSpec:
    """The local target: the scoring server as a process on this machine.

    :param host: the address the server binds (loopback only by default).
    :param port: its port (0: a free port is picked).
    :param url: connect to a server that already runs here instead of starting one.
    :param startup_timeout: seconds to wait for ``/health`` after start.
    :param capture_dir: request-capture folder handed to the server (``None``: no capture).
    :param capture_sample_rate: share of requests captured.
    :param work_dir: where model folders and the server config are written (default:
        ``$MLOPS_HOME/rollout/<model>``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    url: str | None = None
    startup_timeout: float = 60.0
    capture_dir: str | None = None
    capture_sample_rate: float = 0.0
    work_dir: str | None = None


@dataclass(frozen=True)
class KubernetesSpec:
    """The Kubernetes target: a Deployment and a Service per version, one HTTPRoute.

    :param namespace: where everything is created.
    :param api_url: the API server URL (default: kubeconfig or in-cluster settings).
    :param kubeconfig: kubeconfig path (default ``~/.kube/config``).
    :param context: kubeconfig context.
    :param in_cluster: use the pod's service account.
    :param verify_ssl: verify the API server's certificate.
    :param gateway: ``{"name", "namespace", "section_name"}`` of the parent Gateway.
    :param hostnames: hostnames of the HTTPRoute.
    :param image_registry: registry prefix for image tags.
    :param replicas: replicas per version.
    :param port: the container port.
    :param metrics_url: per-version ``/metrics`` URL template; ``{service}``, ``{namespace}``,
        ``{port}``, ``{version}`` are filled in.
    :param resources: default requests/limits when the version has no profiling figures.
    :param ready_timeout: seconds to wait for a canary Deployment to become available.
    :param image_pull_policy: the container's pull policy.
    """

    namespace: str = "default"
    api_url: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    verify_ssl: bool = True
    gateway: dict[str, Any] = field(default_factory=lambda: {"name": "mlops-gateway"})
    hostnames: tuple[str, ...] = ()
    image_registry: str | None = None
    replicas: int = 1
    port: int = 8080
    metrics_url: str = "http://{service}.{namespace}.svc.cluster.local:{port}/metrics"
    resources: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
    )
    ready_timeout: float = 300.0
    image_pull_policy: str = "IfNotPresent"


@dataclass(frozen=True)
class RolloutPolicy:
    """How a new version takes traffic and what it must show at each step.

    :param target: ``local`` or ``kubernetes``.
    :param steps: canary traffic percentages, increasing, ending at 100.
    :param bake_seconds: how long each step runs before its analysis.
    :param min_requests: fewest canary requests an analysis needs to judge.
    :param analysis_timeout_seconds: how long a step may wait for ``min_requests`` beyond its
        bake time before it fails for lack of traffic (default: one more bake time).
    :param max_error_rate: largest share of canary requests answered with a 5xx; also the
        largest allowed excess of the canary's 4xx share over the baseline's.
    :param max_p99_ms: largest canary p99 latency (ms) over the step.
    :param min_agreement: smallest share of mirrored requests where the canary's label equals
        the champion's.
    :param require_agreement: fail when agreement could not be measured (no mirrored traffic).
    :param shadow_share: share of traffic mirrored for the agreement check.
    :param promote_alias: the alias moved to the new version after the last step.
    :param local: local target options.
    :param kubernetes: Kubernetes target options.
    """

    target: str = "local"
    steps: tuple[int, ...] = (10, 25, 50, 100)
    bake_seconds: float = 60.0
    min_requests: int = 100
    analysis_timeout_seconds: float | None = None
    max_error_rate: float = 0.01
    max_p99_ms: float = 50.0
    min_agreement: float = 0.95
    require_agreement: bool = False
    shadow_share: float = 0.2
    promote_alias: str = "champion"
    local: LocalSpec = field(default_factory=LocalSpec)
    kubernetes: KubernetesSpec = field(default_factory=KubernetesSpec)

    @property
    def wait_limit(self) -> float:
        """Seconds a step may wait for enough traffic after its bake time."""
        extra = self.analysis_timeout_seconds
        return self.bake_seconds if extra is None else extra

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "rollout") -> RolloutPolicy:
        """Check and build a policy; a :class:`ConfigError` names the key and the value."""
        raw = dict(raw or {})
        local = build_section(LocalSpec, raw.pop("local", None), f"{source}.local")
        kube_raw = dict(raw.pop("kubernetes", None) or {})
        if "hostnames" in kube_raw:
            kube_raw["hostnames"] = tuple(kube_raw["hostnames"] or ())
        kubernetes = build_section(KubernetesSpec, kube_raw, f"{source}.kubernetes")
        if "steps" in raw:
            raw["steps"] = tuple(raw["steps"] or ())
        for name in _FLOATS:
            if isinstance(raw.get(name), int | float) and not isinstance(raw[name], bool):
                raw[name] = float(raw[name])
        policy = build_section(cls, raw, source)
        policy = replace(policy, local=local, kubernetes=kubernetes)
        policy.check(source)
        return policy

    def check(self, source: str = "rollout") -> None:
        """Raise :class:`ConfigError` for a value that cannot work."""
        if self.target not in TARGETS:
            raise ConfigError(
                f"{source}.target must be one of {list(TARGETS)}, got {self.target!r}"
            )
        steps = self.steps
        if not steps or any(not isinstance(s, int) or not 0 < s <= 100 for s in steps):
            raise ConfigError(f"{source}.steps must be whole percentages in 1..100, got {steps}")
        if list(steps) != sorted(set(steps)) or steps[-1] != 100:
            raise ConfigError(f"{source}.steps must increase strictly and end at 100, got {steps}")
        for name in ("bake_seconds", "max_p99_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_error_rate", "min_agreement", "shadow_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{source}.{name} must be between 0 and 1, got {value}")
        if self.min_requests < 1:
            raise ConfigError(f"{source}.min_requests must be >= 1, got {self.min_requests}")
        if self.local.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(
                f"{source}.local.host must be a loopback address, got {self.local.host!r}"
            )
        if not self.kubernetes.gateway.get("name"):
            raise ConfigError(f"{source}.kubernetes.gateway.name is required")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
