from __future__ import annotations

import json

import pytest

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.serving.config import ServingConfig, load_serving_config
from airflow_mlops.serving.main import build_config, parser


def test_minimal_config_defaults():
    config = ServingConfig.from_dict({"model": "churn", "versions": {"3": "a", "10": "b"}})
    assert config.routes == {"10": 1.0}  # highest version takes all traffic
    assert config.host == "127.0.0.1" and config.capture.sample_rate == 0.1
    assert config.capture.dir and config.capture.dir.endswith("monitoring")
    assert ServingConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"versions": {"1": "x"}}, "serving.model"),
        ({"model": "m"}, "serving.versions"),
        ({"model": "m", "versions": {"1": "x"}, "routes": {"2": 1}}, "version '2' with no source"),
        (
            {"model": "m", "versions": {"1": "x"}, "shadow": {"version": "1", "share": 2}},
            "share must be a number within 0..1",
        ),
        (
            {"model": "m", "versions": {"1": "x"}, "capture": {"sample_rate": 1.5}},
            "sample_rate must be within 0..1",
        ),
        (
            {"model": "m", "versions": {"1": "x"}, "capture": {"every": 1}},
            "unknown key(s) ['every']",
        ),
        ({"model": "m", "versions": {"1": "x"}, "limits": {"max_rows": 0}}, "max_rows"),
        ({"model": "m", "versions": {"1": "x"}, "colour": 1}, "unknown serving key(s) ['colour']"),
    ],
)
def test_config_errors_name_the_key(raw, needle):
    with pytest.raises(ConfigError) as info:
        ServingConfig.from_dict(raw, "serve.yaml")
    assert needle in str(info.value) and "serve.yaml" in str(info.value)


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "serve.json"
    path.write_text(
        json.dumps(
            {"model": "churn", "versions": {"1": "a", "2": "b"}, "routes": {"1": 1}, "port": 9000}
        )
    )
    args = parser().parse_args(
        [
            "--config",
            str(path),
            "--route",
            "1=90",
            "--route",
            "2=10",
            "--shadow",
            "2:0.5",
            "--capture-dir",
            "",
            "--max-rows",
            "10",
            "--admin-token-file",
            str(tmp_path / "token"),
            "--port",
            "9100",
        ]
    )
    config = build_config(args)
    assert config.routes == {"1": 0.9, "2": 0.1}
    assert config.shadow is not None and config.shadow.share == 0.5
    assert not config.capture.enabled and config.limits.max_rows == 10
    assert config.admin.token_file == str(tmp_path / "token") and config.port == 9100
    assert load_serving_config(path).port == 9000


def test_model_config_serving_section_is_accepted(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("name: churn\nserving:\n  model: churn\n  versions: {'1': ./m}\n")
    assert load_serving_config(path).versions == {"1": "./m"}


def test_flags_alone(tmp_path):
    args = parser().parse_args(["--model", "m", "--version", "1=./a", "--version", "2=./b"])
    assert build_config(args).routes == {"2": 1.0}
    with pytest.raises(ConfigError, match="expected V=VALUE"):
        build_config(parser().parse_args(["--model", "m", "--version", "1"]))


def test_model_config_section_can_be_empty():
    config = ServingConfig.from_section({}, model="churn", versions={"3": "models:/churn/3"})
    assert config.model == "churn" and config.routes == {"3": 1.0}
    tuned = ServingConfig.from_section(
        {"capture": {"sample_rate": 0.5}, "limits": {"max_rows": 50}},
        model="churn",
        versions={"3": "a", "4": "b"},
        routes={"3": 9, "4": 1},
        shadow={"version": "4", "share": 0.2},
    )
    assert tuned.capture.sample_rate == 0.5 and tuned.limits.max_rows == 50
    assert tuned.routes == {"3": 0.9, "4": 0.1} and tuned.shadow is not None
    with pytest.raises(ConfigError, match=r"demo\.yaml"):
        ServingConfig.from_section(
            {"limits": {"max_rows": -1}}, model="m", versions={"1": "a"}, source="demo.yaml"
        )
