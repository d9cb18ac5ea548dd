from __future__ import annotations

import random
from collections import Counter

import pytest

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.serving.config import ShadowSpec, normalise_routes
from airflow_mlops.serving.routing import RoutingTable


def test_weights_are_normalised():
    assert normalise_routes({"1": 90, 2: 10}) == {"1": 0.9, "2": 0.1}


@pytest.mark.parametrize(
    ("routes", "needle"),
    [
        ({"1": -1}, "version '1' must be >= 0, got -1"),
        ({"1": "ten"}, "must be a number"),
        ({"1": 0, "2": 0}, "sum to 0"),
        ({}, "non-empty mapping"),
        ({"1": float("nan")}, "must be >= 0"),
    ],
)
def test_bad_weights_name_the_version(routes, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        normalise_routes(routes)


def test_seeded_distribution_follows_the_weights():
    table = RoutingTable.build({"1": 70, "2": 20, "3": 10, "4": 0})
    rng = random.Random(42)
    counts = Counter(table.pick(rng) for _ in range(20_000))
    assert counts["4"] == 0
    assert set(counts) == {"1", "2", "3"}
    # 4 standard deviations of a binomial at n=20000 is under 1.4 points of share.
    for version, share in {"1": 0.7, "2": 0.2, "3": 0.1}.items():
        assert abs(counts[version] / 20_000 - share) < 0.014, (version, counts)


def test_single_version_takes_all_traffic():
    table = RoutingTable.build({"5": 1})
    assert {table.choose(u) for u in (0.0, 0.5, 0.999999)} == {"5"}
    assert table.versions == ("5",)


def test_shadow_share_and_no_self_mirroring():
    table = RoutingTable.build({"1": 50, "2": 50}, ShadowSpec("2", 0.25))
    rng = random.Random(7)
    mirrored = sum(table.shadow_for("1", rng.random()) == "2" for _ in range(20_000))
    assert abs(mirrored / 20_000 - 0.25) < 0.015
    assert all(table.shadow_for("2", u / 100) is None for u in range(100))
    assert RoutingTable.build({"1": 1}).shadow_for("1", 0.0) is None


def test_percent_view():
    assert RoutingTable.build({"1": 3, "2": 1}).percent() == {"1": 75.0, "2": 25.0}
