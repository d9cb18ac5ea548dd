"""Model versions the server can answer with: an ONNX file plus JSON metadata, never a pickle.

A version comes from the MLflow registry (``models:/<name>/<version>``: the ONNX artifact and the
``model_config`` of its MLmodel file) or from a local model folder::

    model.onnx
    model.json   {"name", "version", "numeric_features", "categorical_features", "classes",
                  "input_types": {column: "double" | "long" | "string"}}

The packaging step writes the folder with :func:`write_model_folder`; the server reads it with
:func:`read_model_folder`. MLflow is imported only to download a registered version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_mlops.exceptions import MLOpsError

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "LoadError",
    "LoadedVersion",
    "ModelMeta",
    "load_version",
    "meta_from_mlmodel",
    "read_model_folder",
    "write_model_folder",
]

MODEL_FILE = "model.onnx"
META_FILE = "model.json"
_TYPES = ("double", "float", "long", "integer", "boolean", "string")


class LoadError(MLOpsError, RuntimeError):
    """A version that cannot serve; the message names the version, the source and why."""


@dataclass(frozen=True)
class ModelMeta:
    """What the server needs to know about a version besides its ONNX graph.

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
    def from_dict(cls, raw: dict[str, Any], where: str = "model.json") -> ModelMeta:
        """Check and build; errors name the key and ``where``."""
        if not isinstance(raw, dict):
            raise LoadError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        for key in ("name", "version", "numeric_features", "categorical_features", "classes"):
            if key not in raw:
                raise LoadError(f"{where}: missing key {key!r}")
        numeric = tuple(str(c) for c in raw["numeric_features"] or ())
        categorical = tuple(str(c) for c in raw["categorical_features"] or ())
        classes = tuple(raw["classes"] or ())
        if not classes:
            raise LoadError(f"{where}: 'classes' is empty")
        if not numeric and not categorical:
            raise LoadError(f"{where}: no feature columns")
        types = {c: "double" for c in numeric} | {c: "string" for c in categorical}
        for col, kind in dict(raw.get("input_types") or {}).items():
            if kind not in _TYPES:
                raise LoadError(
                    f"{where}: input_types[{col!r}] = {kind!r}; expected one of {_TYPES}"
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
        out = asdict(self)
        for key in ("numeric_features", "categorical_features", "classes"):
            out[key] = list(out[key])
        return out


def write_model_folder(
    dst: str | os.PathLike[str], onnx_path: str | os.PathLike[str], meta: ModelMeta | dict
) -> Path:
    """Write ``dst/model.onnx`` + ``dst/model.json`` (checked first); returns ``dst``."""
    meta = meta if isinstance(meta, ModelMeta) else ModelMeta.from_dict(meta, "meta")
    folder = Path(dst)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / MODEL_FILE)
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta.to_dict(), indent=2, default=str))
    tmp.replace(folder / META_FILE)
    return folder


def read_model_folder(path: str | os.PathLike[str]) -> tuple[ModelMeta, Path]:
    """Read a model folder; returns its metadata and the ONNX file path."""
    folder = Path(path)
    onnx_file, meta_file = folder / MODEL_FILE, folder / META_FILE
    for f in (onnx_file, meta_file):
        if not f.is_file():
            raise LoadError(f"model folder {folder} lacks {f.name}")
    try:
        raw = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise LoadError(f"{meta_file}: not valid JSON ({exc})") from exc
    return ModelMeta.from_dict(raw, str(meta_file)), onnx_file


def meta_from_mlmodel(mlmodel_path: str | os.PathLike[str], name: str, version: str) -> ModelMeta:
    """Metadata from a registered version's MLmodel file (``model_config`` + signature types)."""
    import yaml

    doc = yaml.safe_load(Path(mlmodel_path).read_text()) or {}
    cfg = None
    # ``log_model(model_config=...)`` lands as ``config`` in the pyfunc flavor.
    for flavor in (doc.get("flavors") or {}).values():
        if isinstance(flavor, dict):
            cfg = cfg or flavor.get("model_config") or flavor.get("config")
    cfg = cfg or doc.get("model_config")
    if not cfg:
        raise LoadError(f"{mlmodel_path}: no model_config (features and classes) in MLmodel")
    types: dict[str, str] = {}
    inputs = (doc.get("signature") or {}).get("inputs")
    if inputs:
        for spec in json.loads(inputs) if isinstance(inputs, str) else inputs:
            if isinstance(spec, dict) and spec.get("name") and spec.get("type") in _TYPES:
                types[spec["name"]] = spec["type"]
    return ModelMeta.from_dict(
        {**cfg, "name": name, "version": version, "input_types": types}, str(mlmodel_path)
    )


@dataclass
class LoadedVersion:
    """One version ready to answer: its metadata and an ONNX Runtime session."""

    version: str
    source: str
    meta: ModelMeta
    session: onnxruntime.InferenceSession
    label_kind: str
    load_seconds: float

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``[N]`` and probabilities ``[N, n_classes]`` for a feed."""
        label, proba = self.session.run(["label", "probabilities"], feed)
        return np.asarray(label).reshape(-1), np.asarray(proba)


def _download(
    source: str, tracking_uri: str | None, cache_dir: str | None
) -> tuple[ModelMeta, Path]:
    """Download a registered version (lazy mlflow import); read its metadata."""
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise LoadError(
            f"{source}: no MLflow tracking URI (set tracking_uri or MLFLOW_TRACKING_URI)"
        )
    tracking = TrackingConfig(tracking_uri=uri)
    ref = source[len("models:/") :]
    name, sep, rest = ref.partition("/")
    if not sep:
        name, _, rest = ref.partition("@")
    found = registry.get_version(tracking, name, rest)
    if found is None:
        raise LoadError(f"{source}: no such version in the registry at {uri}")
    dst = tempfile.mkdtemp(prefix=f"mlops-serve-{name}-{found.version}-", dir=cache_dir)
    onnx_path = Path(registry.download_onnx(tracking, f"models:/{name}/{found.version}", dst))
    mlmodels = sorted(Path(dst).rglob("MLmodel"))
    if mlmodels:
        meta = meta_from_mlmodel(mlmodels[0], name, found.version)
    else:
        classes = json.loads(found.tags.get("mlops.classes", "[]"))
        raise LoadError(f"{source}: downloaded version has no MLmodel file (classes {classes})")
    return meta, onnx_path


def _session(onnx_path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def load_version(
    version: str,
    source: str,
    *,
    tracking_uri: str | None = None,
    threads: int = 1,
    cache_dir: str | None = None,
) -> LoadedVersion:
    """Load a version and prove it answers one row; :class:`LoadError` names what failed.

    The check run (one all-missing row) is the health check: a version that loads but cannot
    score is refused before it can receive traffic.
    """
    started = time.perf_counter()
    try:
        if source.startswith("models:/"):
            meta, onnx_path = _download(source, tracking_uri, cache_dir)
        else:
            meta, onnx_path = read_model_folder(source)
        session = _session(onnx_path, threads)
    except LoadError as exc:
        raise LoadError(f"version {version}: {exc}") from exc
    except Exception as exc:
        raise LoadError(f"version {version} from {source}: {type(exc).__name__}: {exc}") from exc
    inputs = {i.name for i in session.get_inputs()}
    features = set(meta.numeric_features) | set(meta.categorical_features)
    if inputs != features:
        raise LoadError(
            f"version {version} from {source}: ONNX inputs {sorted(inputs)} differ from the "
            f"metadata features (missing {sorted(features - inputs)}, "
            f"extra {sorted(inputs - features)})"
        )
    outputs = {o.name for o in session.get_outputs()}
    if not {"label", "probabilities"} <= outputs:
        raise LoadError(
            f"version {version} from {source}: ONNX outputs {sorted(outputs)} lack "
            "'label' and 'probabilities'"
        )
    label_type = next(o.type for o in session.get_outputs() if o.name == "label")
    loaded = LoadedVersion(
        version=version,
        source=source,
        meta=meta,
        session=session,
        label_kind="string" if "string" in label_type else "long",
        load_seconds=0.0,
    )
    feed: dict[str, np.ndarray] = {
        c: np.full((1, 1), np.nan, np.float32) for c in meta.numeric_features
    }
    feed |= {c: np.array([[""]], dtype=object) for c in meta.categorical_features}
    try:
        _, proba = loaded.run(feed)
    except Exception as exc:
        raise LoadError(
            f"version {version} from {source}: check run failed: {type(exc).__name__}: {exc}"
        ) from exc
    if proba.shape != (1, len(meta.classes)):
        raise LoadError(
            f"version {version} from {source}: probabilities shape {proba.shape} does not "
            f"match {len(meta.classes)} classes"
        )
    loaded.load_seconds = time.perf_counter() - started
    return loaded
