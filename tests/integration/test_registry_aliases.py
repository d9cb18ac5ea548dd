"""Aliases on a real MLflow server: promotion moves ``champion`` and takes ``challenger`` off
the version it promotes (one version, one role), never off another version."""

from __future__ import annotations

import pytest

from tests.conftest import register_copies

pytestmark = pytest.mark.integration
MODEL = "aliases_churn"


def _aliases(tracking, version):
    from airflow_mlops.core.registry import versions as registry

    found = registry.get_version(tracking, MODEL, version)
    assert found is not None
    return set(found.aliases)


def test_promotion_clears_challenger_from_the_promoted_version_only(champion, tmp_path):
    from airflow_mlops.core.registry import versions as registry

    tracking = champion["tracking"]
    first, second = register_copies(champion, MODEL, 2, str(tmp_path))
    # The newest registration holds challenger.
    assert _aliases(tracking, second) == {"challenger"}

    registry.promote(tracking, MODEL, first)
    assert _aliases(tracking, first) == {"champion"}
    assert _aliases(tracking, second) == {"challenger"}, "another version's challenger stays"

    result = registry.promote(tracking, MODEL, second)
    assert result.previous_version == first
    assert _aliases(tracking, second) == {"champion"}
    assert _aliases(tracking, first) == set()
    assert registry.get_version(tracking, MODEL, "challenger") is None


def test_other_aliases_leave_challenger_in_place(champion, tmp_path):
    from airflow_mlops.core.registry import versions as registry

    tracking = champion["tracking"]
    (version,) = register_copies(champion, MODEL + "_candidate", 1, str(tmp_path))
    registry.promote(tracking, MODEL + "_candidate", version, registry.CANDIDATE)
    found = registry.get_version(tracking, MODEL + "_candidate", version)
    assert found is not None and set(found.aliases) == {"challenger", "candidate"}


@pytest.mark.parametrize("value", ["it's", 'say "hi"', "both ' and \""])
def test_search_by_tag_value_with_quotes(champion, tmp_path, value):
    from airflow_mlops.core.registry import versions as registry

    tracking = champion["tracking"]
    name = MODEL + "_quotes"
    if not registry.search_versions(tracking, name):
        register_copies(champion, name, 2, str(tmp_path))
    versions = registry.search_versions(tracking, name)
    tagged = versions[0].version
    registry.set_version_tags(tracking, name, tagged, {"mlops.note": value})
    found = registry.search_versions(tracking, name, {"mlops.note": value})
    assert [v.version for v in found] == [tagged]
