"""From profile measurements to resource recommendations, a chart and an SLO verdict.

The sizing model (documented in docs/profiling.md, tested against the report's own figures):

- A serving worker runs a single-threaded ONNX Runtime session per request, so one busy core
  answers ``1000 / p50_ms`` requests per second (its *capacity*).
- CPU request = ``target_rps * p50_ms / 1000 / utilisation`` cores, rounded up to 100m
  (minimum 100m): the target rate keeps the requested cores ``utilisation`` busy (0.6 by
  default), leaving room for bursts and for the web server around the model.
- CPU limit = twice the request, and never below one core: a single-threaded request that hits
  a CFS quota below one core is paused for the rest of the 100 ms period, which is a p99 of
  tens of milliseconds whatever the model.
- Predicted p99 at the target rate = measured p99 / (1 - u), u the utilisation of the requested
  cores at the target rate: the M/M/1 response-time factor, a pessimistic allowance for the
  queueing that a busy server adds to the no-load tail.
- The SLO is met when that predicted p99 is within ``slo.p99_ms`` (and, when set, the best
  measured batch throughput reaches ``slo.min_throughput_rows_per_s``).
- Memory request = peak RSS of a process that loads the model and scores the largest profiled
  batch, times ``memory_headroom`` (1.5), rounded up to 64 MiB; limit = twice the request.
- Batch size for batch scoring = the smallest profiled batch that reaches 95% of the best
  measured throughput, at the thread count that reached it.
"""

from __future__ import annotations

import math

from airflow_mlops.core.profiling.types import (
    Measurements,
    ProfileReport,
    ProfilingSpec,
    Recommendation,
)

# A batch within this share of the best throughput is "as fast" (measurement noise on a shared
# machine is larger than the remaining gain).
NEAR_BEST = 0.95
_MIB = 1024 * 1024
_MEMORY_STEP_MIB = 64
_CPU_STEP_MILLI = 100


def round_up(value: float, step: int) -> int:
    """``value`` rounded up to a multiple of ``step`` (at least one step)."""
    # The epsilon keeps 0.3000000004 cores at 300m rather than 400m.
    return max(step, math.ceil(value / step - 1e-9) * step)


def best_batch(measurements: Measurements) -> tuple[int, int, float, float]:
    """``(batch_size, threads, rows_per_s, max_rows_per_s)`` by the rule in the module doc."""
    points = measurements.throughput
    best = max(points, key=lambda p: p.rows_per_s)
    at_threads = sorted(
        (p for p in points if p.threads == best.threads), key=lambda p: p.batch_size
    )
    chosen = next(p for p in at_threads if p.rows_per_s >= NEAR_BEST * best.rows_per_s)
    return chosen.batch_size, best.threads, chosen.rows_per_s, best.rows_per_s


def recommend(measurements: Measurements, spec: ProfilingSpec) -> Recommendation:
    """Apply the sizing model (module docstring) to ``measurements`` for ``spec.slo``."""
    slo = spec.slo
    p50 = max(measurements.p50_ms, 1e-6)
    capacity = 1000.0 / p50
    cores_needed = slo.requests_per_second * p50 / 1000.0 / spec.utilisation
    cpu_request = round_up(cores_needed * 1000.0, _CPU_STEP_MILLI)
    cpu_limit = max(2 * cpu_request, 1000)
    utilisation = slo.requests_per_second / capacity / (cpu_request / 1000.0)
    predicted_p99 = measurements.p99_ms / (1.0 - utilisation)
    memory_request = round_up(measurements.peak_rss_mb * spec.memory_headroom, _MEMORY_STEP_MIB)
    batch_size, threads, batch_rate, max_rate = best_batch(measurements)

    latency_ok = predicted_p99 <= slo.p99_ms
    reasons = [
        f"predicted p99 {predicted_p99:.3g} ms at {slo.requests_per_second:g} req/s on "
        f"{cpu_request}m (measured p99 {measurements.p99_ms:.3g} ms, utilisation "
        f"{utilisation:.2f}) {'within' if latency_ok else 'exceeds'} target {slo.p99_ms:g} ms"
    ]
    throughput_ok = True
    if slo.min_throughput_rows_per_s is not None:
        throughput_ok = max_rate >= slo.min_throughput_rows_per_s
        reasons.append(
            f"best throughput {max_rate:,.0f} rows/s "
            f"{'reaches' if throughput_ok else 'is below'} floor "
            f"{slo.min_throughput_rows_per_s:,.0f} rows/s"
        )
    return Recommendation(
        cores_needed=cores_needed,
        cpu_request_milli=cpu_request,
        cpu_limit_milli=cpu_limit,
        memory_request_mib=memory_request,
        memory_limit_mib=2 * memory_request,
        capacity_rps_per_core=capacity,
        utilisation_at_target=utilisation,
        predicted_p99_ms=predicted_p99,
        batch_size=batch_size,
        threads=threads,
        batch_rows_per_s=batch_rate,
        max_rows_per_s=max_rate,
        slo_met=latency_ok and throughput_ok,
        reasons=tuple(reasons),
    )


def write_chart(report: ProfileReport, path: str) -> str:
    """A PNG: single-row latency percentiles (left), throughput against batch size per thread
    count (right, log-log), with the recommended batch marked. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; also keeps pyplot from picking a GUI backend
    import matplotlib.pyplot as plt

    m, rec, slo = report.measurements, report.recommendation, report.spec.slo
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    labels = ["p50", "p95", "p99", "predicted p99\nat target"]
    values = [m.p50_ms, m.p95_ms, m.p99_ms, rec.predicted_p99_ms]
    bars = left.bar(labels, values, color=["#4c72b0", "#4c72b0", "#4c72b0", "#dd8452"])
    left.bar_label(bars, fmt="%.3g")
    # A target far above the bars would flatten them to nothing: name it in the title instead.
    if slo.p99_ms <= 3 * max(values):
        left.axhline(slo.p99_ms, color="#c44e52", linestyle="--", label="target p99")
        left.legend(loc="upper left")
    left.set_ylabel("single-row latency (ms)")
    left.set_title(
        f"latency, {m.latency_samples} requests, 1 thread; target p99 {slo.p99_ms:g} ms "
        f"at {slo.requests_per_second:g} req/s"
    )

    for threads in sorted({p.threads for p in m.throughput}):
        points = sorted(
            (p for p in m.throughput if p.threads == threads), key=lambda p: p.batch_size
        )
        right.plot(
            [p.batch_size for p in points],
            [p.rows_per_s for p in points],
            marker="o",
            label=f"{threads} thread{'s' if threads > 1 else ''}",
        )
    right.scatter(
        [rec.batch_size],
        [rec.batch_rows_per_s],
        s=160,
        facecolors="none",
        edgecolors="#c44e52",
        label=f"recommended batch {rec.batch_size:,}",
    )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("batch size (rows)")
    right.set_ylabel("throughput (rows/s)")
    right.set_title("throughput by batch size and threads")
    right.grid(True, which="both", alpha=0.3)
    right.legend(loc="lower right")
    verdict = "SLO met" if rec.slo_met else "SLO not met"
    fig.suptitle(
        f"{report.model}: {verdict}; cpu {rec.cpu_request}/{rec.cpu_limit}, "
        f"memory {rec.memory_request}/{rec.memory_limit}, load {m.load_ms:.3g} ms, "
        f"size {m.size_bytes / 1024:,.0f} KiB"
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
