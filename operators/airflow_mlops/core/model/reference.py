"""Resolve a model reference for scoring: a registered version or a local ONNX file.

Accepted references:

- ``models:/<name>@<alias>`` (e.g. ``models:/demo_churn@champion``): the alias is resolved to a
  concrete version once, by :func:`resolve_version`; every later step uses that version, so a
  champion that moves while a run is in progress cannot mix versions in one run.
- ``models:/<name>/<version>``;
- a bare version number or alias (``"3"``, ``"champion"``) together with a model ``name``;
- a local path (or ``file://`` URI) of an ``.onnx`` file, or of a folder holding one (such as a
  downloaded MLflow model folder).

Feature columns come from the ONNX graph inputs (``tensor(float)`` → numeric, ``tensor(string)``
→ categorical, in graph order) and the classes from the classifier node's labels; for a
registered version the ``model_config`` of its MLmodel file (written at registration) wins, then
the ``mlops.classes`` tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow_mlops import settings
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "MODELS_SCHEME",
    "ModelRefError",
    "ModelVersionRef",
    "ResolvedModel",
    "onnx_signature",
    "parse_models_uri",
    "parse_reference",
    "resolve_model",
    "resolve_version",
]

MODELS_SCHEME = "models:/"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")
_LABEL_ATTRS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class ModelRefError(MLOpsError, ValueError):
    """A model reference that cannot be resolved; the message names the model and the alias."""


@dataclass(frozen=True)
class ModelVersionRef:
    """A reference resolved to one concrete version (cheap: no download).

    :param name: registered model name (the file stem for a local file).
    :param version: the version number as text (``local-<sha12>`` for a local file).
    :param model_uri: ``models:/<name>/<version>`` (the path for a local file).
    :param reference: what was asked for, e.g. ``models:/demo_churn@champion``.
    """

    name: str
    version: str
    model_uri: str
    reference: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom)."""
        return asdict(self)


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to score: where its ONNX file is and what it expects.

    :param name: registered model name (or the local file's stem).
    :param version: the concrete version (``local-<sha12>`` for a local file).
    :param onnx_path: local path of the ONNX file.
    :param numeric_features: float inputs, in graph order.
    :param categorical_features: string inputs, in graph order.
    :param classes: class labels in the order of the ``probabilities`` output columns.
    :param model_uri: ``models:/<name>/<version>`` or the local path.
    """

    name: str
    version: str
    onnx_path: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    classes: tuple[Any, ...]
    model_uri: str

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric_features + self.categorical_features

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom)."""
        out = asdict(self)
        for key in ("numeric_features", "categorical_features", "classes"):
            out[key] = list(out[key])
        return out


def parse_models_uri(uri: str) -> tuple[str, str]:
    """``(name, version or alias)`` of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    The one parser of registry URIs (resolution, profiling and the scoring server use it).

    :raises ModelRefError: ``uri`` is not of either form.
    """
    text = str(uri).strip()
    match = _MODELS_URI.match(text)
    if not match:
        raise ModelRefError(
            f"model reference {text!r} is not models:/<name>/<version> or models:/<name>@<alias>"
        )
    return match["name"], match["version"] or match["alias"]


def parse_reference(reference: str, name: str | None = None) -> tuple[str, str | None, str]:
    """Split a reference into ``(kind, name, ref)``; kind is ``registry`` or ``local``.

    For the registry, ``ref`` is a version number or an alias; for a local file, the path.
    """
    text = str(reference).strip()
    if not text:
        raise ModelRefError("empty model reference; use models:/<name>@champion or a path")
    if text.startswith(MODELS_SCHEME):
        return "registry", *parse_models_uri(text)
    local = text.removeprefix("file://")
    if text.startswith("file://") or local.endswith(".onnx") or os.path.exists(local):
        return "local", name, local
    if name and re.fullmatch(r"\d+|[A-Za-z_][A-Za-z0-9_-]*", text):
        return "registry", name, text
    raise ModelRefError(
        f"model reference {text!r} is neither models:/<name>@<alias>, models:/<name>/<version>, "
        "a version/alias with a model name, nor an existing local .onnx file or folder"
    )


def _local_onnx(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        found = sorted(p.rglob("*.onnx"))
        if not found:
            raise ModelRefError(f"model folder {path} holds no .onnx file")
        return str(found[0])
    if not p.is_file():
        raise ModelRefError(f"model file {path} does not exist")
    return str(p)


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_version(
    reference: str, tracking: TrackingConfig | None = None, name: str | None = None
) -> ModelVersionRef:
    """Resolve an alias to a concrete version without downloading anything.

    :param reference: see the module docstring.
    :param tracking: where the registry is (required for registry references).
    :param name: the model name, for a bare version number or alias.
    :raises ModelRefError: naming the model and the alias or version when it does not exist.
    """
    kind, model_name, ref = parse_reference(reference, name)
    if kind == "local":
        onnx_path = _local_onnx(ref)
        return ModelVersionRef(
            name=model_name or Path(onnx_path).stem,
            version=f"local-{_file_digest(onnx_path)[:12]}",
            model_uri=ref,
            reference=str(reference),
        )
    assert model_name is not None
    if tracking is None:
        raise ModelRefError(f"model reference {reference!r} needs an MLflow tracking server")
    from airflow_mlops.core.registry import versions as registry

    found = registry.get_version(tracking, model_name, ref)
    if found is None:
        what = f"version {ref}" if ref.isdigit() else f"alias @{ref}"
        registry_uri = tracking.registry_uri or tracking.tracking_uri
        if _model_exists(tracking, model_name):
            raise ModelRefError(
                f"model {model_name!r} has no {what} in the registry at {registry_uri}"
            )
        raise ModelRefError(
            f"model {model_name!r} is not registered at {registry_uri} (asked for {what})"
        )
    return ModelVersionRef(
        name=model_name,
        version=found.version,
        model_uri=f"models:/{model_name}/{found.version}",
        reference=str(reference),
    )


def _model_exists(tracking: TrackingConfig, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        tracking.client().get_registered_model(name)
    except MlflowException:
        return False
    return True


def onnx_signature(onnx_path: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[Any, ...]]:
    """``(numeric, categorical, classes)`` read from an ONNX file's inputs and classifier node."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    numeric: list[str] = []
    categorical: list[str] = []
    initializers = {init.name for init in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        elem = inp.type.tensor_type.elem_type
        if elem == onnx.TensorProto.STRING:
            categorical.append(inp.name)
        elif elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
            numeric.append(inp.name)
        else:
            raise ModelRefError(
                f"{onnx_path}: input {inp.name!r} has element type "
                f"{onnx.TensorProto.DataType.Name(elem)}; scoring feeds float or string inputs"
            )
    classes: tuple[Any, ...] = ()
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in _LABEL_ATTRS:
                values = onnx.helper.get_attribute_value(attr)
                classes = tuple(v.decode() if isinstance(v, bytes) else int(v) for v in values)
                break
        if classes:
            break
    return tuple(numeric), tuple(categorical), classes


def _cache_root() -> Path:
    return Path(settings.mlops_home()) / "cache" / "models"


def _download(tracking: TrackingConfig, name: str, version: str) -> Path:
    """The version's model folder, downloaded once per machine (versions never change)."""
    from airflow_mlops.core.registry import versions as registry

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tracking.tracking_uri)
    target = _cache_root() / safe / name / version
    if target.is_dir() and any(target.rglob("*.onnx")):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the target and rename: a concurrent task sees the whole folder or none.
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        registry.download_onnx(tracking, f"models:/{name}/{version}", dst=str(tmp))
        try:
            tmp.rename(target)
        except OSError:  # another task finished first; its copy is identical
            if not (target.is_dir() and any(target.rglob("*.onnx"))):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _model_config(folder: Path) -> dict[str, Any]:
    import yaml

    for mlmodel in sorted(folder.rglob("MLmodel")):
        doc = yaml.safe_load(mlmodel.read_text()) or {}
        cfg = (doc.get("flavors", {}).get("python_function", {}) or {}).get("model_config")
        cfg = cfg or doc.get("model_config")
        if cfg:
            return dict(cfg)
    return {}


def resolve_model(
    reference: str | ModelVersionRef | dict[str, Any],
    tracking: TrackingConfig | None = None,
    name: str | None = None,
) -> ResolvedModel:
    """Resolve ``reference`` to a concrete version and a local ONNX file ready to score.

    :param reference: a reference string (module docstring), or a :class:`ModelVersionRef`
        (or its dict) that :func:`resolve_version` already pinned.
    :param tracking: where the registry is (registry references only).
    :param name: the model name for a bare version number or alias; for a local file, the
        name to record (default: the file stem).
    :raises ModelRefError: the model, the version or the alias does not exist, or the ONNX file
        does not follow the input contract.
    """
    if isinstance(reference, dict):
        reference = ModelVersionRef(
            **{k: reference[k] for k in ("name", "version", "model_uri")},
            reference=str(reference.get("reference", "")),
        )
    pinned = (
        reference
        if isinstance(reference, ModelVersionRef)
        else resolve_version(reference, tracking, name)
    )
    if pinned.version.startswith("local-"):
        onnx_path = _local_onnx(pinned.model_uri)
        cfg: dict[str, Any] = _model_config(Path(onnx_path).parent)
        tag_classes = None
    else:
        if tracking is None:
            raise ModelRefError(f"model {pinned.model_uri} needs an MLflow tracking server")
        folder = _download(tracking, pinned.name, pinned.version)
        onnx_path = str(sorted(folder.rglob("*.onnx"))[0])
        cfg = _model_config(folder)
        tag_classes = _tag_classes(tracking, pinned.name, pinned.version) if not cfg else None
    numeric, categorical, classes = onnx_signature(onnx_path)
    if cfg.get("classes"):
        classes = tuple(cfg["classes"])
    elif tag_classes:
        classes = tuple(tag_classes)
    if cfg.get("numeric_features") is not None or cfg.get("categorical_features") is not None:
        graph = set(numeric) | set(categorical)
        declared = [*cfg.get("numeric_features", []), *cfg.get("categorical_features", [])]
        if set(declared) != graph:
            raise ModelRefError(
                f"{pinned.model_uri}: MLmodel declares features {sorted(declared)} but the ONNX "
                f"graph takes {sorted(graph)}"
            )
        numeric = tuple(cfg.get("numeric_features", ()))
        categorical = tuple(cfg.get("categorical_features", ()))
    if not classes:
        raise ModelRefError(
            f"{pinned.model_uri}: no class labels in the ONNX graph, the MLmodel or the "
            "mlops.classes tag; scoring cannot name the probability columns"
        )
    return ResolvedModel(
        name=pinned.name,
        version=pinned.version,
        onnx_path=onnx_path,
        numeric_features=numeric,
        categorical_features=categorical,
        classes=classes,
        model_uri=pinned.model_uri,
    )


def _tag_classes(tracking: TrackingConfig, name: str, version: str) -> list[Any] | None:
    from airflow_mlops.core.registry import versions as registry

    found = registry.get_version(tracking, name, version)
    raw = (found.tags if found else {}).get("mlops.classes")
    try:
        return list(json.loads(raw)) if raw else None
    except ValueError:
        return None
