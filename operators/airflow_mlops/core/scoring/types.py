"""What every part of batch scoring shares: the error, the result, defaults and partition paths.

The bottom of the scoring package: it imports nothing from it, so the reader/writer helpers
(:mod:`.io`), the per-partition loop (:mod:`.partition`), the run helpers (:mod:`.runs`), the
pod planner (:mod:`.pod`) and the container entry (:mod:`.container`) all import from here and
the imports point one way.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_mlops import settings
from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_SAMPLE_ROWS",
    "RUNNERS",
    "ScoreResult",
    "ScoringError",
    "check_distinct",
    "default_rejects_uri",
    "join",
    "mlops_home",
    "partition_name",
    "partition_target",
]

DEFAULT_BATCH_ROWS = 65_536
DEFAULT_SAMPLE_ROWS = 5_000
RUNNERS = ("worker", "kubernetes")
_DATE_PART = re.compile(r"(?:^|/)date=([^/]+)")


class ScoringError(MLOpsError, ValueError):
    """A partition that cannot be scored; the message names the partition, file and column."""


def join(folder: str, *names: str) -> str:
    """``folder/name`` for local paths and URIs alike."""
    return posixpath.join(folder.rstrip("/"), *names) if folder else posixpath.join(*names)


def mlops_home() -> str:
    """The root of the default input, output and monitoring folders (``MLOPS_HOME``)."""
    return settings.mlops_home()


@dataclass(frozen=True)
class ScoreResult:
    """What scoring one partition did (JSON-able through :meth:`to_dict`).

    :param input_uri: the partition read.
    :param output_uri: the predictions file written.
    :param rejects_uri: the rejects file (``None`` when no row was rejected).
    :param rows_in: rows read; always ``rows_out + rows_rejected``.
    :param rows_out: rows scored and written.
    :param rows_rejected: rows written to the rejects file.
    :param model_name: the registered model scored with.
    :param model_version: its concrete version.
    :param seconds: wall time from opening the input to the rename of the outputs.
    :param rows_per_second: ``rows_in / seconds``.
    :param peak_rss_mb: peak resident memory of the process while scoring this partition
        (``VmHWM``, reset at the start by ``reset_peak_rss``; it includes what the process
        held before).
    :param sample_uri: the monitoring sample (``None`` when sampling is off or no row scored).
    :param missing_values: per feature column, scored rows whose value was missing and scored
        as missing (a null or NaN number, imputed by the model; a null or empty category);
        columns with none are left out.
    :param unseen_categories: per categorical column, scored rows whose category the model was
        not trained on (scored as all-zero one-hot); ``None`` for a column whose trained
        categories could not be read from the model (not available, not 0); columns with none
        are left out.
    """

    input_uri: str
    output_uri: str
    rejects_uri: str | None
    rows_in: int
    rows_out: int
    rows_rejected: int
    model_name: str
    model_version: str
    seconds: float
    rows_per_second: float
    peak_rss_mb: float
    sample_uri: str | None = None
    missing_values: dict[str, int] = field(default_factory=dict)
    unseen_categories: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (small enough for XCom)."""
        return asdict(self)


def partition_name(input_uri: str) -> str:
    """A file-name-safe name for a partition: its last path part without a data suffix."""
    base = input_uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".parquet", ".csv.gz", ".csv"):
        base = base.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", base) or "partition"


def partition_target(
    input_uri: str, output_template: str, partition: str | None = None
) -> tuple[str, str | None, str]:
    """``(partition, date, output_uri)`` for one input partition.

    ``{partition}`` in ``output_template`` becomes the partition's name (default: from the
    input URI) and ``{date}`` the input's ``date=`` folder. The worker and the Kubernetes
    runner both call this, so a partition lands at the same URI whichever scores it.

    :raises ScoringError: the template uses ``{date}`` but the input has no ``date=`` folder.
    """
    name = partition or partition_name(input_uri)
    found = _DATE_PART.search(input_uri)
    date = found.group(1) if found else None
    output_uri = output_template.replace("{partition}", name)
    if "{date}" in output_uri:
        if date is None:
            raise ScoringError(
                f"output_uri {output_template!r} uses {{date}} but input {input_uri} "
                "has no date=... folder"
            )
        output_uri = output_uri.replace("{date}", date)
    return name, date, output_uri


def default_rejects_uri(output_uri: str) -> str:
    """``out/date=d/part-0.parquet`` → ``out/date=d/_rejects/part-0.parquet``.

    The ``_`` folder is skipped by readers of the output folder (``load_frame``), so rejects
    never mix with predictions.
    """
    parent, _, base = output_uri.rstrip("/").rpartition("/")
    return join(parent, "_rejects", base) if parent else join("_rejects", base)


def check_distinct(targets: Iterable[tuple[str, str]], what: str) -> None:
    """Refuse inputs that would write one target: ``targets`` are ``(input, target)`` pairs.

    Two inputs of one name (``part-x.csv`` and ``part-x.parquet``) would write the same
    predictions, rejects and sample files, the second replacing the first while the run still
    counted both.

    :param what: what the target is, for the message (``"output"``, ``"partition name"``).
    :raises ScoringError: naming every input of each shared target.
    """
    seen: dict[str, list[str]] = {}
    for source, target in targets:
        seen.setdefault(target, []).append(source)
    shared = {target: sources for target, sources in seen.items() if len(sources) > 1}
    if shared:
        listed = "; ".join(
            f"{' and '.join(sources)} would write the same {what} {target}"
            for target, sources in shared.items()
        )
        raise ScoringError(
            f"{listed} (the later would replace the earlier's predictions, rejects and "
            "monitoring sample): rename one of them, or give each its own folder"
        )
