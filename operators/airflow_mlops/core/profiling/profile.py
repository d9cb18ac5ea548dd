"""Profile an ONNX model: size, load time, latency, throughput, peak memory; then size it.

:func:`profile_model` measures a local ONNX file on a sample of input rows;
:func:`profile_registered` does the same for a registered version and records the result on it
(JSON report and PNG chart as artifacts of the version's run under ``profile/``, key figures as
``mlops.profile.*`` version tags that the rollout reads to size Kubernetes deployments). The
sizing model lives in :mod:`airflow_mlops.core.profiling.report`; the figures'
dataclasses in :mod:`airflow_mlops.core.profiling.types`.

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
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.profiling.report import recommend, write_chart
from airflow_mlops.core.profiling.types import (
    TAG,
    Measurements,
    ProfileReport,
    ProfilingError,
    ProfilingSpec,
    ThroughputPoint,
    available_cores,
)
from airflow_mlops.core.registry.tracking import TrackingConfig

log = logging.getLogger(__name__)


def _session(path: str, threads: int) -> Any:
    from airflow_mlops.core.model.session import load_session

    # As the scoring server runs its sessions (spinning threads): the figures size serving.
    return load_session(path, threads=threads, spinning=True)


def _percentile_ms(samples_ns: np.ndarray, q: float) -> float:
    return float(np.percentile(samples_ns, q) / 1e6)


def _measure_latency(
    path: str, frame: pd.DataFrame, numeric: list[str], categorical: list[str], spec: ProfilingSpec
) -> np.ndarray:
    """Single-row requests as a server sees them: one record in, feed built, session run."""
    from airflow_mlops.core.model.feed import category_strings, float32_column

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
            # A fresh interpreter, so the figure is a scoring process's own (numpy, ONNX Runtime,
            # the session, one batch), not the test runner's or the Airflow worker's heap.
            [
                sys.executable,
                "-m",
                "airflow_mlops.core.profiling.probe",
                path,
                feed_path,
                str(threads),
            ],
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
    from airflow_mlops.core.model.feed import onnx_feed

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
    from airflow_mlops.core.model.feed import split_inputs

    return split_inputs(_session(onnx_path, threads=1).get_inputs())


def parse_model_ref(ref: Any, default_name: str) -> tuple[str, str]:
    """``(name, version or alias)`` from what an operator is given.

    Accepts a ``RegisterModelOperator`` result (``{"name", "version"}``), ``models:/name/3``,
    ``models:/name@alias``, or a bare version / alias of ``default_name``.
    """
    if isinstance(ref, dict):
        if not ref.get("name") or not ref.get("version"):
            raise ProfilingError(f"model reference {ref!r} lacks 'name' or 'version'")
        return str(ref["name"]), str(ref["version"])
    from airflow_mlops.core.model.reference import MODELS_SCHEME, ModelRefError, parse_models_uri

    text = str(ref or "").strip()
    if text.startswith(MODELS_SCHEME):
        try:
            return parse_models_uri(text)
        except ModelRefError as exc:
            raise ProfilingError(str(exc)) from exc
    if not text:
        raise ProfilingError("empty model reference")
    return default_name, text.removeprefix("@")


def _sample(tracking: TrackingConfig, config: ModelConfig, tags: dict[str, str]) -> pd.DataFrame:
    """The version's own reference sample if it has one, else the config's data."""
    from airflow_mlops.core.data.io import load_frame

    reference = tags.get("mlops.reference.uri")
    if reference:
        local = tracking.download(reference, tempfile.mkdtemp(prefix="mlops-profile-ref-"))
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
