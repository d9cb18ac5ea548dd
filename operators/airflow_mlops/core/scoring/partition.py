"""Batch scoring with ONNX Runtime: stream a partition through one session, write atomically.

:func:`score_partition` reads a Parquet or CSV partition (a file, a folder, a hive dataset; local
or fsspec) one row group at a time, builds the float32 / string inputs straight from Arrow
(:mod:`airflow_mlops.core.scoring.io`), runs them through one ONNX Runtime session whose thread
count is the number of cores the process may use, and writes

- the output: key columns + ``prediction`` + ``probability_<class>`` (float32, as computed) +
  ``model_name`` + ``model_version`` + ``scored_at`` (one timestamp per partition run);
- the rejects (rows that cannot be scored, with ``reject_reason`` and the raw values as text);
- a bounded, seeded sample of inputs + predictions in the monitoring layout
  ``{monitoring_dir}/model=<name>/source=batch/version=<v>/date=<date>/<partition>.parquet``.

Outputs are written to a temporary name in their folder and renamed when complete, so a failed
or retried run never leaves half a file, and re-running a partition replaces its files. A try
that was killed (no cleanup ran) leaves its temporaries behind: the next try of the partition
removes them first (its own only). Output rows + rejected rows = input rows, always (checked
before the rename). Missing values and unseen categories of the scored rows are counted per
column in the result.

An input with no rows is not an error: the result says 0 rows and an empty output file (with
the full schema) is written, so downstream readers of the date see the partition was scored.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.scoring.types import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    ScoreResult,
    ScoringError,
    default_rejects_uri,
    join,
    partition_name,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_mlops.core.model.reference import ResolvedModel
    from airflow_mlops.core.scoring.arrow_feed import Feed
    from airflow_mlops.core.scoring.io import InputSource
    from airflow_mlops.core.scoring.output import LazyWriter, Reservoir

log = logging.getLogger(__name__)

__all__ = [
    "ScoringOptions",
    "available_cores",
    "peak_rss_mb",
    "reset_peak_rss",
    "score_partition",
]


@dataclass(frozen=True)
class ScoringOptions:
    """How one partition is scored: every keyword of :func:`score_partition`.

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
    """

    key_columns: tuple[str, ...] = ()
    rejects_uri: str | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    threads: int | None = None
    monitoring_dir: str | None = None
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    sample_date: str | None = None
    seed: int = 0
    partition: str | None = None
    progress_seconds: float = 30.0
    format: str = "auto"

    @classmethod
    def merge(cls, options: ScoringOptions | None, keywords: Mapping[str, Any]) -> ScoringOptions:
        """``options`` (default: the defaults) with ``keywords`` replacing its fields.

        :raises TypeError: a keyword that is not an option (as a misspelt argument would).
        """
        unknown = sorted(set(keywords) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"score_partition() got unexpected keyword argument(s) {unknown}")
        merged = replace(options or cls(), **keywords)
        # Keys given twice would be written twice; order is kept for the output's columns.
        return replace(merged, key_columns=tuple(dict.fromkeys(merged.key_columns)))


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
    options: ScoringOptions | None = None,
    *,
    session: Any = None,
    **keywords: Any,
) -> ScoreResult:
    """Score one partition with ``model`` (see the module docstring for what is written).

    :param input_uri: local path or fsspec URI: a file, a folder, or a hive-partitioned folder.
    :param output_uri: the predictions file (replaced if present).
    :param model: the resolved model (:func:`airflow_mlops.core.model.reference.resolve_model`).
    :param options: how to score (:class:`ScoringOptions`; default: its defaults).
    :param session: an ONNX Runtime session to reuse (default: one is loaded from the model).
    :param keywords: any field of :class:`ScoringOptions` (``key_columns=...``,
        ``batch_rows=...``), replacing the one in ``options``.
    :raises ScoringError: naming the partition, file and column for a missing column, a column
        of the wrong type or a corrupt file; nothing is written then.
    """
    started = time.perf_counter()
    reset_peak_rss()
    opts = ScoringOptions.merge(options, keywords)
    setup = _PartitionSetup.open(input_uri, output_uri, model, opts, session)
    _remove_stale_temporaries(setup)
    scorer = _stream(setup, output_uri)
    return _finish(setup, scorer, started)


@dataclass(frozen=True)
class _PartitionSetup:
    """What is fixed before the first batch: checked inputs, the session, the output's constants."""

    input_uri: str
    output_uri: str
    rejects_uri: str
    model: ResolvedModel
    options: ScoringOptions
    label: str
    keys: list[str]
    numeric: list[str]
    categorical: list[str]
    source: InputSource
    session: Any
    label_type: pa.DataType
    scored_at: pa.Scalar
    prob_names: list[str]
    sample_uri: str | None
    known: dict[str, pa.Array]
    unknown: list[str]

    @classmethod
    def open(
        cls,
        input_uri: str,
        output_uri: str,
        model: ResolvedModel,
        opts: ScoringOptions,
        session: Any,
    ) -> _PartitionSetup:
        """Check the arguments and the input's columns, then load the session if none is given.

        :raises ScoringError: a key column is a model feature, ``batch_rows`` is below 1, or
            the input lacks a column (from :meth:`InputSource.check`).
        """
        import pyarrow as pa

        from airflow_mlops.core.model.session import load_session
        from airflow_mlops.core.scoring.categories import known_categories
        from airflow_mlops.core.scoring.io import InputSource

        label = opts.partition or partition_name(input_uri)
        keys = list(opts.key_columns)
        numeric, categorical = list(model.numeric_features), list(model.categorical_features)
        overlap = [k for k in keys if k in numeric or k in categorical]
        if overlap:
            raise ScoringError(f"partition {label}: key column(s) {overlap} are model features")
        if opts.batch_rows < 1:
            raise ScoringError(f"batch_rows must be >= 1, got {opts.batch_rows}")
        source = InputSource(
            input_uri, numeric, categorical, keys, opts.batch_rows, label, opts.format
        )
        source.check()
        if session is None:
            session = load_session(model.onnx_path, opts.threads or available_cores())
        known = known_categories(model.onnx_path, categorical) if categorical else {}
        return cls(
            input_uri=input_uri,
            output_uri=output_uri,
            rejects_uri=opts.rejects_uri or default_rejects_uri(output_uri),
            model=model,
            options=opts,
            label=label,
            keys=keys,
            numeric=numeric,
            categorical=categorical,
            source=source,
            session=session,
            label_type=_label_type(session),
            scored_at=pa.scalar(datetime.now(UTC), type=pa.timestamp("us", tz="UTC")),
            prob_names=[f"probability_{c}" for c in model.classes],
            sample_uri=_sample_uri(opts, model, label),
            known={c: pa.array(sorted(k), pa.string()) for c, k in known.items() if k is not None},
            unknown=[c for c, k in known.items() if k is None],
        )

    def targets(self) -> list[str]:
        """Every file this partition may write: output, rejects, and the sample if kept."""
        return [self.output_uri, self.rejects_uri, *([self.sample_uri] if self.sample_uri else [])]

    def decoded(self) -> Iterator[tuple[pa.RecordBatch, Feed]]:
        """Every batch of the input with its ONNX Runtime feed."""
        from airflow_mlops.core.scoring.arrow_feed import build_feed

        for batch in self.source.batches():
            yield batch, build_feed(batch, self.numeric, self.categorical, self.keys, self.known)


class _BatchScorer:
    """Scores batches into the output writer, the rejects and the sample; counts every row."""

    def __init__(
        self,
        setup: _PartitionSetup,
        schema: pa.Schema,
        writer: Any,
        rejects: LazyWriter,
        reservoir: Reservoir,
    ) -> None:
        self.setup, self.schema = setup, schema
        self.writer, self.rejects, self.reservoir = writer, rejects, reservoir
        self.rows_in = self.rows_out = self.rows_rejected = 0
        self.missing: dict[str, int] = {}
        self.unseen: dict[str, int] = {}

    def add(self, batch: pa.RecordBatch, feed: Feed) -> None:
        """Write the batch's rejected rows aside, score the rest and write their predictions."""
        import pyarrow as pa

        from airflow_mlops.core.scoring.output import rejects_batch

        self.rows_in += batch.num_rows
        for counts, add in ((self.missing, feed.missing), (self.unseen, feed.unseen)):
            for column, n in add.items():
                counts[column] = counts.get(column, 0) + n
        mask = feed.rejected()
        inputs = feed.inputs
        if mask is not None:
            assert feed.reasons is not None
            columns = self.setup.source.columns
            self.rejects.write(rejects_batch(batch, mask, feed.reasons, columns))
            self.rows_rejected += int(mask.sum())
            keep = ~mask
            batch = batch.filter(pa.array(keep))
            inputs = {k: v[keep] for k, v in inputs.items()}
        if batch.num_rows:
            preds = self._predict(inputs)
            self._write(batch, preds)
            self._sample(batch, preds)
            self.rows_out += batch.num_rows

    def _predict(self, inputs: dict[str, Any]) -> list[pa.Array]:
        """The prediction column, then one probability column per class."""
        import numpy as np
        import pyarrow as pa

        setup = self.setup
        labels, proba = setup.session.run(["label", "probabilities"], inputs)
        preds = [pa.array(np.asarray(labels).reshape(-1), type=setup.label_type)]
        preds += [pa.array(np.ascontiguousarray(proba[:, i])) for i in range(proba.shape[1])]
        if len(preds) - 1 != len(setup.prob_names):
            model = setup.model
            raise ScoringError(
                f"{model.model_uri}: the model returned {len(preds) - 1} probability "
                f"columns but names {len(setup.prob_names)} classes {list(model.classes)}"
            )
        return preds

    def _write(self, batch: pa.RecordBatch, preds: list[pa.Array]) -> None:
        import pyarrow as pa

        from airflow_mlops.core.scoring.output import key_column

        setup, m = self.setup, batch.num_rows
        out = [key_column(batch, k, self.schema) for k in setup.keys] + preds
        out += [
            pa.repeat(setup.model.name, m),
            pa.repeat(setup.model.version, m),
            pa.repeat(setup.scored_at, m),
        ]
        self.writer.write_batch(pa.RecordBatch.from_arrays(out, schema=self.schema))

    def _sample(self, batch: pa.RecordBatch, preds: list[pa.Array]) -> None:
        import pyarrow as pa

        from airflow_mlops.core.scoring.output import sample_table

        picked = self.reservoir.candidates(batch.num_rows)
        if picked is None:
            return
        setup, take = self.setup, pa.array(picked)
        self.reservoir.add(
            sample_table(
                batch.take(take),
                setup.numeric,
                setup.categorical,
                setup.keys,
                [p.take(take) for p in preds],
                ["prediction", *setup.prob_names],
                setup.source.key_types,
            )
        )

    def check_counts(self) -> None:
        """Every row read was written or rejected, and as many were read as the footer says.

        :raises ScoringError: before the outputs are renamed, so nothing is published.
        """
        expected = self.setup.source.rows_expected
        if self.rows_out + self.rows_rejected != self.rows_in or (
            expected is not None and self.rows_in != expected
        ):
            raise ScoringError(
                f"partition {self.setup.label}: read {self.rows_in} rows (footer says "
                f"{expected}) but wrote {self.rows_out} + {self.rows_rejected} rejected"
            )


def _stream(setup: _PartitionSetup, output_uri: str) -> _BatchScorer:
    """Read, score and write every batch; the outputs are renamed into place on success."""
    import pyarrow.parquet as pq

    from airflow_mlops.core.data.io import atomic_output
    from airflow_mlops.core.scoring.io import Prefetch
    from airflow_mlops.core.scoring.output import BackgroundWriter, LazyWriter, Reservoir

    opts = setup.options
    reservoir = Reservoir(opts.sample_rows if opts.monitoring_dir else 0, opts.seed)
    progress = _Progress(setup.label, opts.progress_seconds, setup.source.rows_expected)
    # Three stages overlap: a reader thread decodes the next row group and builds its feed
    # while ORT runs the current batch here and a writer thread encodes the previous output.
    # Arrow and ORT release the GIL. Queues of depth 1: depth 2 measured +25 MB peak RSS (407 vs
    # 382 MB, 1M rows, mimalloc keeps per-thread pages) and no speed-up.
    with Prefetch(setup.decoded(), depth=1) as inputs_q:
        first = next(inputs_q, None)  # CSV key types are only known once a batch is read
        schema = _output_schema(
            setup.keys, setup.source.key_types, setup.label_type, setup.model.classes
        )
        # Dictionary pages only where values repeat: on unique keys and probabilities the
        # writer would build a dictionary, overflow it and fall back (4-6x the plain write).
        dictionary = ["prediction", "model_name", "model_version"]
        with (
            atomic_output(output_uri) as sink,
            BackgroundWriter(
                pq.ParquetWriter(sink, schema, use_dictionary=dictionary), depth=1
            ) as writer,
            LazyWriter(setup.rejects_uri, _rejects_schema(setup)) as rejects,
        ):
            scorer = _BatchScorer(setup, schema, writer, rejects, reservoir)
            pending = [first] if first is not None else []
            for batch, feed in _chain(pending, inputs_q):
                scorer.add(batch, feed)
                progress.tick(scorer.rows_in)
            scorer.check_counts()
    return scorer


def _remove_stale_temporaries(setup: _PartitionSetup) -> None:
    """What a killed earlier try of this partition left, before this try writes anything."""
    from airflow_mlops.core.scoring.output import remove_stale_temporaries

    for target in setup.targets():
        for path in remove_stale_temporaries(target):
            log.warning("partition %s: removed %s, left by an earlier try", setup.label, path)


def _rejects_schema(setup: _PartitionSetup) -> pa.Schema:
    from airflow_mlops.core.scoring.output import rejects_schema

    return rejects_schema(setup.source.columns)


def _finish(setup: _PartitionSetup, scorer: _BatchScorer, started: float) -> ScoreResult:
    """Drop an unused rejects file, write the monitoring sample, report what was done."""
    from airflow_mlops.core.scoring.output import remove_if_exists

    rejected = scorer.rejects.opened
    if not rejected:
        remove_if_exists(setup.rejects_uri)
    sample_uri = _write_sample(setup, scorer.reservoir)
    seconds = time.perf_counter() - started
    if scorer.rows_in == 0:
        log.warning("partition %s has no rows; wrote an empty %s", setup.label, setup.output_uri)
    result = ScoreResult(
        input_uri=setup.input_uri,
        output_uri=setup.output_uri,
        rejects_uri=setup.rejects_uri if rejected else None,
        rows_in=scorer.rows_in,
        rows_out=scorer.rows_out,
        rows_rejected=scorer.rows_rejected,
        model_name=setup.model.name,
        model_version=setup.model.version,
        seconds=round(seconds, 3),
        rows_per_second=round(scorer.rows_in / seconds, 1) if seconds > 0 else 0.0,
        peak_rss_mb=round(peak_rss_mb(), 1),
        sample_uri=sample_uri,
        missing_values=_in_order(scorer.missing, [*setup.numeric, *setup.categorical]),
        unseen_categories={
            **_in_order(scorer.unseen, setup.categorical),
            **dict.fromkeys(setup.unknown),
        },
    )
    log.info(
        "scored %s with %s v%s: %s rows in, %s out, %s rejected, %.0f rows/s, peak RSS %.0f MB",
        setup.label,
        setup.model.name,
        setup.model.version,
        f"{result.rows_in:,}",
        f"{result.rows_out:,}",
        f"{result.rows_rejected:,}",
        result.rows_per_second,
        result.peak_rss_mb,
    )
    if result.missing_values or result.unseen_categories:
        log.info(
            "partition %s: scored as missing %s; unseen categories %s (None: not available)",
            setup.label,
            result.missing_values,
            result.unseen_categories,
        )
    return result


def _in_order(counts: dict[str, int], columns: list[str]) -> dict[str, int]:
    """``counts`` in the model's column order (the reader's order depends on the batches)."""
    return {c: counts[c] for c in columns if counts.get(c)}


def _sample_uri(opts: ScoringOptions, model: ResolvedModel, label: str) -> str | None:
    """Where the monitoring sample goes (see the module docstring), if one is kept."""
    if not opts.monitoring_dir or opts.sample_rows <= 0:
        return None
    date = opts.sample_date or datetime.now(UTC).strftime("%Y-%m-%d")
    return join(
        opts.monitoring_dir,
        f"model={model.name}",
        "source=batch",
        f"version={model.version}",
        f"date={date}",
        f"{label}.parquet",
    )


def _write_sample(setup: _PartitionSetup, reservoir: Reservoir) -> str | None:
    """The sample at :func:`_sample_uri`, if one is kept and a row was scored."""
    import pyarrow as pa

    from airflow_mlops.core.data.io import write_parquet_atomic

    sample = reservoir.result()
    if setup.sample_uri is None or sample is None:
        return None
    scored_at = pa.repeat(setup.scored_at, sample.num_rows)
    write_parquet_atomic(sample.append_column("scored_at", scored_at), setup.sample_uri)
    return setup.sample_uri


def _chain(first: list[pa.RecordBatch], rest: Any) -> Any:
    yield from first
    yield from rest
