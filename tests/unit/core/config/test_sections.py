"""The config's sections parse on their own, and the parse helpers say where a key is wrong."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from airflow_mlops.core.config.data import DataSpec, check_data, parse_data
from airflow_mlops.core.config.parse import (
    ConfigError,
    as_tuple,
    build_section,
    check_keys,
    expand,
)
from airflow_mlops.core.config.validation import (
    ColumnSpec,
    ValidationSpec,
    check_validation,
    parse_validation,
)
from airflow_mlops.exceptions import MLOpsError


@dataclass(frozen=True)
class _Section:
    size: int = 1


def test_check_keys_names_the_place_and_the_known_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"m.yaml: s: unknown key\(s\) \['colour'\]; known keys: \['size'\]"
    ):
        check_keys({"colour": 1}, _Section, "m.yaml: s")
    with pytest.raises(ConfigError, match="expected a mapping, got list"):
        check_keys([], ["a"], "m.yaml: s")
    assert build_section(_Section, None, "s") == _Section()
    assert build_section(_Section, {"size": 3}, "s") == _Section(3)


def test_config_errors_are_permanent_and_still_value_errors() -> None:
    assert issubclass(ConfigError, MLOpsError) and issubclass(ConfigError, ValueError)


def test_as_tuple_refuses_a_string(monkeypatch) -> None:
    assert as_tuple(None, "w") == () and as_tuple(["a", "b"], "w") == ("a", "b")
    with pytest.raises(ConfigError, match="w: expected a list, got 'age'"):
        as_tuple("age", "w")
    monkeypatch.setenv("MLOPS_TEST_DIR", "/d")
    monkeypatch.delenv("MLOPS_TEST_UNSET", raising=False)
    assert expand("${MLOPS_TEST_DIR}/x ${MLOPS_TEST_UNSET:-.mlops}/y") == "/d/x .mlops/y"


def test_the_data_section_alone() -> None:
    data = parse_data(
        {"uri": "x.parquet", "target": "y", "features": {"numeric": ["a"], "categorical": ["c"]}},
        "m.yaml",
    )
    assert data == DataSpec(
        uri="x.parquet", target="y", numeric_features=("a",), categorical_features=("c",)
    )
    check_data(data, "m.yaml")
    with pytest.raises(ConfigError, match=r"missing required key data\.target"):
        parse_data({"uri": "x.parquet"}, "m.yaml")
    with pytest.raises(ConfigError, match="column 'a' is listed as numeric and as key"):
        check_data(DataSpec(uri="x", target="y", numeric_features=("a",), key_columns=("a",)), "m")


def test_the_validation_section_alone() -> None:
    spec = parse_validation(
        {"min_rows": 5, "columns": {"plan": {"type": "string", "allowed": ["a", "b"]}}}, "m.yaml"
    )
    assert spec == ValidationSpec(
        min_rows=5, columns={"plan": ColumnSpec(type="string", allowed=("a", "b"))}
    )
    assert parse_validation(None, "m.yaml") == ValidationSpec()
    with pytest.raises(ConfigError, match=r"validation\.columns\.age\.type must be"):
        check_validation(ValidationSpec(columns={"age": ColumnSpec(type="date")}), "m.yaml")


def test_the_package_init_imports_nothing() -> None:
    code = (
        "import sys, airflow_mlops.core.config as c; "
        "print(sorted(m for m in sys.modules if m.startswith('airflow_mlops.core.config.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _with(section: str, value: dict):
    from airflow_mlops.core.config.model import config_from_dict

    return config_from_dict(
        {
            "name": "m",
            "data": {"uri": "x.parquet", "target": "y", "features": {"numeric": ["a"]}},
            section: value,
        },
        source="c.yaml",
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"primary_metric": "roc-auc"}, "evaluation.primary_metric: unknown metric 'roc-auc'"),
        ({"thresholds": {"acuracy": 0.5}}, "evaluation.thresholds: unknown metric 'acuracy'"),
        ({"max_regression": {"f2": 0.1}}, "evaluation.max_regression: unknown metric 'f2'"),
    ],
)
def test_metric_names_are_checked_when_the_config_loads(value, needle):
    with pytest.raises(ConfigError) as info:
        _with("evaluation", value)
    assert needle in str(info.value) and "known metrics" in str(info.value)
    assert str(info.value).startswith("c.yaml: ")


@pytest.mark.parametrize("path", ["LogisticRegression", "sklearn linear.Logistic", "a..B", ""])
def test_an_estimator_path_that_is_no_import_path_is_refused_at_load(path):
    with pytest.raises(ConfigError, match=r"training.estimator .* is not an import path"):
        _with("training", {"estimator": path})


def test_training_params_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"training.params: expected a mapping"):
        _with("training", {"params": [1, 2]})
