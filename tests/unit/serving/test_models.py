from __future__ import annotations

import json
import shutil

import pytest
import yaml

from airflow_mlops.serving.models import (
    LoadError,
    ModelMeta,
    load_version,
    meta_from_mlmodel,
    read_model_folder,
    write_model_folder,
)


def test_folder_round_trip(model_folders, tmp_path):
    meta, onnx_path = read_model_folder(model_folders["1"])
    assert meta.input_types["visits"] == "long" and meta.classes == (0, 1)
    copy = write_model_folder(tmp_path / "copy", onnx_path, meta.to_dict())
    again, _ = read_model_folder(copy)
    assert again == meta
    assert json.loads((copy / "model.json").read_text())["numeric_features"] == [
        "age",
        "income",
        "visits",
    ]


def test_loaded_version_passes_its_check_run(model_folders):
    loaded = load_version("1", str(model_folders["1"]))
    assert loaded.label_kind == "long" and loaded.meta.version == "1"


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda m: m.pop("classes"), "missing key 'classes'"),
        (lambda m: m.update(classes=[]), "'classes' is empty"),
        (lambda m: m.update(input_types={"age": "decimal"}), "input_types['age'] = 'decimal'"),
        (
            lambda m: m.update(numeric_features=["age", "income"]),
            "differ from the metadata features (missing [], extra ['visits'])",
        ),
        (lambda m: m.update(classes=[0, 1, 2]), "does not match 3 classes"),
    ],
)
def test_bad_metadata_is_refused_with_the_reason(model_folders, tmp_path, edit, needle):
    folder = tmp_path / "bad"
    shutil.copytree(model_folders["1"], folder)
    meta = json.loads((folder / "model.json").read_text())
    edit(meta)
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(LoadError) as info:
        load_version("7", str(folder))
    assert needle in str(info.value) and "version 7" in str(info.value)


def test_meta_from_a_registered_mlmodel_file(tmp_path):
    mlmodel = tmp_path / "MLmodel"
    signature = [
        {"type": "long", "name": "visits", "required": True},
        {"type": "double", "name": "age", "required": True},
        {"type": "string", "name": "city", "required": False},
    ]
    mlmodel.write_text(
        yaml.safe_dump(
            {
                "flavors": {
                    "python_function": {
                        "model_config": {
                            "numeric_features": ["age", "visits"],
                            "categorical_features": ["city"],
                            "classes": ["no", "yes"],
                        }
                    }
                },
                "signature": {"inputs": json.dumps(signature)},
            }
        )
    )
    meta = meta_from_mlmodel(mlmodel, "churn", "4")
    assert meta == ModelMeta(
        name="churn",
        version="4",
        numeric_features=("age", "visits"),
        categorical_features=("city",),
        classes=("no", "yes"),
        input_types={"age": "double", "visits": "long", "city": "string"},
    )
    mlmodel.write_text("flavors: {}\n")
    with pytest.raises(LoadError, match="no model_config"):
        meta_from_mlmodel(mlmodel, "churn", "4")


def test_registry_source_without_tracking_uri_says_so(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(LoadError, match="no MLflow tracking URI"):
        load_version("1", "models:/churn/1")
