"""Runs of batch scoring: list a day's partitions, summarize a run.

Apart from :mod:`airflow_mlops.core.scoring.partition` (the per-partition loop): a DAG lists
and summarizes without loading the scoring code. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.scoring.types import ScoringError, check_distinct, join, partition_name

__all__ = ["list_partitions", "summarize"]


def list_partitions(base_uri: str, date: str) -> list[str]:
    """The partitions of one day: every file or folder directly in ``{base_uri}/date={date}``.

    Names starting with ``.`` or ``_`` (temporary files, ``_SUCCESS``) are skipped. A day with
    no folder has no partitions (an empty list, not an error).

    :raises ScoringError: two entries have one partition name (``part-x.csv`` and
        ``part-x.parquet``): they would write the same output, rejects and sample files, so the
        run is refused before anything is scored, naming both. Refused rather than renamed: a
        name that depended on which other files landed that day would move when one of them
        is removed, leaving the old output behind, and every runner derives the name from the
        input URI alone.
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
    check_distinct(((uri, partition_name(uri)) for uri in found), "partition name")
    return found


def summarize(results: list[dict[str, Any]], partitions: list[str] | None = None) -> dict[str, Any]:
    """One summary of a run's partitions, checked against what was written.

    :param results: :meth:`ScoreResult.to_dict` of every scored partition.
    :param partitions: every partition that should have been scored (to name missing ones).
    :raises ScoringError: the partitions were scored with more than one model version, a
        listed partition has no result (its task failed), two results name one output file,
        or an output (or rejects) file does not hold the rows its result counts (its Parquet
        footer is read: a replaced or lost file is found without reading the data).
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
            "missing_values": dict(r.get("missing_values") or {}),
            "unseen_categories": dict(r.get("unseen_categories") or {}),
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
        "missing_values": _add_counts(p["missing_values"] for p in per_partition),
        "unseen_categories": _add_counts(p["unseen_categories"] for p in per_partition),
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
    check_distinct(((r["input_uri"], str(r.get("output_uri"))) for r in results), "output")
    _check_written(results)
    return summary


def _add_counts(counts: Any) -> dict[str, int | None]:
    """Per-column counts added up; ``None`` (not available) in any partition stays ``None``."""
    total: dict[str, int | None] = {}
    for per_column in counts:
        for column, n in per_column.items():
            before = total.get(column, 0)
            total[column] = None if n is None or before is None else before + n
    return total


def _check_written(results: list[dict[str, Any]]) -> None:
    """Every output (and rejects) file holds the rows its result counts; else name them all."""
    problems = []
    for r in results:
        label = partition_name(r["input_uri"])
        files = [("output", r.get("output_uri"), "rows_out", r["rows_out"])]
        if r.get("rejects_uri") or r["rows_rejected"]:
            files.append(("rejects", r.get("rejects_uri"), "rows_rejected", r["rows_rejected"]))
        for what, uri, field, expected in files:
            if not uri:
                problems.append(f"{label}: no {what} file for {field} {expected}")
                continue
            try:
                rows = _parquet_rows(uri)
            except Exception as exc:  # missing, unreadable, or not Parquet: all fail the check
                problems.append(f"{label}: cannot read {what} {uri} ({_reason(exc)})")
                continue
            if rows != expected:
                problems.append(
                    f"{label}: {what} {uri} holds {rows} rows but its result says "
                    f"{field} {expected}"
                )
    if problems:
        raise ScoringError(
            f"{len(problems)} partition file(s) do not hold what their results count (replaced "
            f"by another partition, or changed since): {'; '.join(problems)}"
        )


def _parquet_rows(uri: str) -> int:
    """Rows of a Parquet file from its footer (no data pages are read)."""
    import pyarrow.parquet as pq

    from airflow_mlops.core.data.io import _url_to_fs

    fs, path = _url_to_fs(uri)
    fs.invalidate_cache(path)  # a size cached by this process would misread a replaced file
    with fs.open(path, "rb") as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def _reason(exc: Exception) -> str:
    from airflow_mlops.core.data.io import _reason as os_reason

    return os_reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
