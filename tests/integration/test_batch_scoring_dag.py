"""``ml_batch_scoring`` end to end: real MLflow server, real Airflow ``dag.test()`` runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.integration

DAY = "2024-05-01"


@pytest.fixture(scope="module")
def stack(champion, airflow_db, tmp_path_factory, demo_config_path):
    """The fixture champion, a scoring config pointing at temporary folders, three partitions."""
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    root = tmp_path_factory.mktemp("scoring")
    raw = yaml.safe_load(demo_config_path.read_text())
    raw["name"] = "fixture_churn"
    raw["data"]["uri"] = str(champion["data"])
    raw["scoring"] = {
        "input_uri": str(root / "incoming"),
        "output_uri": str(root / "scored"),
        "monitoring_dir": str(root / "monitoring"),
        "sample_rows": 200,
        "batch_rows": 1_000,
    }
    config = root / "fixture_churn.yaml"
    config.write_text(yaml.safe_dump(raw))
    day = root / "incoming" / f"date={DAY}"
    write_parquet_atomic(generate(3_000, seed=11), str(day / "part-0.parquet"))
    bad = generate(2_000, seed=12)
    bad.loc[[3, 4], "monthly_charges"] = np.inf
    write_parquet_atomic(bad, str(day / "part-1.parquet"))
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": champion["tracking"].tracking_uri}
    )
    os.environ["MLOPS_SCORING_CONFIG"] = str(config)
    yield {"root": root, "day": day, "version": champion["registered"]["version"]}
    os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
    os.environ.pop("MLOPS_SCORING_CONFIG", None)


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / "ml_batch_scoring.py"))
    assert bag.import_errors == {}
    return bag.dags["ml_batch_scoring"]


def _states(run):
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def test_partitions_are_scored_with_one_pinned_version_and_bad_rows_rejected(stack):
    run = _dag().test(run_conf={"date": DAY})
    states = _states(run)
    assert str(run.state) == "success", states
    assert states[("score", 0)] == states[("score", 1)] == "success"
    out = stack["root"] / "scored" / f"date={DAY}"
    good = pq.read_table(out / "part-0.parquet").to_pandas()
    assert len(good) == 3_000
    assert set(good["model_version"]) == {stack["version"]}
    assert set(good["model_name"]) == {"fixture_churn"}
    scored = pq.read_metadata(out / "part-1.parquet").num_rows
    rejects = pq.read_table(out / "_rejects" / "part-1.parquet").to_pandas()
    assert scored + len(rejects) == 2_000 and len(rejects) == 2
    assert rejects["reject_reason"].str.contains("monthly_charges").all()
    sample = (
        stack["root"]
        / "monitoring"
        / "model=fixture_churn"
        / "source=batch"
        / f"version={stack['version']}"
        / f"date={DAY}"
        / "part-0.parquet"
    )
    assert pq.read_metadata(sample).num_rows == 200
    summary = next(ti for ti in run.get_task_instances() if ti.task_id == "summary")
    assert str(summary.state) == "success"


def test_a_broken_partition_fails_alone_and_the_summary_names_it(stack):
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    broken = stack["day"] / "part-2.parquet"
    write_parquet_atomic(generate(500, seed=13).drop(columns=["age"]), str(broken))
    out = stack["root"] / "scored" / f"date={DAY}"
    before = (out / "part-0.parquet").stat().st_mtime_ns
    try:
        run = _dag().test(run_conf={"date": DAY})
    finally:
        broken.unlink()
    states = _states(run)
    assert str(run.state) == "failed", states
    assert states[("score", 0)] == states[("score", 1)] == "success", states
    assert states[("score", 2)] == "failed", states
    assert states[("summary", -1)] == "failed", states
    assert not (out / "part-2.parquet").exists()
    # The other partitions were re-scored (replaced), not left half-done.
    assert (out / "part-0.parquet").stat().st_mtime_ns > before
    assert pq.read_metadata(out / "part-0.parquet").num_rows == 3_000


def test_a_successful_run_logs_no_xcom_lookup_error(stack, capfd):
    """The summary reads the mapped results in one request; iterating them probed one index
    past the end and logged ``XCom not found`` on every successful run."""
    run = _dag().test(run_conf={"date": DAY})
    assert str(run.state) == "success", _states(run)
    out, err = capfd.readouterr()
    assert "XCom not found" not in out + err


def test_an_unresolvable_model_fails_the_run_not_only_its_task(stack, tmp_path):
    """No champion (here: an alias nobody holds): resolve_model fails, and so must the run; the
    summary task names why nothing was scored instead of succeeding on an empty list."""
    raw = yaml.safe_load(Path(os.environ["MLOPS_SCORING_CONFIG"]).read_text())
    raw["scoring"]["model"] = "models:/fixture_churn@nobody"
    config = tmp_path / "no_champion.yaml"
    config.write_text(yaml.safe_dump(raw))
    previous = os.environ["MLOPS_SCORING_CONFIG"]
    os.environ["MLOPS_SCORING_CONFIG"] = str(config)
    try:
        run = _dag().test(run_conf={"date": DAY})
    finally:
        os.environ["MLOPS_SCORING_CONFIG"] = previous
    states = _states(run)
    assert states[("resolve_model", -1)] == "failed", states
    assert states[("summary", -1)] == "failed", states
    assert str(run.state) == "failed", states
