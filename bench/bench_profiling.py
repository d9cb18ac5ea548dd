"""How long does a default profile take, and how stable are its figures and recommendations?

Trains the demo churn model (HistGradientBoosting, 200 iterations, 20 features) on 20k
generated rows, converts it to ONNX, then profiles it ``--repeats`` times with the default
``ProfilingSpec``. Prints each run's figures and recommendations, then the max/min ratio of
each figure across runs: on a shared 2-core machine that ratio is the noise a profile carries.

    .venv/bin/python bench/bench_profiling.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.profiling.profile import profile_model
    from airflow_mlops.core.profiling.types import ProfilingSpec
    from airflow_mlops.core.training.convert import convert_to_onnx
    from airflow_mlops.core.training.pipeline import build_pipeline
    from airflow_mlops.devstack.demo_data import generate

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    frame = generate(20_000, seed=0)
    config = replace(config, data=replace(config.data, uri="unused"))
    pipeline = build_pipeline(config).fit(frame, frame[config.data.target])
    path = os.path.join(tempfile.mkdtemp(prefix="bench-profile-"), "model.onnx")
    Path(path).write_bytes(convert_to_onnx(pipeline, config))
    spec = ProfilingSpec()
    print(f"model: demo_churn HGB, {os.path.getsize(path):,} bytes; cores {os.cpu_count()}")

    rows = []
    for i in range(args.repeats):
        started = time.perf_counter()
        report = profile_model(
            path, frame, config.data.numeric_features, config.data.categorical_features, spec
        )
        seconds = time.perf_counter() - started
        m, rec = report.measurements, report.recommendation
        row = {
            "seconds": seconds,
            "load_ms": m.load_ms,
            "p50_ms": m.p50_ms,
            "p99_ms": m.p99_ms,
            "max_rows_per_s": rec.max_rows_per_s,
            "peak_rss_mb": m.peak_rss_mb,
        }
        rows.append(row)
        env = report.environment
        print(
            f"run {i + 1}: {seconds:.1f} s; load {m.load_ms:.2f} ms; p50 {m.p50_ms:.3f} / "
            f"p95 {m.p95_ms:.3f} / p99 {m.p99_ms:.3f} ms; best {rec.max_rows_per_s:,.0f} rows/s "
            f"(batch {rec.batch_size}, {rec.threads} thr); peak RSS {m.peak_rss_mb:.0f} MiB; "
            f"cpu {rec.cpu_request}/{rec.cpu_limit}, memory {rec.memory_request}/"
            f"{rec.memory_limit}; predicted p99 {rec.predicted_p99_ms:.3f} ms; slo_met "
            f"{rec.slo_met}; load avg {env['load_average_1m_before']}->"
            f"{env['load_average_1m_after']}"
        )
        for p in sorted(m.throughput, key=lambda p: (p.threads, p.batch_size)):
            print(f"    threads {p.threads} batch {p.batch_size:>6}: {p.rows_per_s:>12,.0f} rows/s")
    print("\nfigure            median      max/min across runs")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"{key:<16} {statistics.median(values):>10.3f}  {max(values) / min(values):>6.2f}x")


if __name__ == "__main__":
    main()
