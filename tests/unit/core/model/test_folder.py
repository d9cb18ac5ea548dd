"""The model folder: one writer (atomic) and one reader for packaging, the server and the pod."""

from __future__ import annotations

import json

import pytest

from airflow_mlops.core.model.folder import (
    ModelFolderError,
    ModelMeta,
    read_model_folder,
    write_model_folder,
)
from airflow_mlops.core.scoring.container import ModelFolderError as ContainerError
from airflow_mlops.core.scoring.container import load_model_folder
from airflow_mlops.serving.models import LoadError, load_version

META = {
    "name": "churn",
    "version": "3",
    "numeric_features": ["age"],
    "categorical_features": ["city"],
    "classes": [0, 1],
    "input_types": {"age": "long"},
    "run_id": "ignored",
}


def test_round_trip_and_no_temporary_file_left(tmp_path):
    onnx = tmp_path / "src.onnx"
    onnx.write_bytes(b"graph")
    folder = write_model_folder(tmp_path / "m", onnx, META)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx"]
    meta, path = read_model_folder(folder)
    assert path.read_bytes() == b"graph"
    assert meta == ModelMeta.from_dict(META)
    assert meta.input_types == {"age": "long", "city": "string"}
    # Rewriting replaces both files in place.
    onnx.write_bytes(b"graph v2")
    write_model_folder(folder, onnx, {**META, "version": "4"})
    assert read_model_folder(folder)[0].version == "4"
    assert (folder / "model.onnx").read_bytes() == b"graph v2"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx"]


def test_bad_metadata_is_refused_before_anything_is_written(tmp_path):
    onnx = tmp_path / "src.onnx"
    onnx.write_bytes(b"graph")
    with pytest.raises(ModelFolderError, match="meta: 'classes' is empty"):
        write_model_folder(tmp_path / "m", onnx, {**META, "classes": []})
    assert not (tmp_path / "m" / "model.onnx").exists()


def test_a_failed_copy_leaves_the_old_model(tmp_path):
    onnx = tmp_path / "src.onnx"
    onnx.write_bytes(b"graph")
    folder = write_model_folder(tmp_path / "m", onnx, META)
    with pytest.raises(FileNotFoundError):
        write_model_folder(folder, tmp_path / "gone.onnx", META)
    assert (folder / "model.onnx").read_bytes() == b"graph"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx"]


def test_every_reader_refuses_the_same_folder(tmp_path):
    onnx = tmp_path / "src.onnx"
    onnx.write_bytes(b"graph")
    folder = write_model_folder(tmp_path / "m", onnx, META)
    (folder / "model.json").write_text(json.dumps({**META, "input_types": {"age": "decimal"}}))
    needle = "input_types['age'] = 'decimal'"
    with pytest.raises(ModelFolderError, match=needle.replace("[", r"\[")):
        read_model_folder(folder)
    with pytest.raises(ContainerError) as pod:
        load_model_folder(str(folder))
    with pytest.raises(LoadError) as server:
        load_version("3", str(folder))
    assert needle in str(pod.value) and needle in str(server.value)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        read_model_folder(folder)
    (folder / "model.onnx").unlink()
    with pytest.raises(ModelFolderError, match=r"lacks model\.onnx"):
        read_model_folder(folder)
