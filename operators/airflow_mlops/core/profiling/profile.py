"""Profile an ONNX model: size, load time, latency, throughput, peak memory; then size it.

:func:`profile_model` measures a local ONNX file on a sample of input rows;
:func:`profile_registered` does the same for a registered version and records the result on it
(JSON report and PNG chart as artifacts of the version's run under ``profile/``, key figures as
``mlops.profile.*`` version tags that the rollout reads to size Kubernetes deployments). The
sizing model lives in :mod:`airflow_mlops.core.profiling_report`.

Figures are wall-clock measurements on whatever machine runs the task: on a shared or
throttled machine they are noisy, which is why the report records the load average and the
core count next to them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.parse import ConfigError, check_keys
from airflow_mlops.core.profiling.report import Recommendation, recommend, write_chart
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

log = logging.getLogger(__name__)

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


def _session(path: str, threads: int) -> Any:
    from airflow_mlops.core.training.convert import load_session

    # As the scoring server runs its sessions (spinning threads): the figures size serving.
    return load_session(path, threads=threads, spinning=True)


def _percentile_ms(samples_ns: np.ndarray, q: float) -> float:
    return float(np.percentile(samples_ns, q) / 1e6)


def _measure_latency(
    path: str, frame: pd.DataFrame, numeric: list[str], categorical: list[str], spec: ProfilingSpec
) -> np.ndarray:
    """Single-row requests as a server sees them: one record in, feed built, session run."""
    from airflow_mlops.core.training.convert import category_strings, float32_column

    session = _session(path, threads=1)
    records = frame.head(1000).to_dict("records")
    timings = np.empty(spec.latency_samples, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(spec.warmup + spec.latency_samples):
        record = records[i % len(records)]
        started = clock()
        # pd.NA (nullable dtypes) is the one missing marker numpy cannot cast; None is NaN.
        feed = {
            name: float32_column([None if record[name] is pd.NA else record[name]]).reshape(1, 1)
            for name in numeric
        }
        for name in categorical:
            feed[name] = category_strings([record[name]]).reshape(1, 1)
        session.run(None, feed)
        elapsed = clock() - started
        if i >= spec.warmup:
            timings[i - spec.warmup] = elapsed
    return timings


def _batch_feeds(base_feed: dict[str, np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
    """Feeds of ``batch`` rows, each a different slice of the sample where it is big enough.

    Scoring the very same few rows again and again lets the CPU's branch predictor learn their
    paths through the trees: measured 2.2x too fast at 32 rows for the demo model.
    """
    rows = len(next(iter(base_feed.values())))
    if batch >= rows:
        index = np.arange(batch) % rows
        return [{name: values[index] for name, values in base_feed.items()}]
    starts = range(0, rows - batch + 1, batch)[:_MAX_FEEDS]
    # Slices of [N, 1] arrays are contiguous views: no copy, nothing for ONNX Runtime to fix.
    return [{name: values[s : s + batch] for name, values in base_feed.items()} for s in starts]


_MAX_FEEDS = 1024


def _measure_throughput(
    path: str, base_feed: dict[str, np.ndarray], spec: ProfilingSpec
) -> tuple[ThroughputPoint, ...]:
    """Rows/s for each batch size and thread count; thread counts interleave per batch size so
    that a burst of load from elsewhere hits both, not one."""
    sessions = {threads: _session(path, threads) for threads in spec.thread_counts()}
    points = []
    for batch in spec.batch_sizes:
        feeds = _batch_feeds(base_feed, batch)
        for threads, session in sessions.items():
            session.run(None, feeds[0])
            rates: list[float] = []
            deadline = time.perf_counter() + spec.throughput_seconds
            while len(rates) < 3 or (time.perf_counter() < deadline and len(rates) < 100_000):
                feed = feeds[len(rates) % len(feeds)]
                started = time.perf_counter_ns()
                session.run(None, feed)
                rates.append(batch * 1e9 / max(time.perf_counter_ns() - started, 1))
            points.append(ThroughputPoint(batch, threads, float(np.median(rates)), len(rates)))
    return tuple(points)


# Run in a fresh interpreter so the figure is a scoring process's own: numpy + ONNX Runtime +
# the session + one batch, not the test runner's or the Airflow worker's heap.
_RSS_SCRIPT = r"""
import sys
import numpy as np
import onnxruntime as ort

def high_water():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024

model, feed_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
baseline = high_water()
with np.load(feed_path) as data:
    feed = {k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in data.items()}
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
for _ in range(3):
    session.run(None, feed)
print(baseline, high_water())
"""


def _measure_rss(path: str, feed: dict[str, np.ndarray], threads: int) -> tuple[float, float]:
    """``(peak, baseline)`` resident memory in MiB of a child process scoring ``feed``."""
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as tmp:
        feed_path = os.path.join(tmp, "feed.npz")
        # Strings as fixed-width unicode: np.savez would otherwise need pickle for object arrays.
        arrays: dict[str, Any] = {
            k: (v.astype(str) if v.dtype == object else v) for k, v in feed.items()
        }
        np.savez(feed_path, **arrays)
        proc = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, path, feed_path, str(threads)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if proc.returncode != 0:
        raise ProfilingError(
            f"{path}: peak-memory probe failed (exit {proc.returncode}): {proc.stderr[-1000:]}"
        )
    baseline, peak = (int(x) for x in proc.stdout.split()[-2:])
    return peak / 2**20, baseline / 2**20


def profile_model(
    onnx_path: str,
    sample_frame: pd.DataFrame,
    numeric: list[str] | tuple[str, ...],
    categorical: list[str] | tuple[str, ...],
    spec: ProfilingSpec | None = None,
    model: str | None = None,
) -> ProfileReport:
    """Measure a local ONNX model on ``sample_frame`` rows and recommend resources.

    :param onnx_path: local path of the ``.onnx`` file (input contract of ``core.onnx``).
    :param sample_frame: representative input rows (at least one; repeated to fill batches).
    :param numeric: numeric feature columns.
    :param categorical: categorical feature columns.
    :param spec: what to measure and the SLO (default: :class:`ProfilingSpec` defaults).
    :param model: how the report names the model (default: the file name).
    :raises ProfilingError: no sample rows, a missing feature column, or a model that does not
        take the feed.
    """
    from airflow_mlops.core.training.convert import onnx_feed

    spec = spec or ProfilingSpec()
    name = model or os.path.basename(onnx_path)
    started = time.perf_counter()
    numeric, categorical = list(numeric), list(categorical)
    if len(sample_frame) == 0:
        raise ProfilingError(f"cannot profile {name}: the sample frame has no rows")
    absent = [c for c in (*numeric, *categorical) if c not in sample_frame.columns]
    if absent:
        raise ProfilingError(f"cannot profile {name}: sample lacks feature column(s) {absent}")
    if len(sample_frame) > spec.sample_rows:
        sample_frame = sample_frame.sample(n=spec.sample_rows, random_state=0)
    sample_frame = sample_frame.reset_index(drop=True)
    load_avg = os.getloadavg()

    loads = []
    for _ in range(spec.load_repeats):
        t0 = time.perf_counter_ns()
        session = _session(onnx_path, threads=1)
        loads.append(time.perf_counter_ns() - t0)
    base_feed = onnx_feed(sample_frame, numeric, categorical)
    try:
        session.run(None, {k: v[:1] for k, v in base_feed.items()})
    except Exception as exc:
        raise ProfilingError(f"cannot profile {name}: the model rejects the sample: {exc}") from exc

    timings = _measure_latency(onnx_path, sample_frame, numeric, categorical, spec)
    throughput = _measure_throughput(onnx_path, base_feed, spec)
    largest = max(spec.batch_sizes)
    index = np.arange(largest) % len(sample_frame)
    peak, baseline = _measure_rss(
        onnx_path, {k: v[index] for k, v in base_feed.items()}, max(spec.thread_counts())
    )
    measurements = Measurements(
        size_bytes=os.path.getsize(onnx_path),
        load_ms=float(np.median(loads) / 1e6),
        p50_ms=_percentile_ms(timings, 50),
        p95_ms=_percentile_ms(timings, 95),
        p99_ms=_percentile_ms(timings, 99),
        latency_samples=len(timings),
        throughput=throughput,
        peak_rss_mb=peak,
        baseline_rss_mb=baseline,
        rss_batch_size=largest,
    )
    import onnxruntime

    environment = {
        "cores": available_cores(),
        "load_average_1m_before": round(load_avg[0], 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "onnxruntime": onnxruntime.__version__,
        "python": sys.version.split()[0],
        "sample_rows": len(sample_frame),
        "note": "wall-clock figures; noisy on a shared machine (see load averages)",
    }
    return ProfileReport(
        model=name,
        spec=spec,
        measurements=measurements,
        recommendation=recommend(measurements, spec),
        environment=environment,
        seconds=time.perf_counter() - started,
    )


def onnx_features(onnx_path: str) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` input names of a model, from its ONNX input types."""
    session = _session(onnx_path, threads=1)
    numeric = [i.name for i in session.get_inputs() if i.type != "tensor(string)"]
    categorical = [i.name for i in session.get_inputs() if i.type == "tensor(string)"]
    return numeric, categorical


def parse_model_ref(ref: Any, default_name: str) -> tuple[str, str]:
    """``(name, version or alias)`` from what an operator is given.

    Accepts a ``RegisterModelOperator`` result (``{"name", "version"}``), ``models:/name/3``,
    ``models:/name@alias``, or a bare version / alias of ``default_name``.
    """
    if isinstance(ref, dict):
        if not ref.get("name") or not ref.get("version"):
            raise ProfilingError(f"model reference {ref!r} lacks 'name' or 'version'")
        return str(ref["name"]), str(ref["version"])
    text = str(ref or "").strip()
    if text.startswith("models:/"):
        rest = text.removeprefix("models:/")
        if "@" in rest:
            name, _, alias = rest.partition("@")
            return name, alias
        name, _, version = rest.rpartition("/")
        if name and version:
            return name, version
        raise ProfilingError(f"model reference {text!r} is not models:/<name>/<version|@alias>")
    if not text:
        raise ProfilingError("empty model reference")
    return default_name, text.removeprefix("@")


def _sample(tracking: TrackingConfig, config: ModelConfig, tags: dict[str, str]) -> pd.DataFrame:
    """The version's own reference sample if it has one, else the config's data."""
    from airflow_mlops.core.data.io import load_frame

    reference = tags.get("mlops.reference.uri")
    if reference:
        import mlflow

        with tracking.activate():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=reference, dst_path=tempfile.mkdtemp(prefix="mlops-profile-ref-")
            )
        return load_frame(local, format="parquet")
    return load_frame(config.data.uri, format=config.data.format)


def profile_registered(
    tracking: TrackingConfig, config: ModelConfig, name: str, version: str
) -> dict[str, Any]:
    """Profile a registered version and record the result on it.

    :param tracking: where MLflow is.
    :param config: the model config (its ``profiling`` section; its data when the version has
        no reference sample).
    :param name: registered model name.
    :param version: a version number or an alias.
    :returns: the key figures, the Kubernetes quantities, the artifact URIs and the SLO verdict
        (``passed``, ``slo_met``, ``message``: see :meth:`ProfileReport.gate`).
    """
    from airflow_mlops.core.registry import versions as registry

    spec = ProfilingSpec.from_dict(config.profiling, source=f"{config.name}: profiling")
    found = registry.get_version(tracking, name, version)
    if found is None:
        raise ProfilingError(f"cannot profile {name} {version}: no such version in the registry")
    onnx_path = registry.download_onnx(tracking, found.model_uri)
    numeric, categorical = onnx_features(onnx_path)
    frame = _sample(tracking, config, found.tags)
    report = profile_model(
        onnx_path, frame, numeric, categorical, spec, model=f"{name} v{found.version}"
    )
    out: dict[str, Any] = {
        "name": name,
        "version": found.version,
        "run_id": found.run_id,
        "version_url": found.version_url,
    }
    if found.run_id:
        out |= _log_report(tracking, report, found.run_id)
    tags = report.tags()
    if "report_uri" in out:
        tags[f"{TAG}report_uri"] = out["report_uri"]
    registry.set_version_tags(tracking, name, found.version, tags)
    rec = report.recommendation
    out.update(
        {key.removeprefix(TAG): value for key, value in tags.items()},
        threads=rec.threads,
        predicted_p99_ms=round(rec.predicted_p99_ms, 4),
        seconds=round(report.seconds, 2),
        gate=report.gate(),
    )
    out.update({k: out["gate"][k] for k in ("passed", "slo_met", "message")})
    log.info("%s v%s: %s", name, found.version, out["message"])
    return out


def _log_report(tracking: TrackingConfig, report: ProfileReport, run_id: str) -> dict[str, Any]:
    """Log ``profile/profile.json`` and ``profile/profile.png`` on the version's run."""
    client = tracking.client()
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as tmp:
        with open(os.path.join(tmp, "profile.json"), "w") as fh:
            json.dump(report.to_dict(), fh, indent=2, default=str)
        write_chart(report, os.path.join(tmp, "profile.png"))
        client.log_artifacts(run_id, tmp, artifact_path="profile")
    out: dict[str, Any] = {
        "report_uri": f"runs:/{run_id}/profile/profile.json",
        "chart_uri": f"runs:/{run_id}/profile/profile.png",
    }
    base = tracking.ui_base
    if base:
        experiment = client.get_run(run_id).info.experiment_id
        out["report_url"] = (
            f"{base}/#/experiments/{experiment}/runs/{run_id}/artifactPath/profile/profile.png"
        )
    return out
