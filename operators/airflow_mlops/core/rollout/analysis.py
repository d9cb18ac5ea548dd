"""Judge a canary from two ``/metrics`` snapshots: requests, error rates, p99, agreement.

The scoring server's counters are cumulative, so every figure is a difference between the
snapshot taken when a step started and the one taken after its bake time. The p99 comes from
the latency histogram's bucket deltas with the same linear interpolation as Prometheus'
``histogram_quantile``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from airflow_mlops.core.rollout.policy import RolloutPolicy

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Labels = tuple[tuple[str, str], ...]


def _unescape(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], value)


def parse_prometheus(text: str) -> dict[tuple[str, Labels], float]:
    """Parse the Prometheus text exposition format into ``{(name, labels): value}``.

    Comments and ``# TYPE``/``# HELP`` lines are skipped; labels are sorted name/value pairs.
    A malformed line raises ``ValueError`` naming it.
    """
    samples: dict[tuple[str, Labels], float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise ValueError(f"metrics line {number} is not a Prometheus sample: {line[:120]!r}")
        labels_text = match.group("labels") or ""
        labels = tuple(sorted((k, _unescape(v)) for k, v in _LABEL.findall(labels_text)))
        samples[(match.group("name"), labels)] = float(match.group("value"))
    return samples


@dataclass(frozen=True)
class Snapshot:
    """Parsed samples of one or more ``/metrics`` pages (summed when several endpoints)."""

    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    @classmethod
    def from_texts(cls, *texts: str) -> Snapshot:
        total: dict[tuple[str, Labels], float] = defaultdict(float)
        for text in texts:
            for key, value in parse_prometheus(text).items():
                total[key] += value
        return cls(dict(total))

    def select(self, name: str, **match: str) -> list[tuple[dict[str, str], float]]:
        """Samples of ``name`` whose labels include every ``match`` item."""
        out = []
        for (sample, labels), value in self.samples.items():
            if sample != name:
                continue
            as_dict = dict(labels)
            if all(as_dict.get(k) == v for k, v in match.items()):
                out.append((as_dict, value))
        return out

    def total(self, name: str, **match: str) -> float:
        return sum(value for _, value in self.select(name, **match))


@dataclass(frozen=True)
class VersionFigures:
    """What one version did between two snapshots."""

    version: str
    requests: int
    server_errors: int
    client_errors: int
    p99_ms: float | None
    shadow_requests: int = 0
    agreement: float | None = None
    agreement_samples: int = 0

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    @property
    def client_error_rate(self) -> float:
        return self.client_errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "error_rate": self.error_rate,
            "client_error_rate": self.client_error_rate,
        }


@dataclass(frozen=True)
class Check:
    """One threshold check: the figure, the threshold, the verdict and a sentence saying so."""

    name: str
    passed: bool
    figure: float | None
    threshold: float
    message: str


@dataclass(frozen=True)
class Analysis:
    """The verdict of one step: ``pass``, ``fail`` or ``wait`` (not enough canary traffic)."""

    verdict: str
    canary: VersionFigures
    baseline: VersionFigures | None
    checks: tuple[Check, ...]
    message: str

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "message": self.message,
            "canary": self.canary.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "checks": [asdict(c) for c in self.checks],
        }


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative ``(le, count)`` buckets, as Prometheus computes it."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                # Above the largest finite bucket: the best bound there is.
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def _delta(after: Snapshot, before: Snapshot, name: str, **match: str) -> float:
    return max(0.0, after.total(name, **match) - before.total(name, **match))


def figures(before: Snapshot, after: Snapshot, model: str, version: str) -> VersionFigures:
    """Per-version deltas of the scoring server's counters between two snapshots."""
    ids = {"model": model, "version": str(version)}
    requests = server = client = 0.0
    for labels, value in after.select("mlops_requests_total", **ids):
        key = tuple(sorted(labels.items()))
        done = value - before.samples.get(("mlops_requests_total", key), 0.0)
        requests += done
        code = labels.get("code", "200")
        if code.startswith("5"):
            server += done
        elif code.startswith("4"):
            client += done
    buckets: dict[float, float] = defaultdict(float)
    for labels, value in after.select("mlops_request_latency_seconds_bucket", **ids):
        key = tuple(sorted(labels.items()))
        prior = before.samples.get(("mlops_request_latency_seconds_bucket", key), 0.0)
        buckets[float(labels["le"])] += value - prior
    p99 = histogram_quantile(0.99, list(buckets.items()))
    agree = _delta(after, before, "mlops_shadow_agreement_total", agree="true", **ids)
    disagree = _delta(after, before, "mlops_shadow_agreement_total", agree="false", **ids)
    samples = agree + disagree
    return VersionFigures(
        version=str(version),
        requests=round(requests),
        server_errors=round(server),
        client_errors=round(client),
        p99_ms=None if p99 is None else round(p99 * 1000.0, 3),
        shadow_requests=round(_delta(after, before, "mlops_shadow_requests_total", **ids)),
        agreement=round(agree / samples, 4) if samples else None,
        agreement_samples=round(samples),
    )


def analyze(
    before: Snapshot,
    after: Snapshot,
    *,
    model: str,
    canary: str,
    baseline: str | None,
    policy: RolloutPolicy,
    shadow: str | None = None,
) -> Analysis:
    """Judge the canary over one step against the policy's thresholds.

    :param before: the snapshot taken when the step's weights were set.
    :param after: the snapshot taken after the bake time.
    :param model: the model name (the metrics' ``model`` label).
    :param canary: the new version.
    :param baseline: the version it replaces (``None`` on a first deployment).
    :param policy: thresholds and minimum traffic.
    :param shadow: the version mirrored traffic went to during the step (the canary while it
        has less than all traffic, the baseline at 100 %); its agreement figures are used.
    """
    can = figures(before, after, model, canary)
    base = figures(before, after, model, baseline) if baseline else None
    if can.requests < policy.min_requests:
        message = (
            f"v{canary} answered {can.requests} requests, fewer than min_requests "
            f"{policy.min_requests}: not enough traffic to judge yet"
        )
        return Analysis("wait", can, base, (), message)
    checks = _error_checks(can, base, policy)
    checks.append(_latency_check(can, policy))
    mirrored = figures(before, after, model, shadow) if shadow else None
    if mirrored is not None and mirrored.agreement is not None:
        checks.append(_agreement_check(mirrored, policy))
        # The canary's own row shows the agreement measured on its mirrored traffic.
        can = replace(
            can, agreement=mirrored.agreement, agreement_samples=mirrored.agreement_samples
        )
    elif baseline is not None:
        checks.append(_agreement_unmeasured(policy))
    failed = [c for c in checks if not c.passed]
    if failed:
        message = f"v{canary} failed: " + "; ".join(c.message for c in failed)
        return Analysis("fail", can, base, tuple(checks), message)
    return Analysis(
        "pass",
        can,
        base,
        tuple(checks),
        f"v{canary} passed: " + "; ".join(c.message for c in checks),
    )


def _error_checks(
    can: VersionFigures, base: VersionFigures | None, policy: RolloutPolicy
) -> list[Check]:
    """The canary's 5xx rate, and its 4xx share above the baseline's when there is one."""
    checks = [
        Check(
            "error_rate",
            can.error_rate <= policy.max_error_rate,
            can.error_rate,
            policy.max_error_rate,
            f"error rate {can.error_rate:.2%} ({can.server_errors}/{can.requests} 5xx) vs max "
            f"{policy.max_error_rate:.2%}",
        )
    ]
    if base is not None and base.requests:
        excess = can.client_error_rate - base.client_error_rate
        checks.append(
            Check(
                "client_error_excess",
                excess <= policy.max_error_rate,
                round(excess, 6),
                policy.max_error_rate,
                f"4xx share {can.client_error_rate:.2%} vs baseline v{base.version} "
                f"{base.client_error_rate:.2%} (excess allowed {policy.max_error_rate:.2%})",
            )
        )
    return checks


def _latency_check(can: VersionFigures, policy: RolloutPolicy) -> Check:
    p99 = can.p99_ms
    return Check(
        "p99_ms",
        p99 is not None and p99 <= policy.max_p99_ms,
        p99,
        policy.max_p99_ms,
        f"p99 {p99} ms vs max {policy.max_p99_ms} ms",
    )


def _agreement_check(mirrored: VersionFigures, policy: RolloutPolicy) -> Check:
    assert mirrored.agreement is not None
    return Check(
        "agreement",
        mirrored.agreement >= policy.min_agreement,
        mirrored.agreement,
        policy.min_agreement,
        f"agreement {mirrored.agreement:.2%} on {mirrored.agreement_samples} mirrored "
        f"rows (v{mirrored.version}) vs min {policy.min_agreement:.2%}",
    )


def _agreement_unmeasured(policy: RolloutPolicy) -> Check:
    return Check(
        "agreement",
        not policy.require_agreement,
        None,
        policy.min_agreement,
        "agreement not measured (no mirrored traffic)"
        + ("; the policy requires it" if policy.require_agreement else ""),
    )
