"""The shared ``champion`` fixture registers through the core steps, without Airflow."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_champion_fixture_is_promoted_with_reference_sample(champion):
    from airflow_mlops.core.registry import versions as registry

    version = registry.get_version(champion["tracking"], "fixture_churn", "champion")
    assert version is not None
    assert version.version == champion["registered"]["version"]
    assert version.tags["mlops.reference.uri"].startswith("runs:/")
    assert int(version.tags["mlops.reference.rows"]) == 16_000
