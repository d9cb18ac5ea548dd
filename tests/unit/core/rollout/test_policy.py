"""The rollout policy parses the config's ``rollout`` section and refuses unusable values."""

from __future__ import annotations

import pytest

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.rollout.policy import RolloutPolicy


def test_empty_section_gives_safe_defaults():
    policy = RolloutPolicy.from_dict({})
    assert policy.target == "local"
    assert policy.steps == (10, 25, 50, 100)
    assert policy.local.host == "127.0.0.1"
    assert policy.wait_limit == policy.bake_seconds


def test_full_section_is_read():
    policy = RolloutPolicy.from_dict(
        {
            "target": "kubernetes",
            "steps": [5, 50, 100],
            "bake_seconds": 1.5,
            "min_requests": 20,
            "max_error_rate": 0.02,
            "max_p99_ms": 10,
            "min_agreement": 0.9,
            "shadow_share": 0.5,
            "kubernetes": {"namespace": "models", "hostnames": ["churn.example.com"]},
        }
    )
    assert policy.steps == (5, 50, 100)
    assert policy.kubernetes.namespace == "models"
    assert policy.kubernetes.hostnames == ("churn.example.com",)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"steps": [10, 50]}, r"end at 100, got \(10, 50\)"),
        ({"steps": [50, 10, 100]}, "increase strictly"),
        ({"steps": [0, 100]}, "1..100"),
        ({"target": "ecs"}, r"target must be one of \['local', 'kubernetes'\], got 'ecs'"),
        ({"max_error_rate": 2}, "max_error_rate must be between 0 and 1, got 2"),
        ({"min_requests": 0}, "min_requests must be >= 1"),
        ({"bake": 3}, r"rollout: unknown key\(s\) \['bake'\]"),
        ({"local": {"host": "0.0.0.0"}}, "loopback"),
        ({"kubernetes": {"replica": 2}}, r"rollout.kubernetes: unknown key\(s\) \['replica'\]"),
    ],
)
def test_bad_values_name_the_key_and_value(raw, match):
    with pytest.raises(ConfigError, match=match):
        RolloutPolicy.from_dict(raw)
