"""Every DAG file parses quickly, without errors, DB queries, connections or heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = [
    "mlflow",
    "evidently",
    "great_expectations",
    "sklearn",
    "skl2onnx",
    "onnxruntime",
    "onnx",
    "pandas",
    "pyarrow",
    "lightgbm",
]

# Parsed in a fresh interpreter so that what the test process already imported cannot hide a
# heavy import. Connection lookups and ORM sessions are made to raise during the parse.
_PROBE = r"""
import json, sys, time, importlib.util
from airflow.sdk.definitions.connection import Connection
def _no_conn(*a, **k):
    raise RuntimeError("connection looked up at parse time")
Connection.get = classmethod(_no_conn)
import airflow.settings as settings
class _NoSession:
    def __call__(self, *a, **k):
        raise RuntimeError("database session opened at parse time")
settings.Session = _NoSession()
before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
from airflow.sdk import DAG
dags = [v for v in vars(module).values() if isinstance(v, DAG)]
heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(json.loads(sys.argv[2])))
print(json.dumps({"dags": [d.dag_id for d in dags], "heavy": heavy, "seconds": elapsed,
                  "tasks": {d.dag_id: len(d.tasks) for d in dags}}))
"""


@pytest.fixture(scope="module", params=DAG_FILES, ids=[p.name for p in DAG_FILES])
def parsed(request):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(request.param), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"{request.param.name} failed to parse:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_defines_a_dag(parsed):
    assert parsed["dags"], "no DAG object at module level"


def test_no_heavy_module_imported_at_parse(parsed):
    assert parsed["heavy"] == []


def test_parse_is_fast(parsed):
    # Generous bound: the dag-processor re-parses every file every few seconds.
    assert parsed["seconds"] < 5.0, parsed


def test_training_dag_shape():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags.get("ml_training")
    assert dag is not None
    order = {t.task_id: {u for u in t.upstream_task_ids} for t in dag.tasks}
    assert order["prepare"] == set()
    assert order["validate"] == {"prepare"}
    assert "validate" in order["train"]
    assert order["convert"] == {"prepare", "train"}
    assert {"evaluate", "convert", "validate"} <= order["register"]
    assert order["promote"] >= {"register", "evaluate"}
    # The demo config has a rollout section: promotion names a candidate for ml_rollout.
    promote = dag.get_task("promote")
    assert [o.uri for o in promote.outlets] == ["mlops://models/demo_churn/candidate"]
    assert promote.via_rollout is True
    rollout = bag.dags["ml_rollout"]
    assert [a.uri for a in rollout.timetable.asset_condition.objects] == [
        "mlops://models/demo_churn/candidate"
    ]
    training_assets = dag.timetable.asset_condition.objects
    assert [a.uri for a in training_assets] == ["mlops://models/demo_churn/drift"]
    assert order["profile"] == {"register"}
    assert "profile" in order["promote"]


def test_approval_gate_sits_between_profile_and_promote_only_when_enabled(tmp_path):
    import yaml

    from airflow_mlops.dags.training import training_dag

    raw = yaml.safe_load((REPO / "dags" / "configs" / "demo_churn.yaml").read_text())
    assert "approval" not in raw
    plain = training_dag(REPO / "dags" / "configs" / "demo_churn.yaml", dag_id="t_plain")
    assert "approve" not in plain.task_ids
    raw["approval"] = {"promotion": True, "timeout_hours": 2, "on_timeout": "reject"}
    path = tmp_path / "with_approval.yaml"
    path.write_text(yaml.safe_dump(raw))
    gated = training_dag(path, dag_id="t_gated")
    approve = gated.get_task("approve")
    assert approve.upstream_task_ids >= {"profile"}
    assert "approve" in gated.get_task("promote").upstream_task_ids


@pytest.mark.parametrize("cron", ["@daily", None])
def test_scoring_dag_runs_on_incoming_data_with_or_without_a_cron(tmp_path, cron):
    import yaml

    from airflow_mlops.dags.batch_scoring import scoring_dag

    raw = yaml.safe_load((REPO / "dags" / "configs" / "demo_churn.yaml").read_text())
    raw["scoring"] = {"schedule": cron}
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml.safe_dump(raw))
    dag = scoring_dag(str(path), dag_id=f"t_scoring_{cron or 'none'}".replace("@", ""))
    uris = [a.uri for a in dag.timetable.asset_condition.objects]
    assert uris == ["mlops://data/demo_churn/incoming"]
    kind = type(dag.timetable).__name__
    assert kind == ("AssetOrTimeSchedule" if cron else "AssetTriggeredTimetable"), kind


@pytest.mark.parametrize(
    ("dag_id", "factory"),
    [
        ("ml_training", "airflow_mlops.dags.training:training_dag"),
        ("ml_batch_scoring", "airflow_mlops.dags.batch_scoring:scoring_dag"),
        ("ml_drift_monitor", "airflow_mlops.dags.drift_monitor:drift_monitor_dag"),
        ("ml_rollout", "airflow_mlops.dags.rollout:rollout_dag"),
    ],
)
def test_each_dag_file_is_its_package_factory_over_the_demo_config(dag_id, factory):
    import importlib

    from airflow.dag_processing.dagbag import DagBag

    module, name = factory.split(":")
    built = getattr(importlib.import_module(module), name)(
        REPO / "dags" / "configs" / "demo_churn.yaml", dag_id=f"{dag_id}_copy"
    )
    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    from_file = bag.dags[dag_id]

    def shape(dag):
        return {t.task_id: (type(t).__name__, sorted(t.upstream_task_ids)) for t in dag.tasks}

    assert shape(built) == shape(from_file)
    assert built.timetable == from_file.timetable
    assert built.default_args == from_file.default_args
    assert built.tags == from_file.tags and built.doc_md == from_file.doc_md
