"""Batch scoring with ONNX Runtime: stream a partition through one session, write atomically.

:func:`score_partition` reads a Parquet or CSV partition (a file, a folder, a hive dataset; local
or fsspec) one row group at a time, builds the float32 / string inputs straight from Arrow
(:mod:`airflow_mlops.core.scoring_io`), runs them through one ONNX Runtime session whose thread
count is the number of cores the process may use, and writes

- the output: key columns + ``prediction`` + ``probability_<class>`` (float32, as computed) +
  ``model_name`` + ``model_version`` + ``scored_at`` (one timestamp per partition run);
- the rejects (rows that cannot be scored, with ``reject_reason`` and the raw values as text);
- a bounded, seeded sample of inputs + predictions in the monitoring layout
  ``{monitoring_dir}/model=<name>/source=batch/version=<v>/date=<date>/<partition>.parquet``.

Outputs are written to a temporary name in their folder and renamed when complete, so a failed
or retried run never leaves half a file, and re-running a partition replaces its files. Output
rows + rejected rows = input rows, always (checked before the rename).

An input with no rows is not an error: the result says 0 rows and an empty output file (with
the full schema) is written, so downstream readers of the date see the partition was scored.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import re
import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.exceptions import MLOpsError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_mlops.core.model.reference import ResolvedModel
    from airflow_mlops.core.scoring.pod import KubernetesScoringSpec

log = logging.getLogger(__name__)

__all__ = [
    "ScoreResult",
    "ScoringError",
    "ScoringSpec",
    "available_cores",
    "default_rejects_uri",
    "partition_name",
    "partition_target",
    "score_partition",
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


@dataclass(frozen=True)
class ScoringSpec:
    """The ``scoring:`` section of a model config (every key optional).

    :param input_uri: folder holding one ``date=YYYY-MM-DD`` folder per day, each with the
        day's partitions (files or sub-folders); default ``${MLOPS_HOME}/data/<name>/incoming``.
    :param output_uri: folder receiving ``date=YYYY-MM-DD/<partition>.parquet``; default
        ``${MLOPS_HOME}/scored/<name>``.
    :param model: alias or version to score with (``champion``), or a ``models:/`` URI.
    :param key_columns: columns copied to the output (default: the config's data.key_columns).
    :param batch_rows: most rows fed to ONNX Runtime at once (bounds memory).
    :param threads: intra-op threads (``None``: the cores available to the task).
    :param sample_rows: rows kept per partition for drift monitoring (0: none).
    :param monitoring_dir: root of the monitoring layout (default ``${MLOPS_HOME}/monitoring``).
    :param progress_seconds: how often progress is logged.
    :param schedule: cron expression or preset of the scoring DAG.
    :param format: ``auto``, ``parquet`` or ``csv``.
    :param runner: where partitions are scored: ``worker`` (a ``BatchScoreOperator`` per
        partition in the Airflow worker) or ``kubernetes`` (a pod per partition running the
        version's serving image, see :mod:`airflow_mlops.core.scoring_pod`).
    :param kubernetes: the pods' settings (:class:`~airflow_mlops.core.scoring_pod.
        KubernetesScoringSpec`); checked whatever the runner, used by ``kubernetes``.
    """

    input_uri: str | None = None
    output_uri: str | None = None
    model: str = "champion"
    key_columns: tuple[str, ...] | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    threads: int | None = None
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    monitoring_dir: str | None = None
    progress_seconds: float = 30.0
    schedule: str | None = "@daily"
    format: str = "auto"
    runner: str = "worker"
    kubernetes: KubernetesScoringSpec | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "<config>") -> ScoringSpec:
        """Check and build the section; an empty or missing section gives the defaults."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"{source}: scoring: unknown key(s) {unknown}; known keys: {sorted(known)}"
            )
        if raw.get("key_columns") is not None:
            keys = raw["key_columns"]
            if isinstance(keys, str) or not isinstance(keys, list | tuple):
                raise ConfigError(f"{source}: scoring.key_columns: expected a list, got {keys!r}")
            raw["key_columns"] = tuple(str(k) for k in keys)
        if "kubernetes" in raw:
            from airflow_mlops.core.scoring.pod import KubernetesScoringSpec

            raw["kubernetes"] = KubernetesScoringSpec.from_dict(raw["kubernetes"], source)
        spec = cls(**raw)
        for key, low in (("batch_rows", 1), ("sample_rows", 0)):
            value = getattr(spec, key)
            if not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"{source}: scoring.{key} must be an integer >= {low}, got {value!r}"
                )
        if spec.threads is not None and (not isinstance(spec.threads, int) or spec.threads < 1):
            raise ConfigError(f"{source}: scoring.threads must be a positive integer or null")
        if spec.format not in ("auto", "parquet", "csv"):
            raise ConfigError(f"{source}: scoring.format must be auto, parquet or csv")
        if not spec.progress_seconds > 0:
            raise ConfigError(f"{source}: scoring.progress_seconds must be > 0")
        if spec.runner not in RUNNERS:
            raise ConfigError(
                f"{source}: scoring.runner must be worker or kubernetes, got {spec.runner!r}"
            )
        if spec.runner == "kubernetes":
            from airflow_mlops.core.scoring.pod import KubernetesScoringSpec, check_pod_paths

            if spec.kubernetes is None:
                spec = replace(spec, kubernetes=KubernetesScoringSpec())
            check_pod_paths(spec, source)
        return spec

    def input_base(self, model_name: str) -> str:
        return self.input_uri or join(_home(), "data", model_name, "incoming")

    def output_base(self, model_name: str) -> str:
        return self.output_uri or join(_home(), "scored", model_name)

    def monitoring_root(self) -> str:
        return self.monitoring_dir or join(_home(), "monitoring")


def _home() -> str:
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
        (``VmHWM``, reset at the start by :func:`reset_peak_rss`; it includes what the process
        held before).
    :param sample_uri: the monitoring sample (``None`` when sampling is off or no row scored).
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (small enough for XCom)."""
        return asdict(self)


def available_cores() -> int:
    """Cores this process may run on: CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def peak_rss_mb() -> float:
    """Peak resident set size of this program in MB.

    ``VmHWM`` from ``/proc/self/status`` first: ``ru_maxrss`` survives ``exec`` on Linux, so a
    task process started from a big parent (a forked worker, a benchmark) would report the
    parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` so that :func:`peak_rss_mb` measures from now on.

    A task run in-process (``dag.test()``, the demo) would otherwise report the host process's
    own earlier peak (670 MB in the demo, against ~320 MB for the scoring itself). Writing ``5``
    to ``/proc/self/clear_refs`` (Linux >= 4.0) resets the mark to the current RSS; elsewhere
    nothing happens and the process peak is reported.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


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


def _output_schema(
    keys: list[str], key_types: dict[str, pa.DataType], label_type: pa.DataType, classes: Any
) -> pa.Schema:
    import pyarrow as pa

    out = [pa.field(k, key_types.get(k, pa.string())) for k in keys]
    out.append(pa.field("prediction", label_type))
    out += [pa.field(f"probability_{c}", pa.float32()) for c in classes]
    out += [
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(out)


def _label_type(session: Any) -> pa.DataType:
    import pyarrow as pa

    out = {o.name: o.type for o in session.get_outputs()}
    return pa.string() if out.get("label") == "tensor(string)" else pa.int64()


class _Progress:
    def __init__(self, label: str, every: float, total: int | None) -> None:
        self.label, self.every, self.total = label, every, total
        self.start = self.last = time.perf_counter()

    def tick(self, rows: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            rate = rows / max(now - self.start, 1e-9)
            of = f" of {self.total:,}" if self.total is not None else ""
            log.info("scoring %s: %s%s rows, %.0f rows/s", self.label, f"{rows:,}", of, rate)


def score_partition(
    input_uri: str,
    output_uri: str,
    model: ResolvedModel,
    *,
    key_columns: tuple[str, ...] | list[str] = (),
    rejects_uri: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    monitoring_dir: str | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    sample_date: str | None = None,
    seed: int = 0,
    partition: str | None = None,
    progress_seconds: float = 30.0,
    format: str = "auto",
    session: Any = None,
) -> ScoreResult:
    """Score one partition with ``model`` (see the module docstring for what is written).

    :param input_uri: local path or fsspec URI: a file, a folder, or a hive-partitioned folder.
    :param output_uri: the predictions file (replaced if present).
    :param model: the resolved model (:func:`airflow_mlops.core.model_ref.resolve_model`).
    :param key_columns: input columns copied to the output and the rejects.
    :param rejects_uri: the rejects file (default :func:`default_rejects_uri`).
    :param batch_rows: most rows fed to ONNX Runtime at once.
    :param threads: intra-op threads (``None``: :func:`available_cores`).
    :param monitoring_dir: root of the monitoring layout (``None``: no sample is written).
    :param sample_rows: most rows in the monitoring sample.
    :param sample_date: the ``date=`` of the sample (default: today, UTC).
    :param seed: seed of the sample.
    :param partition: name used in messages and for the sample file (default: from the URI).
    :param progress_seconds: how often progress is logged.
    :param format: ``auto``, ``parquet`` or ``csv``.
    :param session: an ONNX Runtime session to reuse (default: one is loaded from the model).
    :raises ScoringError: naming the partition, file and column for a missing column, a column
        of the wrong type or a corrupt file; nothing is written then.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.data.io import atomic_output, write_parquet_atomic
    from airflow_mlops.core.scoring.io import (
        BackgroundWriter,
        Feed,
        InputSource,
        LazyWriter,
        Prefetch,
        Reservoir,
        build_feed,
        key_column,
        rejects_batch,
        rejects_schema,
        remove_if_exists,
        sample_table,
    )
    from airflow_mlops.core.training.convert import load_session

    started = time.perf_counter()
    reset_peak_rss()
    label = partition or partition_name(input_uri)
    keys = list(dict.fromkeys(key_columns))
    numeric, categorical = list(model.numeric_features), list(model.categorical_features)
    overlap = [k for k in keys if k in numeric or k in categorical]
    if overlap:
        raise ScoringError(f"partition {label}: key column(s) {overlap} are model features")
    if batch_rows < 1:
        raise ScoringError(f"batch_rows must be >= 1, got {batch_rows}")
    rejects_uri = rejects_uri or default_rejects_uri(output_uri)
    source = InputSource(input_uri, numeric, categorical, keys, batch_rows, label, format)
    source.check()
    if session is None:
        session = load_session(model.onnx_path, threads or available_cores())
    label_type = _label_type(session)
    scored_at = pa.scalar(datetime.now(UTC), type=pa.timestamp("us", tz="UTC"))
    prob_names = [f"probability_{c}" for c in model.classes]
    reservoir = Reservoir(sample_rows if monitoring_dir else 0, seed)
    rows_in = rows_out = rows_rejected = 0
    progress = _Progress(label, progress_seconds, source.rows_expected)
    input_columns = source.columns

    def decoded() -> Iterator[tuple[pa.RecordBatch, Feed]]:
        for batch in source.batches():
            yield batch, build_feed(batch, numeric, categorical, keys)

    # Three stages overlap: a reader thread decodes the next row group and builds its feed
    # while ORT runs the current batch here and a writer thread encodes the previous output.
    # Arrow and ORT release the GIL. Queues of depth 1: depth 2 measured +25 MB peak RSS (407 vs
    # 382 MB, 1M rows, mimalloc keeps per-thread pages) and no speed-up.
    with Prefetch(decoded(), depth=1) as inputs_q:
        first = next(inputs_q, None)  # CSV key types are only known once a batch is read
        schema = _output_schema(keys, source.key_types, label_type, model.classes)
        # Dictionary pages only where values repeat: on unique keys and probabilities the
        # writer would build a dictionary, overflow it and fall back (4-6x the plain write).
        dictionary = ["prediction", "model_name", "model_version"]
        with (
            atomic_output(output_uri) as sink,
            BackgroundWriter(
                pq.ParquetWriter(sink, schema, use_dictionary=dictionary), depth=1
            ) as writer,
            LazyWriter(rejects_uri, rejects_schema(input_columns)) as rejects,
        ):
            pending = [first] if first is not None else []
            for batch, feed in _chain(pending, inputs_q):
                n = batch.num_rows
                rows_in += n
                mask = feed.rejected()
                inputs = feed.inputs
                if mask is not None:
                    assert feed.reasons is not None
                    rejects.write(rejects_batch(batch, mask, feed.reasons, input_columns))
                    rows_rejected += int(mask.sum())
                    keep = ~mask
                    batch = batch.filter(pa.array(keep))
                    inputs = {k: v[keep] for k, v in inputs.items()}
                m = batch.num_rows
                if m:
                    labels, proba = session.run(["label", "probabilities"], inputs)
                    preds = [pa.array(np.asarray(labels).reshape(-1), type=label_type)]
                    preds += [
                        pa.array(np.ascontiguousarray(proba[:, i])) for i in range(proba.shape[1])
                    ]
                    if len(preds) - 1 != len(prob_names):
                        raise ScoringError(
                            f"{model.model_uri}: the model returned {len(preds) - 1} probability "
                            f"columns but names {len(prob_names)} classes {list(model.classes)}"
                        )
                    out = [key_column(batch, k, schema) for k in keys] + preds
                    out += [
                        pa.repeat(model.name, m),
                        pa.repeat(model.version, m),
                        pa.repeat(scored_at, m),
                    ]
                    writer.write_batch(pa.RecordBatch.from_arrays(out, schema=schema))
                    picked = reservoir.candidates(m)
                    if picked is not None:
                        take = pa.array(picked)
                        reservoir.add(
                            sample_table(
                                batch.take(take),
                                numeric,
                                categorical,
                                keys,
                                [p.take(take) for p in preds],
                                ["prediction", *prob_names],
                                source.key_types,
                            )
                        )
                    rows_out += m
                progress.tick(rows_in)
            if rows_out + rows_rejected != rows_in or (
                source.rows_expected is not None and rows_in != source.rows_expected
            ):
                raise ScoringError(
                    f"partition {label}: read {rows_in} rows (footer says "
                    f"{source.rows_expected}) but wrote {rows_out} + {rows_rejected} rejected"
                )
    if not rejects.opened:
        remove_if_exists(rejects_uri)
    sample_uri = None
    sample = reservoir.result()
    if monitoring_dir and sample is not None:
        date = sample_date or datetime.now(UTC).strftime("%Y-%m-%d")
        sample_uri = join(
            monitoring_dir,
            f"model={model.name}",
            "source=batch",
            f"version={model.version}",
            f"date={date}",
            f"{label}.parquet",
        )
        write_parquet_atomic(
            sample.append_column("scored_at", pa.repeat(scored_at, sample.num_rows)), sample_uri
        )
    seconds = time.perf_counter() - started
    if rows_in == 0:
        log.warning("partition %s has no rows; wrote an empty %s", label, output_uri)
    result = ScoreResult(
        input_uri=input_uri,
        output_uri=output_uri,
        rejects_uri=rejects_uri if rejects.opened else None,
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=rows_rejected,
        model_name=model.name,
        model_version=model.version,
        seconds=round(seconds, 3),
        rows_per_second=round(rows_in / seconds, 1) if seconds > 0 else 0.0,
        peak_rss_mb=round(peak_rss_mb(), 1),
        sample_uri=sample_uri,
    )
    log.info(
        "scored %s with %s v%s: %s rows in, %s out, %s rejected, %.0f rows/s, peak RSS %.0f MB",
        label,
        model.name,
        model.version,
        f"{rows_in:,}",
        f"{rows_out:,}",
        f"{rows_rejected:,}",
        result.rows_per_second,
        result.peak_rss_mb,
    )
    return result


_RUNS = ("list_partitions", "summarize", "score_demo", "format_demo", "_score_main")


def __getattr__(name: str) -> Any:
    # The run-level helpers moved to scoring_runs; old imports from here keep working.
    if name in _RUNS:
        from airflow_mlops.core.scoring import runs as scoring_runs

        return getattr(scoring_runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _chain(first: list[pa.RecordBatch], rest: Any) -> Any:
    yield from first
    yield from rest
