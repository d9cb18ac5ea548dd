"""The figures of a profile: the spec and SLO, the measurements, the recommendation, the report.

Plain frozen dataclasses shared by :mod:`.profile` (which measures) and :mod:`.report` (which
sizes and draws), so that neither imports the other's parent.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, check_keys
from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "TAG",
    "TAG_KEYS",
    "Measurements",
    "ProfileReport",
    "ProfilingError",
    "ProfilingSpec",
    "Recommendation",
    "SloSpec",
    "ThroughputPoint",
    "available_cores",
]

TAG = "mlops.profile."
# The tags the rollout reads (docs/profiling.md); keep these names stable.
TAG_KEYS = (
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "load_ms",
    "size_bytes",
    "peak_rss_mb",
    "max_rows_per_s",
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
    "batch_size",
    "slo_met",
)


class ProfilingError(MLOpsError, RuntimeError):
    """A profile that cannot be taken; the message names the model and the step."""


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class SloSpec:
    """The serving target a profile is judged against.

    :param p99_ms: largest acceptable single-row p99 latency at ``requests_per_second``.
    :param requests_per_second: the rate one deployment (all its replicas) must sustain.
    :param min_throughput_rows_per_s: optional floor on the best batch throughput.
    """

    p99_ms: float = 5.0
    requests_per_second: float = 200.0
    min_throughput_rows_per_s: float | None = None


@dataclass(frozen=True)
class ProfilingSpec:
    """What to measure and the SLO (the config's ``profiling`` section).

    :param batch_sizes: batch sizes whose throughput is measured.
    :param threads: intra-op thread counts to measure throughput with (capped at the cores).
    :param latency_samples: single-row requests timed after ``warmup``.
    :param warmup: single-row requests run and discarded first.
    :param load_repeats: session loads timed (the median is reported).
    :param throughput_seconds: time spent per (batch size, threads) cell, at least 3 runs.
    :param sample_rows: rows of the reference sample fed to the model (repeated to fill large
        batches).
    :param utilisation: target busy share of the requested CPU at the SLO rate.
    :param memory_headroom: memory request = peak RSS times this.
    :param slo: the serving target.
    :param gate: whether a missed SLO blocks promotion.
    """

    batch_sizes: tuple[int, ...] = (1, 32, 1024, 65536)
    threads: tuple[int, ...] = (1, 2)
    latency_samples: int = 2000
    warmup: int = 200
    load_repeats: int = 5
    throughput_seconds: float = 0.4
    sample_rows: int = 4096
    utilisation: float = 0.6
    memory_headroom: float = 1.5
    slo: SloSpec = field(default_factory=SloSpec)
    gate: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "profiling") -> ProfilingSpec:
        """Parse and check a ``profiling`` config section; an empty one gives the defaults."""
        raw = {} if raw is None else raw
        check_keys(raw, cls, source)
        raw = dict(raw)
        slo_raw = raw.pop("slo", None) or {}
        check_keys(slo_raw, SloSpec, f"{source}.slo")
        slo = SloSpec(
            p99_ms=_positive(slo_raw.get("p99_ms", 5.0), f"{source}.slo.p99_ms"),
            requests_per_second=_positive(
                slo_raw.get("requests_per_second", 200.0), f"{source}.slo.requests_per_second"
            ),
            min_throughput_rows_per_s=(
                None
                if slo_raw.get("min_throughput_rows_per_s") is None
                else _positive(
                    slo_raw["min_throughput_rows_per_s"], f"{source}.slo.min_throughput_rows_per_s"
                )
            ),
        )
        defaults = cls()
        out: dict[str, Any] = {"slo": slo}
        for key in ("batch_sizes", "threads"):
            out[key] = _int_list(raw.get(key, getattr(defaults, key)), f"{source}.{key}")
        for key in ("latency_samples", "load_repeats", "sample_rows"):
            out[key] = _int(raw.get(key, getattr(defaults, key)), f"{source}.{key}", minimum=1)
        out["warmup"] = _int(raw.get("warmup", defaults.warmup), f"{source}.warmup", minimum=0)
        out["throughput_seconds"] = _positive(
            raw.get("throughput_seconds", defaults.throughput_seconds),
            f"{source}.throughput_seconds",
        )
        out["utilisation"] = _positive(
            raw.get("utilisation", defaults.utilisation), f"{source}.utilisation"
        )
        if out["utilisation"] >= 1.0:
            raise ConfigError(f"{source}.utilisation must be below 1, got {out['utilisation']}")
        out["memory_headroom"] = _positive(
            raw.get("memory_headroom", defaults.memory_headroom), f"{source}.memory_headroom"
        )
        if out["memory_headroom"] < 1.0:
            raise ConfigError(
                f"{source}.memory_headroom must be at least 1, got {out['memory_headroom']}"
            )
        gate = raw.get("gate", defaults.gate)
        if not isinstance(gate, bool):
            raise ConfigError(f"{source}.gate must be true or false, got {gate!r}")
        out["gate"] = gate
        return cls(**out)

    def thread_counts(self) -> tuple[int, ...]:
        """``threads`` capped at the available cores, without duplicates, in order."""
        cores = available_cores()
        return tuple(dict.fromkeys(min(t, cores) for t in self.threads))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _positive(value: Any, where: str) -> float:
    number = _number(value, where)
    if not number > 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return number


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _int_list(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{where} must be a non-empty list of positive integers, got {value!r}")
    return tuple(dict.fromkeys(_int(v, f"{where}[{i}]", minimum=1) for i, v in enumerate(value)))


@dataclass(frozen=True)
class ThroughputPoint:
    """Rows per second at one batch size and thread count (median over ``runs`` runs)."""

    batch_size: int
    threads: int
    rows_per_s: float
    runs: int


@dataclass(frozen=True)
class Measurements:
    """What :func:`profile_model` measured.

    :param size_bytes: the ONNX file's size.
    :param load_ms: median session load time.
    :param p50_ms: single-row latency (feed building + run, one thread), 50th percentile.
    :param p95_ms: 95th percentile.
    :param p99_ms: 99th percentile.
    :param latency_samples: requests timed.
    :param throughput: one point per batch size and thread count.
    :param peak_rss_mb: peak resident memory (MiB) of a separate process that imports ONNX
        Runtime, loads the model and scores the largest batch.
    :param baseline_rss_mb: that process's resident memory before the model was loaded.
    :param rss_batch_size: the batch size scored for ``peak_rss_mb``.
    """

    size_bytes: int
    load_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    latency_samples: int
    throughput: tuple[ThroughputPoint, ...]
    peak_rss_mb: float
    baseline_rss_mb: float
    rss_batch_size: int


@dataclass(frozen=True)
class Recommendation:
    """Kubernetes resources and batch settings derived from one profile.

    :param cores_needed: cores kept busy at the target rate, before rounding.
    :param cpu_request_milli: CPU request in millicores.
    :param cpu_limit_milli: CPU limit in millicores.
    :param memory_request_mib: memory request in MiB.
    :param memory_limit_mib: memory limit in MiB.
    :param capacity_rps_per_core: requests per second one busy core answers (``1000/p50``).
    :param utilisation_at_target: busy share of the requested cores at the target rate.
    :param predicted_p99_ms: p99 expected at the target rate on the requested cores.
    :param batch_size: recommended batch size for batch scoring.
    :param threads: thread count that reached the best throughput.
    :param batch_rows_per_s: throughput measured at ``batch_size`` and ``threads``.
    :param max_rows_per_s: best measured throughput over every batch size and thread count.
    :param slo_met: the predicted p99 and the throughput floor are within the SLO.
    :param reasons: one line per SLO check, with figure and threshold.
    """

    cores_needed: float
    cpu_request_milli: int
    cpu_limit_milli: int
    memory_request_mib: int
    memory_limit_mib: int
    capacity_rps_per_core: float
    utilisation_at_target: float
    predicted_p99_ms: float
    batch_size: int
    threads: int
    batch_rows_per_s: float
    max_rows_per_s: float
    slo_met: bool
    reasons: tuple[str, ...]

    @property
    def cpu_request(self) -> str:
        """The CPU request as a Kubernetes quantity (``300m``)."""
        return f"{self.cpu_request_milli}m"

    @property
    def cpu_limit(self) -> str:
        """The CPU limit as a Kubernetes quantity."""
        return f"{self.cpu_limit_milli}m"

    @property
    def memory_request(self) -> str:
        """The memory request as a Kubernetes quantity (``192Mi``)."""
        return f"{self.memory_request_mib}Mi"

    @property
    def memory_limit(self) -> str:
        """The memory limit as a Kubernetes quantity."""
        return f"{self.memory_limit_mib}Mi"

    def to_dict(self) -> dict[str, Any]:
        """Every figure, plus the Kubernetes quantities."""
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out.update(
            cpu_request=self.cpu_request,
            cpu_limit=self.cpu_limit,
            memory_request=self.memory_request,
            memory_limit=self.memory_limit,
        )
        return out


@dataclass(frozen=True)
class ProfileReport:
    """A profile: the spec, the measurements, the recommendation, and where it was measured."""

    model: str
    spec: ProfilingSpec
    measurements: Measurements
    recommendation: Recommendation
    environment: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's content."""
        return {
            "model": self.model,
            "spec": asdict(self.spec),
            "measurements": asdict(self.measurements),
            "recommendation": self.recommendation.to_dict(),
            "environment": self.environment,
            "seconds": round(self.seconds, 3),
        }

    def tags(self) -> dict[str, str]:
        """The ``mlops.profile.*`` version tags (names listed in :data:`TAG_KEYS`)."""
        m, rec = self.measurements, self.recommendation
        values: dict[str, Any] = {
            "p50_ms": round(m.p50_ms, 4),
            "p95_ms": round(m.p95_ms, 4),
            "p99_ms": round(m.p99_ms, 4),
            "load_ms": round(m.load_ms, 3),
            "size_bytes": m.size_bytes,
            "peak_rss_mb": round(m.peak_rss_mb, 1),
            "max_rows_per_s": round(rec.max_rows_per_s),
            "cpu_request": rec.cpu_request,
            "cpu_limit": rec.cpu_limit,
            "memory_request": rec.memory_request,
            "memory_limit": rec.memory_limit,
            "batch_size": rec.batch_size,
            "slo_met": "true" if rec.slo_met else "false",
        }
        return {f"{TAG}{key}": str(values[key]) for key in TAG_KEYS}

    def gate(self) -> dict[str, Any]:
        """The SLO verdict for promotion: ``passed`` is False only when the SLO was missed
        and ``spec.gate`` makes it binding."""
        rec, slo = self.recommendation, self.spec.slo
        detail = "; ".join(rec.reasons)
        if rec.slo_met:
            message = f"profiling SLO met: {detail}"
        elif self.spec.gate:
            message = f"profiling SLO gate failed: {detail}"
        else:
            message = (
                f"profiling SLO not met (profiling.gate is off, promotion not blocked): {detail}"
            )
        return {
            "passed": rec.slo_met or not self.spec.gate,
            "slo_met": rec.slo_met,
            "enforced": self.spec.gate,
            "message": message,
            "p50_ms": self.measurements.p50_ms,
            "p99_ms": self.measurements.p99_ms,
            "predicted_p99_ms": rec.predicted_p99_ms,
            "target_p99_ms": slo.p99_ms,
            "target_rps": slo.requests_per_second,
            "max_rows_per_s": rec.max_rows_per_s,
            "min_throughput_rows_per_s": slo.min_throughput_rows_per_s,
        }
