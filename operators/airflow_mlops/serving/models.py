"""Model versions the server can answer with: an ONNX file plus JSON metadata, never a pickle.

A version comes from the MLflow registry (``models:/<name>/<version>``: the ONNX artifact and the
``model_config`` of its MLmodel file) or from a local model folder::

    model.onnx
    model.json   {"name", "version", "numeric_features", "categorical_features", "classes",
                  "input_types": {column: "double" | "long" | "string"}}

The folder is :mod:`airflow_mlops.core.model.folder`'s (the packaging step writes it with
:func:`write_model_folder`; the server reads it with :func:`read_model_folder`, both re-exported
here). MLflow is imported only to download a registered version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from airflow_mlops.core.model.feed import (
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    check_row_feed,
)
from airflow_mlops.core.model.folder import (
    INPUT_TYPES,
    ModelFolderError,
    ModelMeta,
    read_model_folder,
    write_model_folder,
)
from airflow_mlops.core.model.reference import MODELS_SCHEME, ModelRefError, parse_models_uri
from airflow_mlops.core.model.session import load_session

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

__all__ = [
    "LoadError",
    "LoadedVersion",
    "ModelMeta",
    "load_version",
    "meta_from_mlmodel",
    "read_model_folder",
    "write_model_folder",
]


class LoadError(ModelFolderError):
    """A version that cannot serve; the message names the version, the source and why."""


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
            if isinstance(spec, dict) and spec.get("name") and spec.get("type") in INPUT_TYPES:
                types[spec["name"]] = spec["type"]
    try:
        return ModelMeta.from_dict(
            {**cfg, "name": name, "version": version, "input_types": types}, str(mlmodel_path)
        )
    except ModelFolderError as exc:
        raise LoadError(str(exc)) from exc


@dataclass
class LoadedVersion:
    """One version ready to answer: its metadata and an ONNX Runtime session."""

    version: str
    source: str
    meta: ModelMeta
    session: onnxruntime.InferenceSession
    label_kind: str
    load_seconds: float
    download_dir: str | None = None

    def release(self) -> None:
        """Remove the version's downloaded files (``models:/`` sources); the session keeps
        the graph in memory, so requests in flight are unaffected."""
        folder, self.download_dir = self.download_dir, None
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed the download of version %s (%s)", self.version, folder)

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``[N]`` and probabilities ``[N, n_classes]`` for a feed."""
        label, proba = self.session.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], feed)
        return np.asarray(label).reshape(-1), np.asarray(proba)


def _download(
    source: str, tracking_uri: str | None, cache_dir: str | None
) -> tuple[ModelMeta, Path, str]:
    """Download a registered version (lazy mlflow import); read its metadata.

    Returns the metadata, the ONNX file and the download folder (removed here on failure).
    """
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise LoadError(
            f"{source}: no MLflow tracking URI (set tracking_uri or MLFLOW_TRACKING_URI)"
        )
    tracking = TrackingConfig(tracking_uri=uri)
    try:
        name, rest = parse_models_uri(source)
    except ModelRefError as exc:
        raise LoadError(str(exc)) from exc
    found = registry.get_version(tracking, name, rest)
    if found is None:
        raise LoadError(f"{source}: no such version in the registry at {uri}")
    dst = tempfile.mkdtemp(prefix=f"mlops-serve-{name}-{found.version}-", dir=cache_dir)
    try:
        onnx_path = Path(registry.download_onnx(tracking, f"models:/{name}/{found.version}", dst))
        mlmodels = sorted(Path(dst).rglob("MLmodel"))
        if not mlmodels:
            classes = json.loads(found.tags.get("mlops.classes", "[]"))
            raise LoadError(f"{source}: downloaded version has no MLmodel file (classes {classes})")
        meta = meta_from_mlmodel(mlmodels[0], name, found.version)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return meta, onnx_path, dst


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
    download: list[str] = []
    try:
        loaded = _load_checked(version, source, tracking_uri, threads, cache_dir, download)
    except BaseException:
        for folder in download:  # a version that cannot serve leaves no download behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def _load_checked(
    version: str,
    source: str,
    tracking_uri: str | None,
    threads: int,
    cache_dir: str | None,
    download: list[str],
) -> LoadedVersion:
    try:
        if source.startswith(MODELS_SCHEME):
            meta, onnx_path, folder = _download(source, tracking_uri, cache_dir)
            download.append(folder)
        else:
            meta, onnx_path = read_model_folder(source)
        # Spinning intra-op threads, ONNX Runtime's default: a request does not wait for a wake-up.
        session = load_session(onnx_path, threads, spinning=True)
    except ModelFolderError as exc:
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
    if not {LABEL_OUTPUT, PROBABILITIES_OUTPUT} <= outputs:
        raise LoadError(
            f"version {version} from {source}: ONNX outputs {sorted(outputs)} lack "
            "'label' and 'probabilities'"
        )
    label_type = next(o.type for o in session.get_outputs() if o.name == LABEL_OUTPUT)
    loaded = LoadedVersion(
        version=version,
        source=source,
        meta=meta,
        session=session,
        label_kind="string" if "string" in label_type else "long",
        load_seconds=0.0,
        download_dir=download[0] if download else None,
    )
    try:
        _, proba = loaded.run(check_row_feed(meta.numeric_features, meta.categorical_features))
    except Exception as exc:
        raise LoadError(
            f"version {version} from {source}: check run failed: {type(exc).__name__}: {exc}"
        ) from exc
    if proba.shape != (1, len(meta.classes)):
        raise LoadError(
            f"version {version} from {source}: probabilities shape {proba.shape} does not "
            f"match {len(meta.classes)} classes"
        )
    return loaded
