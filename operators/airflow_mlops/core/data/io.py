"""Reading training data, fingerprinting it, and splitting it into train and holdout files.

Every path is a local path or an fsspec URI (``file://``, ``s3://``, ``memory://`` ...), so the
same code runs on a laptop and on workers that share only object storage. Outputs are written
to a temporary name beside the target and renamed, so a retried task never leaves half a file.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from airflow_mlops.exceptions import MLOpsError, MLOpsTransientError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from airflow_mlops.core.config.data import DataSpec

_FORMATS = ("auto", "parquet", "csv")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst")
_CHUNK = 1 << 20
_ROW_GROUP_ROWS = 131_072


class DataError(MLOpsError, ValueError):
    """Data that cannot be used; the message names the file, the column or the figure."""


class StorageUnreachable(MLOpsTransientError, ConnectionError):
    """Object storage did not answer for a URI (the message names it); a retry may pass."""


# botocore's errors, by class name (botocore is only there with s3fs): no credentials at all is
# permanent until someone configures them; a refused or timed-out connection may pass.
_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError"})
_NO_ANSWER = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}
)


def storage_failure(exc: BaseException, uri: str, verb: str = "read") -> Exception | None:
    """The package error for a failure to ``verb`` ``uri``, or ``None`` when ``exc`` is not one.

    Missing object-store credentials and unreadable paths are :class:`DataError` (a retry
    cannot help); an object store that does not answer is :class:`StorageUnreachable`, which
    keeps the task's retries. Each message names ``uri``.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _NO_CREDENTIALS:
        return DataError(
            f"cannot {verb} {uri}: no object-storage credentials ({exc}); give the task a "
            "storage connection (storage_conn_id, default aws_default) or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if names & _NO_ANSWER or isinstance(exc, (ConnectionError, TimeoutError)):
        return StorageUnreachable(f"cannot {verb} {uri}: object storage did not answer: {exc}")
    if isinstance(exc, OSError):
        return DataError(f"cannot {verb} {uri}: {_reason(exc)}")
    return None


@dataclass(frozen=True)
class PreparedData:
    """Where the split data went and what it holds (JSON-able through :meth:`to_dict`).

    :param data_uri: the source data that was read.
    :param sha256: content hash of the source (see :func:`fingerprint`).
    :param rows: rows in the source.
    :param train_uri: the training part (Parquet).
    :param holdout_uri: the holdout part (Parquet).
    :param train_rows: rows in the training part.
    :param holdout_rows: rows in the holdout part.
    :param target: the label column.
    :param class_counts: rows per label in the source, keyed by the label as text.
    """

    data_uri: str
    sha256: str
    rows: int
    train_uri: str
    holdout_uri: str
    train_rows: int
    holdout_rows: int
    target: str
    class_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (small enough for XCom)."""
        return asdict(self)


def load_frame(uri: str, format: str = "auto", columns: list[str] | None = None) -> pd.DataFrame:
    """Read Parquet or CSV data into a DataFrame.

    :param uri: local path or fsspec URI of one file or of a folder of files; a Parquet folder
        may be hive-partitioned (``region=north/part-0.parquet``), the partition keys become
        columns. Names starting with ``.`` or ``_`` are skipped (temporary files, ``_SUCCESS``).
    :param format: ``parquet``, ``csv`` or ``auto`` (CSV when every file ends in ``.csv``,
        optionally compressed; Parquet otherwise).
    :param columns: read only these columns, in this order (``None``: all).
    :raises DataError: the path cannot be read, holds no rows, is not valid Parquet/CSV, or
        lacks a requested column.
    """
    if format not in _FORMATS:
        raise DataError(f"{uri}: unknown data format {format!r}; use one of {list(_FORMATS)}")
    fs, path = _url_to_fs(uri)
    files, is_dir = _data_files(fs, path, uri)
    fmt = _detect_format(files, format, uri)
    if fmt == "csv":
        frame = _read_csv(fs, files, columns, uri)
    else:
        frame = _read_parquet(fs, files, path if is_dir else None, columns, uri)
    if len(frame) == 0:
        raise DataError(f"{uri} has no rows")
    return frame


def fingerprint(uri: str) -> str:
    """SHA-256 hex digest of the data's content, read in 1 MiB chunks.

    For a single file this equals ``sha256sum`` of the file. For a folder it covers the same
    files :func:`load_frame` reads, in sorted order: each file's relative name, its size and its
    bytes, so renaming, adding or removing a file changes the digest.
    """
    fs, path = _url_to_fs(uri)
    files, is_dir = _data_files(fs, path, uri)
    digest = hashlib.sha256()
    base = path.rstrip("/") + "/"
    for name in files:
        if is_dir:
            # The name and size frame each file's bytes, so moving bytes from one file to the
            # next cannot produce the same digest.
            size = fs.size(name)
            digest.update(name[len(base) :].encode() + b"\0" + str(size).encode() + b"\0")
        try:
            with fs.open(name, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise DataError(f"cannot read {shown(fs, name, uri)}: {_reason(exc)}") from exc
    return digest.hexdigest()


def write_parquet_atomic(
    frame: pd.DataFrame | pa.Table, uri: str, row_group_size: int = _ROW_GROUP_ROWS
) -> str:
    """Write a frame as one Parquet file so readers see the old file or the whole new one.

    The folder is created when missing. The pandas index is not stored.

    :param frame: the data (a pandas DataFrame or an Arrow table).
    :param uri: local path or fsspec URI of the file; an existing file is replaced.
    :param row_group_size: rows per Parquet row group (readers stream one group at a time).
    :returns: ``uri``.
    """
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    with atomic_output(uri) as sink:
        pq.write_table(table, sink, row_group_size=row_group_size)
    return uri


# ``.<target name>.<32 hex>.tmp``: the fixed-length token makes the target's name recoverable
# exactly, so a retry can find what a killed try of the same target left (and nothing else).
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}\.tmp")


def temporary_name(target: str) -> str:
    """A fresh name for a temporary file of ``target`` (a file name, not a path)."""
    return f".{target}.{uuid.uuid4().hex}.tmp"


def temporary_target(name: str) -> str | None:
    """The target file name of an :func:`atomic_output` temporary named ``name``, else ``None``."""
    found = _TEMPORARY.fullmatch(name)
    return found.group("target") if found else None


@contextmanager
def atomic_output(uri: str) -> Iterator[Any]:
    """Open ``uri`` for binary writing through a temporary name in the same folder.

    On a clean exit the temporary file is renamed over ``uri`` (``os.replace`` locally,
    ``fs.mv`` elsewhere); on an error it is removed and ``uri`` is left untouched. The temporary
    name starts with a dot, so :func:`load_frame` never reads a file that is still being written,
    and names its target (:func:`temporary_target`), so a killed writer's leftover can be found.

    :param uri: local path or fsspec URI of the final file.
    :yields: a writable binary file object (an Arrow ``NativeFile`` for local paths).
    """
    fs, path = _url_to_fs(uri)
    local = isinstance(fs, LocalFileSystem)
    # fsspec hands out "/"-separated paths for every filesystem, the local one included.
    parent, base = posixpath.split(path)
    tmp = posixpath.join(parent, temporary_name(base))
    try:
        if parent:
            fs.makedirs(parent, exist_ok=True)
        # Arrow's own file object avoids a Python call per write on the local fast path.
        sink = pa.OSFile(tmp, "wb") if local else fs.open(tmp, "wb")
    except Exception as exc:
        failure = storage_failure(exc, uri, "write")
        if failure is None:
            raise
        raise failure from exc
    try:
        with sink:
            yield sink
        if local:
            os.replace(tmp, path)
        else:
            fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def prepare_dataset(spec: DataSpec, out_dir: str) -> PreparedData:
    """Load the configured columns, check the label, and write a reproducible split.

    Reads only the key, feature and target columns, checks that each exists, that the target
    has no nulls and at least two classes, then splits with ``spec.seed`` and
    ``spec.holdout_fraction`` (per class when ``spec.stratify``). Both parts keep the source's
    row order and are written atomically as ``train.parquet`` and ``holdout.parquet``.

    :param spec: the data description from the model config.
    :param out_dir: local path or fsspec URI of the folder to write to (created when missing).
    :raises DataError: naming the column, the count and the source when a check fails.
    """
    if not 0.0 < spec.holdout_fraction < 1.0:
        raise DataError(
            f"holdout_fraction must be between 0 and 1, got {spec.holdout_fraction} "
            f"(data {spec.uri})"
        )
    columns = list(dict.fromkeys((*spec.key_columns, *spec.features, spec.target)))
    # Hash before reading: if the source changes meanwhile, the recorded hash is the older one
    # and a rerun shows a different hash, rather than the hash of data nobody trained on.
    digest = fingerprint(spec.uri)
    frame = load_frame(spec.uri, spec.format, columns)

    target = frame[spec.target]
    nulls = int(target.isna().sum())
    if nulls:
        raise DataError(f"target column `{spec.target}` has {nulls} nulls in {spec.uri}")
    counts = target.value_counts(sort=False).sort_index()
    if len(counts) < 2:
        raise DataError(
            f"target column `{spec.target}` has a single class ({_label(counts.index[0])!r}) in "
            f"{spec.uri}; a classifier needs at least 2"
        )
    if spec.stratify and counts.min() < 2:
        raise DataError(
            f"target column `{spec.target}` has only 1 row of class {_label(counts.idxmin())!r} "
            f"in {spec.uri}; "
            "a stratified split needs at least 2 per class (or set stratify: false)"
        )

    train_idx, holdout_idx = split_indices(
        target.to_numpy(), spec.holdout_fraction, spec.seed, spec.stratify
    )
    train_uri = _join(out_dir, "train.parquet")
    holdout_uri = _join(out_dir, "holdout.parquet")
    write_parquet_atomic(frame.iloc[train_idx], train_uri)
    write_parquet_atomic(frame.iloc[holdout_idx], holdout_uri)
    return PreparedData(
        data_uri=spec.uri,
        sha256=digest,
        rows=len(frame),
        train_uri=train_uri,
        holdout_uri=holdout_uri,
        train_rows=len(train_idx),
        holdout_rows=len(holdout_idx),
        target=spec.target,
        class_counts={str(label): int(n) for label, n in counts.items()},
    )


def split_indices(
    y: np.ndarray, holdout_fraction: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and the holdout rows, each in ascending order.

    The same labels, fraction and seed always give the same split. The holdout has
    ``round(fraction * rows)`` rows; stratified, each class gives its share of them (rounded),
    at least one row and never all of its rows.

    :param y: the labels, one per row.
    :param holdout_fraction: share of rows for the holdout, between 0 and 1.
    :param seed: seed of the NumPy generator that picks the holdout rows.
    :param stratify: pick per class so both parts keep the label balance.
    """
    n = len(y)
    if n < 2:
        raise DataError(f"cannot split {n} row(s) into a training and a holdout part")
    rng = np.random.default_rng(seed)
    holdout = np.zeros(n, dtype=bool)
    if stratify:
        codes = pd.factorize(y, sort=True)[0]
        groups = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]
    else:
        groups = [np.arange(n)]
    sizes = np.array([len(members) for members in groups])
    exact = holdout_fraction * sizes
    # Every class keeps at least one row on each side, so both parts see every label.
    take = np.clip(np.floor(exact).astype(np.int64), 1, sizes - 1)
    # Rows lost to rounding down go to the classes that lost the most, so the holdout has
    # round(fraction * rows) rows in total, as an unstratified split would.
    short = max(round(holdout_fraction * n) - int(take.sum()), 0)
    room = np.flatnonzero(take < sizes - 1)
    ranked = room[np.argsort((take - exact)[room], kind="stable")]
    take[ranked[:short]] += 1
    for members, count in zip(groups, take, strict=True):
        holdout[rng.permutation(members)[:count]] = True
    return np.flatnonzero(~holdout), np.flatnonzero(holdout)


def _label(value: Any) -> Any:
    """A NumPy scalar as the plain Python value, so messages show ``1`` not ``np.int64(1)``."""
    return value.item() if isinstance(value, np.generic) else value


def _url_to_fs(uri: str) -> tuple[AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        # Unknown protocol, or the protocol's package (s3fs, gcsfs ...) is not installed.
        raise DataError(f"cannot open {uri}: {exc}") from exc


def shown(fs: AbstractFileSystem, name: str, uri: str) -> str:
    """``name`` (a path as ``fs`` lists it, without its protocol) as the user wrote ``uri``.

    Messages must name what a user can paste: ``s3://bucket/key``, not ``bucket/key``.
    """
    if "://" not in uri or uri.startswith("file://"):
        return name
    return str(fs.unstrip_protocol(name))


def _reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    if isinstance(exc, FileNotFoundError):
        return "No such file or directory"
    return str(exc) or type(exc).__name__


def _data_files(fs: AbstractFileSystem, path: str, uri: str) -> tuple[list[str], bool]:
    """The files to read under ``path`` (sorted) and whether ``path`` is a folder.

    Object stores are asked afresh: a listing this process cached earlier (s3fs keeps one per
    folder, sizes and ETags included) would hide files written since by another process, and
    stale sizes make a rewritten file unreadable.
    """
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
        if info["type"] != "directory":
            if info.get("size") == 0:
                raise DataError(f"{uri} has no rows: the file is empty (0 bytes)")
            return [path], False
        base = path.rstrip("/") + "/"
        found = fs.find(path, detail=True)
    except DataError:
        raise
    except Exception as exc:
        failure = storage_failure(exc, uri)
        if failure is None:
            raise
        raise failure from exc
    files = []
    for name, detail in sorted(found.items()):
        parts = name[len(base) :].split("/")
        if any(part.startswith((".", "_")) for part in parts):
            continue
        if detail.get("size") == 0:
            raise DataError(
                f"{shown(fs, name, uri)} (in {uri}) is empty (0 bytes); remove or rewrite it"
            )
        files.append(name)
    if not files:
        raise DataError(f"{uri} has no rows: the folder holds no data files")
    return files, True


def _detect_format(files: list[str], format: str, uri: str) -> str:
    if format != "auto":
        return format
    kinds = {"csv" if f.lower().endswith(_CSV_SUFFIXES) else "parquet" for f in files}
    if len(kinds) > 1:
        raise DataError(f"{uri} mixes CSV and Parquet files; set data.format or split the folder")
    return kinds.pop()


def _check_columns(present: list[str], wanted: list[str] | None, where: str) -> None:
    missing = [c for c in wanted or () if c not in present]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; columns present: {present}")


def _arrow_fs(fs: AbstractFileSystem) -> Any:
    import pyarrow.fs as pafs

    if isinstance(fs, LocalFileSystem):
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def _read_parquet(
    fs: AbstractFileSystem,
    files: list[str],
    base_dir: str | None,
    columns: list[str] | None,
    uri: str,
) -> pd.DataFrame:
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(
            files,
            filesystem=_arrow_fs(fs),
            format="parquet",
            partitioning="hive" if base_dir else None,
            partition_base_dir=base_dir,
        )
        _check_columns(dataset.schema.names, columns, uri)
        table = dataset.to_table(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise _parquet_error(fs, files, uri, exc) from exc
    return table.to_pandas()


def _parquet_error(fs: AbstractFileSystem, files: list[str], uri: str, exc: Exception) -> DataError:
    """Name the first file whose Parquet footer cannot be read, else report the Arrow error."""
    for name in files:
        try:
            with fs.open(name, "rb") as handle:
                pq.read_metadata(handle)
        except (pa.ArrowException, OSError) as bad:
            return DataError(f"{shown(fs, name, uri)} is not a readable Parquet file: {bad}")
    return DataError(f"cannot read Parquet data {uri}: {exc}")


def _read_csv(
    fs: AbstractFileSystem, files: list[str], columns: list[str] | None, uri: str
) -> pd.DataFrame:
    frames = []
    for name in files:
        where = shown(fs, name, uri)
        try:
            if columns is not None:
                with fs.open(name, "rb", compression="infer") as handle:
                    present = list(pd.read_csv(handle, nrows=0).columns)
                _check_columns(present, columns, where if len(files) > 1 else uri)
            with fs.open(name, "rb", compression="infer") as handle:
                frames.append(pd.read_csv(handle, usecols=columns))
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{where} has no rows: it holds no CSV header or data") from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{where} is not a readable CSV file: {exc}") from exc
        except OSError as exc:
            raise DataError(f"cannot read {where}: {_reason(exc)}") from exc
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame[columns] if columns is not None else frame


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name
