"""Request parsing: the MLflow scoring protocol and the Open Inference Protocol (KServe v2).

Both protocols end in the same place: a ``{column: [values]}`` mapping (:class:`ColumnBatch`)
that :func:`airflow_mlops.serving.feed.build_feed` checks against the answering version's
signature (the validation rules are documented there). Errors are :class:`ProtocolError`: an
HTTP status and a message that names the field.
"""

from __future__ import annotations

import itertools
import json as _json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_mlops.exceptions import MLOpsError
from airflow_mlops.serving.models import ModelMeta

_orjson: Any
try:  # orjson parses ~5x and writes ~3x faster than the stdlib on these documents.
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = [
    "ColumnBatch",
    "ProtocolError",
    "dumps",
    "loads",
    "mlflow_columns",
    "mlflow_response",
    "v2_columns",
    "v2_metadata",
    "v2_response",
]

INVALID = "INVALID_PARAMETER_VALUE"
LIMIT = "RESOURCE_LIMIT_EXCEEDED"
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# What JSON gives a valid cell: numeric columns take numbers or null, categorical strings or null.
NUMBER_TYPES: frozenset[type] = frozenset({int, float, type(None)})
STRING_TYPES: frozenset[type] = frozenset({str, type(None)})
_V2_NUMERIC = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)


class ProtocolError(MLOpsError):
    """A request the server refuses; ``status`` is the HTTP code, the message names the field."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        error_code: str = INVALID,
        reason: str = "invalid_input",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.reason = reason


def loads(body: bytes) -> Any:
    """Parse a JSON body; malformed JSON is a 400 naming the position."""
    try:
        if _orjson is not None:
            return _orjson.loads(body)
        return _json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed JSON body: {exc}", reason="malformed_json") from exc


def dumps(obj: Any) -> bytes:
    """Serialise a response document."""
    if _orjson is not None:
        return _orjson.dumps(obj)
    return _json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


@dataclass
class ColumnBatch:
    """Parsed request rows, column-wise (values as JSON gave them)."""

    columns: dict[str, list[Any]]
    rows: int
    request_id: str | None = None
    outputs: tuple[str, ...] | None = None


def _check_rows(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise ProtocolError(
            f"too many rows: {rows} (limit {max_rows}); split the request",
            status=413,
            error_code=LIMIT,
            reason="too_many_rows",
        )
    if rows == 0:
        raise ProtocolError("the request has no rows", reason="no_rows")


def _records(records: Any, where: str, max_rows: int) -> ColumnBatch:
    if not isinstance(records, list):
        raise ProtocolError(f"{where}: expected a list of records, got {type(records).__name__}")
    _check_rows(len(records), max_rows)
    names: dict[str, None] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ProtocolError(f"{where}[{i}]: expected an object, got {type(rec).__name__}")
        if i == 0 or rec.keys() != names.keys():
            names.update(dict.fromkeys(rec))
    if len(records) == 1:
        return ColumnBatch({c: [v] for c, v in records[0].items()}, 1)
    missing = ABSENT
    return ColumnBatch({c: [r.get(c, missing) for r in records] for c in names}, len(records))


def _columnar(data: dict[str, Any], where: str, max_rows: int) -> ColumnBatch:
    columns: dict[str, list[Any]] = {}
    rows = None
    for name, values in data.items():
        values = values if isinstance(values, list) else [values]
        if rows is None:
            rows = len(values)
            _check_rows(rows, max_rows)
        elif len(values) != rows:
            raise ProtocolError(
                f"{where}: column {name!r} has {len(values)} values, the first column {rows}"
            )
        columns[str(name)] = values
    if rows is None:
        raise ProtocolError(f"{where}: no columns")
    return ColumnBatch(columns, rows)


class _AbsentType:
    """A value absent from one record (distinct from ``null``)."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _AbsentType()


def mlflow_columns(doc: Any, max_rows: int) -> ColumnBatch:
    """Columns from an MLflow scoring request (``dataframe_split``, ``dataframe_records``,
    ``instances`` or ``inputs``; a ``params`` key is accepted and ignored)."""
    if not isinstance(doc, dict):
        raise ProtocolError(
            f"expected a JSON object with one of the keys {list(MLFLOW_FORMATS)}, "
            f"got a {type(doc).__name__}"
        )
    keys = [k for k in doc if k in MLFLOW_FORMATS]
    others = [k for k in doc if k not in MLFLOW_FORMATS and k != "params"]
    if len(keys) != 1 or others:
        raise ProtocolError(
            f"the request must have exactly one of the keys {list(MLFLOW_FORMATS)}; got keys "
            f"{list(doc)}"
        )
    key = keys[0]
    data = doc[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise ProtocolError("dataframe_split: expected {'columns': [...], 'data': [[...]]}")
        names = [str(c) for c in data["columns"]]
        twice = sorted({c for c in names if names.count(c) > 1})
        if twice:
            raise ProtocolError(
                f"dataframe_split.columns: {twice} given more than once; name each column once"
            )
        rows = data.get("data")
        if not isinstance(rows, list):
            raise ProtocolError("dataframe_split.data: expected a list of rows")
        _check_rows(len(rows), max_rows)
        width = len(names)
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                raise ProtocolError(
                    f"dataframe_split.data[{i}]: expected a list of {width} values "
                    f"(one per column), got {row!r:.80}"
                )
        # zip(*rows) transposes in C: one list per column.
        return ColumnBatch(
            dict(zip(names, map(list, zip(*rows, strict=True)), strict=True)), len(rows)
        )
    if key == "dataframe_records":
        return _records(data, key, max_rows)
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return _records(data, key, max_rows)
        raise ProtocolError(
            f"{key}: expected a list of records or an object of columns; tensor input is not "
            "supported by this tabular model"
        )
    if isinstance(data, dict):
        return _columnar(data, key, max_rows)
    raise ProtocolError(f"{key}: expected records or columns, got {type(data).__name__}")


# The values each integer datatype can hold; a value outside is refused, never wrapped.
_INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
# The largest finite value of each float datatype (FP64's is what JSON numbers can hold).
_FLOAT_MAX = {"FP16": 65504.0, "FP32": float(np.finfo(np.float32).max), "FP64": math.inf}


def _flatten(name: str, data: list[Any]) -> list[Any]:
    """Row-major values of a tensor given flat (``[1, 2]``) or nested one level
    (``[[1], [2]]``); a mix of the two is ambiguous and refused."""
    nested = [isinstance(v, list) for v in data]
    if not any(nested):
        return data
    if not all(nested) or any(isinstance(v, list) for row in data for v in row):
        raise ProtocolError(
            f"input {name!r}: data must be a flat list or a list of rows of values, not a mix"
        )
    return list(itertools.chain.from_iterable(data))


def _shape(name: str, shape: Any, count: int) -> None:
    """``[N]`` or ``[N, 1]`` of whole numbers, holding the tensor's ``count`` values."""
    valid = (
        isinstance(shape, list)
        and 1 <= len(shape) <= 2
        and all(type(s) is int and s >= 0 for s in shape)
    )
    if not valid or math.prod(shape) != count or (len(shape) == 2 and shape[1] != 1):
        raise ProtocolError(
            f"input {name!r}: shape {shape!r:.80} must be [N] or [N, 1] (whole numbers) and "
            f"hold its {count} values"
        )


def _in_range(name: str, datatype: str, data: list[Any]) -> None:
    """Refuse numbers the declared datatype cannot hold (UINT8 300, FP32 1e39, INT64 2.5)."""
    if datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        for row, v in enumerate(data):
            if v is None:
                continue
            whole = type(v) is int or (type(v) is float and v.is_integer())
            if not whole or not low <= v <= high:
                raise ProtocolError(
                    f"input {name!r} row {row}: {v!r:.40} is not a {datatype} value "
                    f"(whole numbers {low}..{high})",
                    reason="out_of_range",
                )
    elif datatype in _FLOAT_MAX:
        limit = _FLOAT_MAX[datatype]
        for row, v in enumerate(data):
            if type(v) in (int, float) and abs(v) > limit:
                raise ProtocolError(
                    f"input {name!r} row {row}: {v!r:.40} is out of range for {datatype}",
                    reason="out_of_range",
                )


def v2_columns(doc: Any, meta: ModelMeta, max_rows: int) -> ColumnBatch:
    """Columns from an Open Inference Protocol request: one input tensor per feature column,
    shape ``[N]`` or ``[N, 1]``, ``BYTES`` for categorical and a numeric datatype otherwise."""
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise ProtocolError("expected a JSON object with an 'inputs' list of tensors")
    numeric = set(meta.numeric_features)
    categorical = set(meta.categorical_features)
    columns: dict[str, list[Any]] = {}
    rows = None
    for i, tensor in enumerate(doc["inputs"]):
        if not isinstance(tensor, dict) or "name" not in tensor or "data" not in tensor:
            raise ProtocolError(f"inputs[{i}]: expected {{'name', 'shape', 'datatype', 'data'}}")
        name = str(tensor["name"])
        datatype = str(tensor.get("datatype", ""))
        if name in numeric and datatype not in _V2_NUMERIC:
            raise ProtocolError(
                f"input {name!r}: datatype {datatype!r} for a numeric column; use FP32/FP64/INT64"
            )
        if name in categorical and datatype != "BYTES":
            raise ProtocolError(
                f"input {name!r}: datatype {datatype!r} for a categorical column; use BYTES"
            )
        if name in columns:
            raise ProtocolError(f"input {name!r} is given twice; send each input once")
        data = tensor["data"]
        data = _flatten(name, data) if isinstance(data, list) else [data]
        _shape(name, tensor.get("shape"), len(data))
        _in_range(name, datatype, data)
        if rows is None:
            rows = len(data)
            _check_rows(rows, max_rows)
        elif len(data) != rows:
            raise ProtocolError(f"input {name!r}: {len(data)} rows, the first input has {rows}")
        columns[name] = data
    if rows is None:
        raise ProtocolError("'inputs' is empty")
    outputs = doc.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list):
            raise ProtocolError("'outputs' must be a list of {'name': ...}")
        wanted = tuple(str(o.get("name")) if isinstance(o, dict) else str(o) for o in outputs)
        unknown = [o for o in wanted if o not in ("label", "probabilities")]
        if unknown:
            raise ProtocolError(f"unknown output(s) {unknown}; outputs: label, probabilities")
    rid = doc.get("id")
    return ColumnBatch(columns, rows, str(rid) if rid is not None else None, wanted)


def mlflow_response(labels: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> bytes:
    """``{"predictions": [{"label": .., "probability_<c>": .., ...}, ...]}`` as
    ``mlflow models serve`` answers for the registered pyfunc (float64 probabilities)."""
    keys = [f"probability_{c}" for c in classes]
    probs = proba.astype(np.float64).tolist()
    preds = [
        {"label": label, **dict(zip(keys, p, strict=True))}
        for label, p in zip(labels.tolist(), probs, strict=True)
    ]
    return dumps({"predictions": preds})


def v2_response(
    name: str,
    version: str,
    batch: ColumnBatch,
    labels: np.ndarray,
    proba: np.ndarray,
    label_kind: str,
) -> bytes:
    """An Open Inference Protocol response: ``label`` [N] and ``probabilities`` [N, C]."""
    outputs = []
    wanted = batch.outputs or ("label", "probabilities")
    if "label" in wanted:
        outputs.append(
            {
                "name": "label",
                "datatype": "BYTES" if label_kind == "string" else "INT64",
                "shape": [int(labels.shape[0])],
                "data": labels.tolist(),
            }
        )
    if "probabilities" in wanted:
        outputs.append(
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [int(proba.shape[0]), int(proba.shape[1])],
                "data": proba.astype(np.float64).reshape(-1).tolist(),
            }
        )
    doc: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": outputs}
    if batch.request_id is not None:
        doc["id"] = batch.request_id
    return dumps(doc)


def v2_metadata(name: str, meta: ModelMeta, versions: Sequence[str], label_kind: str) -> dict:
    """Model metadata (Open Inference Protocol): inputs with datatypes, outputs, classes."""
    inputs = [
        {
            "name": c,
            "datatype": "INT64" if meta.input_types.get(c) in ("long", "integer") else "FP64",
            "shape": [-1, 1],
        }
        for c in meta.numeric_features
    ]
    inputs += [
        {"name": c, "datatype": "BYTES", "shape": [-1, 1]} for c in meta.categorical_features
    ]
    return {
        "name": name,
        "versions": list(versions),
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": [
            {
                "name": "label",
                "datatype": "BYTES" if label_kind == "string" else "INT64",
                "shape": [-1],
            },
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(meta.classes)]},
        ],
        "parameters": {"classes": list(meta.classes)},
    }
