"""What ``airflow-mlops score`` runs inside a scoring pod: one partition, one model folder.

The serving image (:mod:`airflow_mlops.core.packaging`) has no Airflow, no MLflow and no
``onnx`` package: the model is a folder (``model.onnx`` + ``model.json``) baked in at
``/app/model``. :func:`score_in_container` reads it and calls the same
:func:`~airflow_mlops.core.scoring.partition.score_partition` as the worker's
``BatchScoreOperator``, so both runners write the same predictions, rejects and monitoring sample.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.core.model import folder as model_folder
from airflow_mlops.core.scoring.types import ScoreResult, ScoringError, partition_target

if TYPE_CHECKING:
    from airflow_mlops.core.model.reference import ResolvedModel

__all__ = [
    "CONTAINER_COMMAND",
    "CONTAINER_MODEL_DIR",
    "XCOM_FILE_ENV",
    "XCOM_RETURN_FILE",
    "ModelFolderError",
    "load_model_folder",
    "score_in_container",
    "write_xcom",
]

# The console script the package's wheel installs in the image (see packaging.build_wheel).
CONTAINER_COMMAND = ("airflow-mlops",)
CONTAINER_MODEL_DIR = "/app/model"
# Where KubernetesPodOperator(do_xcom_push=True) reads a pod's result (its sidecar's volume).
XCOM_RETURN_FILE = "/airflow/xcom/return.json"
XCOM_FILE_ENV = settings.XCOM_FILE_ENV


class ModelFolderError(ScoringError):
    """A model folder or file the container cannot score with; names the path and why."""


def load_model_folder(path: str, name: str | None = None) -> ResolvedModel:
    """A model folder (``model.onnx`` + ``model.json``, as packaging writes it) ready to score.

    The folder is read by :func:`airflow_mlops.core.model.folder.read_model_folder`, the
    server's reader too, so the pod and the server refuse the same folders.

    A bare ``.onnx`` file (or a folder without ``model.json``) is read with
    :func:`~airflow_mlops.core.model.reference.resolve_model`, which needs the ``onnx`` package: the
    Airflow worker has it, the serving image does not (it has a model folder instead).
    """
    from airflow_mlops.core.model.reference import ModelRefError, ResolvedModel, resolve_model

    folder = Path(path)
    meta_file = folder / model_folder.META_FILE
    if not (folder.is_dir() and meta_file.is_file()):
        try:
            return resolve_model(str(folder), None, name=name)
        except ModuleNotFoundError as exc:
            raise ModelFolderError(
                f"{path}: a bare ONNX file needs the {exc.name!r} package to read its inputs and "
                f"classes; score with a model folder (model.onnx + model.json) such as "
                f"{CONTAINER_MODEL_DIR} in the serving image"
            ) from exc
        except ModelRefError as exc:
            raise ModelFolderError(str(exc)) from exc
    try:
        meta, onnx_path = model_folder.read_model_folder(folder)
    except model_folder.ModelFolderError as exc:
        raise ModelFolderError(str(exc)) from exc
    return ResolvedModel(
        name=meta.name,
        version=meta.version,
        onnx_path=str(onnx_path),
        numeric_features=meta.numeric_features,
        categorical_features=meta.categorical_features,
        classes=meta.classes,
        model_uri=str(folder),
    )


def score_in_container(
    model: str,
    input_uri: str,
    output_uri: str,
    *,
    partition: str | None = None,
    expect_name: str | None = None,
    expect_version: str | None = None,
    **options: Any,
) -> ScoreResult:
    """Score one partition with a model folder: what ``airflow-mlops score`` runs in a pod.

    :param model: a model folder or ``.onnx`` path.
    :param input_uri: the partition.
    :param output_uri: the predictions file; ``{partition}`` and ``{date}`` are filled in as
        the worker does (:func:`~airflow_mlops.core.scoring.types.partition_target`).
    :param partition: the partition's name (default: from the input URI).
    :param expect_name: fail unless the folder holds this model...
    :param expect_version: ...and this version: the run pinned it, the image must hold it.
    :param options: the other keywords of
        :func:`~airflow_mlops.core.scoring.partition.score_partition`; ``sample_date`` defaults
        to the input's ``date=`` folder.
    :raises ModelFolderError: the folder is unreadable or holds another model or version.
    """
    from airflow_mlops.core.scoring.partition import score_partition

    resolved = load_model_folder(model, name=expect_name)
    for what, want, got in (
        ("model", expect_name, resolved.name),
        ("version", expect_version, resolved.version),
    ):
        if want is not None and str(want) != got:
            pinned = f"{expect_name or resolved.name} v{expect_version or resolved.version}"
            raise ModelFolderError(
                f"{model} holds {resolved.name} v{resolved.version}, but the run pinned "
                f"{pinned} ({what} differs): the image is not the pinned version's"
            )
    name, date, output = partition_target(input_uri, output_uri, partition)
    options["sample_date"] = options.get("sample_date") or date
    return score_partition(input_uri, output, resolved, partition=name, **options)


def write_xcom(result: Mapping[str, Any], path: str) -> None:
    """Write the result where the XCom sidecar reads it (whole file or nothing)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(result), sort_keys=True))
    tmp.replace(target)
