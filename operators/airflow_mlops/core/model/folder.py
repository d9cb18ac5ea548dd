"""A model folder: an ONNX file plus JSON metadata, never a pickle.

::

    model.onnx
    model.json   {"name", "version", "numeric_features", "categorical_features", "classes",
                  "input_types": {column: "double" | "long" | "string"}}

Packaging writes it into the serving image (:func:`write_model_folder`); the scoring server and
the batch scorer in a pod read it (:func:`read_model_folder`). Both files are written under a
temporary name and renamed, so a reader never sees half a file. Standard library only: the
serving image reads it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "INPUT_TYPES",
    "META_FILE",
    "MODEL_FILE",
    "ModelFolderError",
    "ModelMeta",
    "read_model_folder",
    "write_model_folder",
]

MODEL_FILE = "model.onnx"
META_FILE = "model.json"
INPUT_TYPES = ("double", "float", "long", "integer", "boolean", "string")


class ModelFolderError(MLOpsError, RuntimeError):
    """A model folder or metadata that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class ModelMeta:
    """What a scorer needs to know about a version besides its ONNX graph.

    :param name: registered model name.
    :param version: version label.
    :param numeric_features: numeric input columns (float32 in the graph, NaN = missing).
    :param categorical_features: string input columns ("" = missing in the graph).
    :param classes: class labels in the order of the ``probabilities`` output.
    :param input_types: the signature type per column (``double``/``long``/``string``); a
        ``long`` column refuses non-integral numbers.
    """

    name: str
    version: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    classes: tuple[Any, ...]
    input_types: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = META_FILE) -> ModelMeta:
        """Check and build; errors (:class:`ModelFolderError`) name the key and ``where``."""
        if not isinstance(raw, dict):
            raise ModelFolderError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        for key in ("name", "version", "numeric_features", "categorical_features", "classes"):
            if key not in raw:
                raise ModelFolderError(f"{where}: missing key {key!r}")
        numeric = tuple(str(c) for c in raw["numeric_features"] or ())
        categorical = tuple(str(c) for c in raw["categorical_features"] or ())
        classes = tuple(raw["classes"] or ())
        if not classes:
            raise ModelFolderError(f"{where}: 'classes' is empty")
        if not numeric and not categorical:
            raise ModelFolderError(f"{where}: no feature columns")
        types = {c: "double" for c in numeric} | {c: "string" for c in categorical}
        for col, kind in dict(raw.get("input_types") or {}).items():
            if kind not in INPUT_TYPES:
                raise ModelFolderError(
                    f"{where}: input_types[{col!r}] = {kind!r}; expected one of {INPUT_TYPES}"
                )
            if col in types:
                types[col] = kind
        return cls(
            name=str(raw["name"]),
            version=str(raw["version"]),
            numeric_features=numeric,
            categorical_features=categorical,
            classes=classes,
            input_types=types,
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``model.json`` content (lists, not tuples)."""
        out = asdict(self)
        for key in ("numeric_features", "categorical_features", "classes"):
            out[key] = list(out[key])
        return out


def _replace(target: Path, write: Any) -> None:
    # A name of its own per writer: two tasks packaging the same version do not share a file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def write_model_folder(
    dst: str | os.PathLike[str], onnx_path: str | os.PathLike[str], meta: ModelMeta | dict
) -> Path:
    """Write ``dst/model.onnx`` + ``dst/model.json`` (metadata checked first); returns ``dst``.

    The ONNX file goes first and the metadata last, each renamed into place, so a folder whose
    ``model.json`` is new has its new model too.
    """
    meta = meta if isinstance(meta, ModelMeta) else ModelMeta.from_dict(meta, "meta")
    folder = Path(dst)
    folder.mkdir(parents=True, exist_ok=True)
    _replace(folder / MODEL_FILE, lambda tmp: shutil.copyfile(onnx_path, tmp))
    body = json.dumps(meta.to_dict(), indent=2, default=str)
    _replace(folder / META_FILE, lambda tmp: tmp.write_text(body))
    return folder


def read_model_folder(path: str | os.PathLike[str]) -> tuple[ModelMeta, Path]:
    """Read a model folder; returns its metadata and the ONNX file path.

    :raises ModelFolderError: a file is missing, ``model.json`` is not valid JSON or lacks a key.
    """
    folder = Path(path)
    onnx_file, meta_file = folder / MODEL_FILE, folder / META_FILE
    for f in (onnx_file, meta_file):
        if not f.is_file():
            raise ModelFolderError(f"model folder {folder} lacks {f.name}")
    try:
        text = meta_file.read_text()
    except OSError as exc:
        raise ModelFolderError(f"{meta_file}: cannot read the model metadata ({exc})") from exc
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ModelFolderError(f"{meta_file}: not valid JSON ({exc})") from exc
    return ModelMeta.from_dict(raw, str(meta_file)), onnx_file
