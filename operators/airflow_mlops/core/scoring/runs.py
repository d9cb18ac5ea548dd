"""Runs of batch scoring: list a day's partitions, summarize a run, the demo's scoring.

Split from :mod:`airflow_mlops.core.scoring` (the per-partition loop) to keep both small;
the names are re-exported there. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_mlops.core.scoring.partition import (
    DEFAULT_BATCH_ROWS,
    ScoringError,
    _home,
    join,
    partition_name,
    score_partition,
)

__all__ = ["format_demo", "list_partitions", "score_demo", "summarize"]


def list_partitions(base_uri: str, date: str) -> list[str]:
    """The partitions of one day: every file or folder directly in ``{base_uri}/date={date}``.

    Names starting with ``.`` or ``_`` (temporary files, ``_SUCCESS``) are skipped. A day with
    no folder has no partitions (an empty list, not an error).
    """
    from airflow_mlops.core.data.io import _url_to_fs

    fs, path = _url_to_fs(join(base_uri, f"date={date}"))
    # A listing cached by this process (s3fs keeps one per folder) would hide partitions that
    # landed since through another client: list afresh.
    fs.invalidate_cache(path)
    if not fs.exists(path):
        return []
    found = []
    for entry in sorted(fs.ls(path, detail=True), key=lambda e: e["name"]):
        name = entry["name"].rstrip("/")
        if name.rsplit("/", 1)[-1].startswith((".", "_")):
            continue
        protocol = base_uri.split("://", 1)[0] + "://" if "://" in base_uri else ""
        found.append(name if not protocol or name.startswith(protocol) else protocol + name)
    return found


def summarize(results: list[dict[str, Any]], partitions: list[str] | None = None) -> dict[str, Any]:
    """One summary of a run's partitions; fails if versions differ or a partition is missing.

    :param results: :meth:`ScoreResult.to_dict` of every scored partition.
    :param partitions: every partition that should have been scored (to name missing ones).
    :raises ScoringError: the partitions were scored with more than one model version, or a
        listed partition has no result (its task failed).
    """
    results = [dict(r) for r in results if r]
    per_partition = [
        {
            "partition": partition_name(r["input_uri"]),
            "input_uri": r["input_uri"],
            "rows_in": r["rows_in"],
            "rows_out": r["rows_out"],
            "rows_rejected": r["rows_rejected"],
            "model": f"{r['model_name']} v{r['model_version']}",
            "rows_per_second": r["rows_per_second"],
        }
        for r in results
    ]
    versions = sorted({f"{r['model_name']} v{r['model_version']}" for r in results})
    missing = sorted(set(partitions or ()) - {r["input_uri"] for r in results})
    summary = {
        "partitions": len(partitions) if partitions is not None else len(results),
        "scored": len(results),
        "missing": missing,
        "rows_in": sum(r["rows_in"] for r in results),
        "rows_out": sum(r["rows_out"] for r in results),
        "rows_rejected": sum(r["rows_rejected"] for r in results),
        "model_versions": versions,
        "per_partition": per_partition,
    }
    if len(versions) > 1:
        by_version = {
            v: [p["partition"] for p in per_partition if p["model"] == v] for v in versions
        }
        raise ScoringError(f"partitions were scored with different model versions: {by_version}")
    if missing:
        raise ScoringError(
            f"{len(missing)} of {summary['partitions']} partition(s) were not scored "
            f"(see their task logs): {missing}"
        )
    return summary


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
    base = join(_home(), "data", model_name, "incoming")
    inputs = write_dataset(join(base, f"date={day}"), rows=rows, seed=7, partitions=partitions)
    out_base = join(_home(), "scored", model_name, f"date={day}")
    results = []
    for uri in inputs:
        args = {
            "tracking_uri": tracking.tracking_uri,
            "resolved": asdict(pinned),
            "input_uri": uri,
            "output_uri": join(out_base, f"{partition_name(uri)}.parquet"),
            "monitoring_dir": join(_home(), "monitoring"),
            "date": day,
        }
        code = (
            "import json, sys; from airflow_mlops.core.scoring_runs import _score_main; "
            "print(json.dumps(_score_main(json.loads(sys.argv[1]))))"
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


def _score_main(args: dict[str, Any]) -> dict[str, Any]:
    """Score one partition from plain arguments (the demo's and the bench's subprocess entry)."""
    from airflow_mlops.core.model.reference import ResolvedModel, resolve_model
    from airflow_mlops.core.registry.tracking import TrackingConfig

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
