"""Resolving model references: local ONNX files here, the registry against a real server."""

from __future__ import annotations

import shutil

import pytest

from airflow_mlops.core.model.reference import (
    ModelRefError,
    parse_reference,
    resolve_model,
    resolve_version,
)


def test_parse_reference_forms(tmp_path):
    assert parse_reference("models:/churn@champion") == ("registry", "churn", "champion")
    assert parse_reference("models:/churn/12") == ("registry", "churn", "12")
    assert parse_reference("3", name="churn") == ("registry", "churn", "3")
    assert parse_reference("champion", name="churn") == ("registry", "churn", "champion")
    assert parse_reference(str(tmp_path)) == ("local", None, str(tmp_path))
    with pytest.raises(ModelRefError, match="not models:/<name>/<version>"):
        parse_reference("models:/churn")
    with pytest.raises(ModelRefError, match="neither"):
        parse_reference("champion")


def test_local_file_features_and_classes_come_from_the_graph(onnx_model):
    from airflow_mlops.devstack.demo_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    model = resolve_model(onnx_model)
    assert model.numeric_features == NUMERIC_FEATURES
    assert model.categorical_features == CATEGORICAL_FEATURES
    assert model.classes == (0, 1)
    assert model.name == "churn" and model.version.startswith("local-")
    assert resolve_model(onnx_model, name="x").version == model.version  # content hash


def test_local_folder_is_searched_for_its_onnx_file(onnx_model, tmp_path):
    shutil.copy(onnx_model, tmp_path / "model.onnx")
    model = resolve_model(str(tmp_path), name="demo")
    assert model.onnx_path == str(tmp_path / "model.onnx") and model.name == "demo"


def test_missing_local_file_is_named(tmp_path):
    with pytest.raises(ModelRefError, match=r"nope\.onnx does not exist"):
        resolve_model(str(tmp_path / "nope.onnx"))


@pytest.mark.integration
def test_alias_resolves_once_to_a_concrete_version(champion):
    tracking = champion["tracking"]
    pinned = resolve_version("models:/fixture_churn@champion", tracking)
    assert pinned.version == champion["registered"]["version"]
    assert pinned.model_uri == f"models:/fixture_churn/{pinned.version}"
    model = resolve_model(pinned, tracking)
    assert model.version == pinned.version and model.classes == (0, 1)
    assert "tenure_months" in model.numeric_features and "region" in model.categorical_features
    # The same version by number and through its dict (what the DAG passes over XCom).
    assert resolve_model(pinned.version, tracking, name="fixture_churn").onnx_path == (
        model.onnx_path
    )
    assert resolve_model(pinned.to_dict(), tracking).version == pinned.version


@pytest.mark.integration
def test_unknown_alias_and_model_are_named(champion):
    tracking = champion["tracking"]
    with pytest.raises(ModelRefError, match=r"'fixture_churn' has no alias @gold"):
        resolve_version("models:/fixture_churn@gold", tracking)
    with pytest.raises(ModelRefError, match=r"'no_such_model' is not registered"):
        resolve_version("models:/no_such_model@champion", tracking)
    with pytest.raises(ModelRefError, match=r"'fixture_churn' has no version 999"):
        resolve_version("models:/fixture_churn/999", tracking)


def test_one_models_uri_parser_for_resolution_profiling_and_serving(monkeypatch):
    from airflow_mlops.core.model.reference import parse_models_uri
    from airflow_mlops.core.profiling.profile import ProfilingError, parse_model_ref
    from airflow_mlops.serving.models import LoadError, load_version

    assert parse_models_uri("models:/churn/12") == ("churn", "12")
    assert parse_models_uri("models:/churn@champion") == ("churn", "champion")
    assert parse_model_ref("models:/churn@champion", "other") == ("churn", "champion")
    needle = "is not models:/<name>/<version> or models:/<name>@<alias>"
    for bad in ("models:/churn", "models:/churn/latest", "models:/a/b/3"):
        with pytest.raises(ModelRefError, match=needle):
            parse_models_uri(bad)
        with pytest.raises(ProfilingError, match=needle):
            parse_model_ref(bad, "other")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(LoadError, match=needle):
        load_version("1", "models:/churn")
