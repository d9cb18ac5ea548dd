from __future__ import annotations

import pytest

from airflow_mlops.core.config.model import config_from_dict, load_config
from airflow_mlops.core.config.parse import ConfigError


def _raw(**over):
    raw = {
        "name": "m",
        "data": {
            "uri": "/tmp/x.parquet",
            "target": "y",
            "features": {"numeric": ["a", "b"], "categorical": ["c"]},
            "key_columns": ["id"],
        },
    }
    raw.update(over)
    return raw


def test_minimal_config_gets_defaults():
    config = config_from_dict(_raw())
    assert config.data.features == ("a", "b", "c")
    assert config.data.key_columns == ("id",)
    assert config.evaluation.primary_metric == "roc_auc"
    assert config.experiment_name == "m"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"training: unknown key\(s\) \['estimatr'\]"):
        config_from_dict(_raw(training={"estimatr": "x"}))


def test_column_in_two_roles_is_rejected():
    raw = _raw()
    raw["data"]["key_columns"] = ["a"]
    with pytest.raises(ConfigError, match="column 'a' is listed as numeric and as key"):
        config_from_dict(raw)


def test_missing_target_and_bad_holdout():
    raw = _raw()
    del raw["data"]["target"]
    with pytest.raises(ConfigError, match=r"data\.target"):
        config_from_dict(raw)
    raw = _raw()
    raw["data"]["holdout_fraction"] = 1.5
    with pytest.raises(ConfigError, match="holdout_fraction"):
        config_from_dict(raw)


def test_validation_column_type_checked():
    with pytest.raises(ConfigError, match=r"validation\.columns\.a\.type"):
        config_from_dict(_raw(validation={"columns": {"a": {"type": "float"}}}))


def test_env_expansion_and_file_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", "/data/here")
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: m\ndata:\n  uri: ${MLOPS_HOME:-.mlops}/x.parquet\n  target: y\n"
        "  features: {numeric: [a]}\nwork_dir: ${NOT_SET_ANYWHERE:-/w}\n"
    )
    config = load_config(path)
    assert config.data.uri == "/data/here/x.parquet"
    assert config.work_dir == "/w"
    with pytest.raises(ConfigError, match="cannot read model config"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict():
    columns = {"c": {"type": "string", "allowed": ["x"]}}
    config = config_from_dict(_raw(validation={"columns": columns}))
    again = config_from_dict(
        {
            **config.to_dict(),
            "data": {
                **config.to_dict()["data"],
                "numeric_features": list(config.data.numeric_features),
            },
        }
    )
    assert again == config
