"""Runs of batch scoring: list a day's partitions, summarize a run.

Apart from :mod:`airflow_mlops.core.scoring.partition` (the per-partition loop): a DAG lists
and summarizes without loading the scoring code. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.scoring.types import ScoringError, join, partition_name

__all__ = ["list_partitions", "summarize"]


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
