"""The demo's batch scoring: generated partitions scored with the champion, one process each.

What ``make demo`` prints under "batch scoring"; :func:`score_main` is also the entry of the
scoring bench's subprocesses. Each partition is scored in a fresh Python process so that its
peak RSS is the scoring's own, not the demo's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_mlops.core.scoring.types import (
    DEFAULT_BATCH_ROWS,
    ScoringError,
    join,
    mlops_home,
    partition_name,
)

__all__ = ["format_demo", "score_demo", "score_main"]


def score_demo(
    tracking: Any,
    model_name: str = "demo_churn",
    rows: int = 2_000_000,
    partitions: int = 2,
    date: str | None = None,
) -> dict[str, Any]:
    """Generate ``rows`` demo rows as ``partitions`` files and score them with the champion.

    Each partition is scored in a fresh Python process so that its peak RSS is the scoring's
    own. Returns ``{"model", "rows", "seconds", "rows_per_second", "peak_rss_mb", "results"}``;
    :func:`format_demo` turns it into the lines the demo prints.
    """
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    from airflow_mlops.core.model.reference import resolve_model
    from airflow_mlops.devstack.demo_data import write_dataset

    day = date or datetime.now(UTC).strftime("%Y-%m-%d")
    # Resolved (and downloaded) here, once: the scoring processes get the ONNX file and its
    # name/version, so they never import MLflow and their peak RSS is the scoring's own.
    pinned = resolve_model(f"models:/{model_name}@champion", tracking)
    base = join(mlops_home(), "data", model_name, "incoming")
    inputs = write_dataset(join(base, f"date={day}"), rows=rows, seed=7, partitions=partitions)
    out_base = join(mlops_home(), "scored", model_name, f"date={day}")
    results = []
    for uri in inputs:
        args = {
            "tracking_uri": tracking.tracking_uri,
            "resolved": asdict(pinned),
            "input_uri": uri,
            "output_uri": join(out_base, f"{partition_name(uri)}.parquet"),
            "monitoring_dir": join(mlops_home(), "monitoring"),
            "date": day,
        }
        code = (
            "import json, sys; from airflow_mlops.devstack.scoring_demo import score_main; "
            "print(json.dumps(score_main(json.loads(sys.argv[1]))))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True
        )
        if out.returncode:
            raise ScoringError(f"scoring {uri} failed:\n{out.stderr[-2000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    seconds = sum(r["seconds"] for r in results)
    total = sum(r["rows_in"] for r in results)
    return {
        "model": f"{pinned.name} v{pinned.version}",
        "rows": total,
        "seconds": round(seconds, 2),
        "rows_per_second": round(total / seconds) if seconds else 0,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "results": results,
    }


def format_demo(summary: dict[str, Any]) -> list[str]:
    """The demo's lines: one per partition, then the total."""
    lines = [
        f"  {partition_name(r['input_uri'])}: {r['rows_in']:,} rows "
        f"({r['rows_rejected']:,} rejected), {r['rows_per_second']:,.0f} rows/s, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB"
        for r in summary["results"]
    ]
    lines.append(
        f"batch scoring with {summary['model']}: {summary['rows']:,} rows in "
        f"{summary['seconds']:.1f} s = {summary['rows_per_second']:,} rows/s, "
        f"peak RSS {summary['peak_rss_mb']:.0f} MB per partition process"
    )
    return lines


def score_main(args: dict[str, Any]) -> dict[str, Any]:
    """Score one partition from plain arguments (the demo's and the bench's subprocess entry)."""
    from airflow_mlops.core.model.reference import ResolvedModel, resolve_model
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.core.scoring.partition import score_partition

    if args.get("resolved"):
        raw = args["resolved"]
        model = ResolvedModel(
            name=raw["name"],
            version=raw["version"],
            onnx_path=raw["onnx_path"],
            numeric_features=tuple(raw["numeric_features"]),
            categorical_features=tuple(raw["categorical_features"]),
            classes=tuple(raw["classes"]),
            model_uri=raw["model_uri"],
        )
    else:
        tracking = TrackingConfig(args["tracking_uri"]) if args.get("tracking_uri") else None
        model = resolve_model(args["model"], tracking, name=args.get("name"))
    return score_partition(
        args["input_uri"],
        args["output_uri"],
        model,
        key_columns=args.get("key_columns", ["customer_id"]),
        monitoring_dir=args.get("monitoring_dir"),
        sample_date=args.get("date"),
        batch_rows=args.get("batch_rows", DEFAULT_BATCH_ROWS),
    ).to_dict()
