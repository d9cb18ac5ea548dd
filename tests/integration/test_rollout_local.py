"""Local rollout for real: the scoring server as a process, weights shifted live, real MLflow.

Three versions of one model (registered through the core steps like the ``champion`` fixture,
under their own name so that other tests' ``fixture_churn`` keeps its champion): v1 serves,
v2 is rolled out and promoted, v3 fails (a threshold that cannot hold; then a corrupt ONNX file
in its model folder) and is rolled back.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("airflow_mlops.serving", reason="the scoring server package is not here")

pytestmark = pytest.mark.integration

MODEL = "fixture_churn_rollout"


@pytest.fixture(scope="module")
def versions(champion, mlops_home):
    """v1 (champion), v2 and v3 of ``fixture_churn_rollout``; the same fitted pipeline."""
    from airflow_mlops.core.registry import versions as registry
    from tests.conftest import register_copies

    tracking = champion["tracking"]
    versions = register_copies(champion, MODEL, 3, str(mlops_home / "work" / "rollout-fixture"))
    registry.promote(tracking, MODEL, versions[0], "champion")
    return {"tracking": tracking, "versions": versions}


def _policy(tmp_path, **overrides):
    from airflow_mlops.core.rollout.policy import RolloutPolicy

    raw = {
        "steps": [25, 100],
        "bake_seconds": 0.5,
        "min_requests": 10,
        "analysis_timeout_seconds": 20,
        "max_p99_ms": 1000,
        "min_agreement": 0.9,
        "shadow_share": 0.5,
        "local": {"work_dir": str(tmp_path)},
        **overrides,
    }
    return RolloutPolicy.from_dict(raw)


def _load(target, tracking, version):
    from airflow_mlops.core.rollout.targets.local import LoadGenerator, reference_rows

    meta = json.loads((target.model_folder(version) / "model.json").read_text())
    rows = reference_rows(
        tracking, MODEL, version, meta["numeric_features"] + meta["categorical_features"], rows=50
    )
    return LoadGenerator(target.url, rows, max_requests=20_000, max_seconds=120)


def test_local_rollout_shifts_weights_live_then_promotes_after_last_step(versions, tmp_path):
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.rollout import records
    from airflow_mlops.core.rollout.runner import run_rollout
    from airflow_mlops.core.rollout.targets.local import LocalTarget

    tracking = versions["tracking"]
    v1, v2, _ = versions["versions"]
    policy = _policy(tmp_path)
    events = []
    alias_during_steps = []

    def on_step(event):
        events.append(event)
        if event["phase"] == "step":
            alias_during_steps.append(registry.get_version(tracking, MODEL, "champion").version)

    with LocalTarget(policy.local, tracking, MODEL) as target:
        target.start(v1)
        with _load(target, tracking, v1) as load:
            load.start()
            result = run_rollout(target, policy, tracking, MODEL, v2, on_step=on_step)
        routes = target.routes()
        recorded = {v: records.deployments(tracking, MODEL, v) for v in (v1, v2)}
    # The server this target started is gone: nothing may still count as live on it.
    after_stop = records.deployments(tracking, MODEL, v2)

    assert result.status == "promoted", result.message
    assert [s.percent for s in result.steps] == [25, 100]
    assert result.steps[0].weights == {v2: 25, v1: 75}
    assert result.steps[1].weights == {v2: 100}
    # Both versions answered during the rollout, and no request failed while weights moved.
    assert load.failed == 0
    assert load.versions.get(v1, 0) > 0 and load.versions.get(v2, 0) > 0
    first = result.steps[0].analysis
    assert first["canary"]["requests"] >= 10
    assert first["canary"]["agreement"] == 1.0  # same pipeline, mirrored rows agree
    # The alias moved only after the last step.
    assert alias_during_steps == [v1, v1]
    assert registry.get_version(tracking, MODEL, "champion").version == v2
    assert [e["phase"] for e in events] == ["deploy", "step", "step", "promote"]
    assert routes["routes"] == {v2: 100.0} or routes["routes"] == {v2: 100}
    assert routes["loaded"] == [v2]  # the retired version was unloaded, not kept at 0 %
    assert recorded[v2][0].weight == 100
    assert recorded[v1] == []
    assert after_stop == []


def test_local_rollout_rolls_back_on_a_failed_threshold_with_the_reason(versions, tmp_path):
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.rollout import records
    from airflow_mlops.core.rollout.runner import run_rollout
    from airflow_mlops.core.rollout.targets.local import LocalTarget

    tracking = versions["tracking"]
    _, v2, v3 = versions["versions"]
    policy = _policy(tmp_path, max_p99_ms=0.0)
    with LocalTarget(policy.local, tracking, MODEL) as target:
        target.start(v2)
        records.record(tracking, MODEL, v2, "local", target.url, 100)
        with _load(target, tracking, v2) as load:
            load.start()
            result = run_rollout(target, policy, tracking, MODEL, v3)
        routes = target.routes()

    assert result.status == "rolled_back"
    assert "p99" in result.message and "vs max 0.0 ms" in result.message
    assert [s.percent for s in result.steps] == []  # the first step failed
    assert routes["routes"] == {v2: 100} or routes["routes"] == {v2: 100.0}
    assert routes["shadow"] is None
    assert load.failed == 0
    v3_version = registry.get_version(tracking, MODEL, v3)
    assert v3_version.tags["mlops.rollout.result"].startswith("rolled back: step 25%")
    assert records.deployments(tracking, MODEL, v3) == []
    assert registry.get_version(tracking, MODEL, "champion").version == v2


def test_local_canary_with_corrupt_onnx_never_gets_traffic(versions, tmp_path):
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.rollout.runner import run_rollout
    from airflow_mlops.core.rollout.targets.local import LocalTarget

    tracking = versions["tracking"]
    _, v2, v3 = versions["versions"]
    policy = _policy(tmp_path)
    with LocalTarget(policy.local, tracking, MODEL) as target:
        target.start(v2)
        folder = target.model_folder(v3)
        (folder / "model.onnx").write_bytes(b"this is not an ONNX graph")
        with _load(target, tracking, v2) as load:
            load.start()
            result = run_rollout(target, policy, tracking, MODEL, v3, baseline=v2)
        routes = target.routes()
        metrics = target.snapshot()

    assert result.status == "rolled_back"
    assert f"v{v3} refused by the server" in result.message
    assert "HTTP 409" in result.message
    assert result.steps == ()
    assert routes["routes"] == {v2: 100} or routes["routes"] == {v2: 100.0}
    assert metrics.total("mlops_requests_total", version=v3) == 0
    assert load.versions.get(v3, 0) == 0
    assert registry.get_version(tracking, MODEL, "champion").version == v2


def test_live_version_cannot_lose_its_alias_or_be_deleted(versions):
    from airflow_mlops.core.rollout import records

    tracking = versions["tracking"]
    v1, v2, _ = versions["versions"]
    records.record(tracking, MODEL, v2, "kubernetes", "http://churn.example/", 40)
    try:
        with pytest.raises(records.LiveVersionError, match=r"it is live on kubernetes .* 40%"):
            records.move_alias(tracking, MODEL, "champion", v1)
        with pytest.raises(records.LiveVersionError, match="cannot delete the version"):
            records.delete_version(tracking, MODEL, v2)
    finally:
        records.clear(tracking, MODEL, v2, "kubernetes")
