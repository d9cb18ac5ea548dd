"""``ml_batch_scoring`` with ``scoring.runner: kubernetes``, built from a temporary config.

There is no Kubernetes cluster here and nothing stands in for one. The pod of one mapped
partition is built by the cncf provider's own ``KubernetesPodOperator.build_pod_request_obj``
(``dry_run=True``: no API client) from the DAG's real partial arguments and mapping function,
then validated against the Kubernetes 1.33 schemas shipped by ``kubernetes-validate`` (offline,
strict). Nothing is submitted; whether a cluster runs the pod is outside what is tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.scoring.pod import plan_pods

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate (offline Kubernetes schemas) not installed"
)
pytest.importorskip("airflow.providers.cncf.kubernetes", reason="cncf provider not installed")

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.33"
DAY = "2026-11-20"
PINNED = {
    "name": "demo_churn",
    "version": "12",
    "model_uri": "models:/demo_churn/12",
    "reference": "champion",
}
PROFILE = {
    "mlops.profile.cpu_request": "300m",
    "mlops.profile.cpu_limit": "1500m",
    "mlops.profile.memory_request": "192Mi",
    "mlops.profile.memory_limit": "384Mi",
}
SCORING = {
    "runner": "kubernetes",
    "input_uri": "s3://lake/churn/incoming",
    "output_uri": "s3://lake/churn/scored",
    "monitoring_dir": "s3://lake/monitoring",
    "sample_rows": 1000,
    "kubernetes": {
        "namespace": "ml-scoring",
        "image_registry": "ghcr.io/acme",
        "service_account": "churn-scorer",
        "env": {"AWS_ENDPOINT_URL": "http://minio.storage:9000", "AWS_DEFAULT_REGION": "eu-1"},
        "secret_env": {
            "AWS_ACCESS_KEY_ID": "s3-credentials/access_key",
            "AWS_SECRET_ACCESS_KEY": "s3-credentials/secret_key",
        },
        "secret_env_from": ["scoring-extra"],
    },
}


def _config(tmp_path: Path, scoring: dict) -> Path:
    raw = yaml.safe_load((REPO / "dags" / "configs" / "demo_churn.yaml").read_text())
    raw["scoring"] = scoring
    path = tmp_path / "churn_k8s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def k8s_dag(tmp_path):
    from airflow_mlops.dags.batch_scoring import scoring_dag

    return scoring_dag(str(_config(tmp_path, SCORING)), dag_id="ml_batch_scoring_k8s")


def test_kubernetes_runner_maps_pods_over_the_plan_without_cluster(k8s_dag):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from airflow_mlops.operators.scoring import PlanScoringPodsOperator, scoring_pod_kwargs

    upstream = {t.task_id: set(t.upstream_task_ids) for t in k8s_dag.tasks}
    assert upstream == {
        "resolve_model": set(),
        "list_partitions": {"resolve_model"},
        "plan_pods": {"resolve_model", "list_partitions"},
        "score": {"plan_pods"},
        "summary": {"score", "list_partitions"},
    }
    assert isinstance(k8s_dag.get_task("plan_pods"), PlanScoringPodsOperator)
    score = k8s_dag.get_task("score")
    assert score.is_mapped and score.operator_class is KubernetesPodOperator
    partial = score.partial_kwargs
    assert partial["do_xcom_push"] is True
    assert partial["on_finish_action"] == "delete_succeeded_pod"
    assert partial["cmds"] == ["airflow-mlops"]
    assert partial["namespace"] == "ml-scoring"
    mapping = score.expand_input.value
    assert mapping.arg.operator.task_id == "plan_pods"
    assert mapping.callables == [scoring_pod_kwargs]


def test_pod_of_one_partition_renders_and_validates_without_cluster(k8s_dag):
    from kubernetes.client import ApiClient, V1ResourceRequirements

    from airflow_mlops.core.scoring.spec import ScoringSpec

    plan_task = k8s_dag.get_task("plan_pods")
    spec = ScoringSpec.from_dict(SCORING)
    partitions = [f"s3://lake/churn/incoming/date={DAY}/part-{i}.parquet" for i in range(3)]
    # What plan_pods returns for a registered version with profiling tags (its registry
    # lookup is the only part not run here: tests/integration covers it against MLflow).
    plan = plan_pods(
        partitions,
        PINNED,
        spec,
        output_template=plan_task.output_uri,
        key_columns=("customer_id",),
        seed=42,
        tags=PROFILE,
    )
    plan = json.loads(json.dumps(plan))  # as XCom hands it back
    score = k8s_dag.get_task("score")
    kwargs = plan[1]
    for transform in score.expand_input.value.callables:
        kwargs = transform(kwargs)
    task = score.unmap(kwargs)
    assert isinstance(task.container_resources, V1ResourceRequirements)  # as the operator types it
    task.render_template_fields({})  # the templated fields hold no Jinja: rendering keeps them
    pod = task.build_pod_request_obj(dry_run=True)
    doc = ApiClient().sanitize_for_serialization(pod)
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    assert doc["metadata"]["namespace"] == "ml-scoring"
    assert doc["metadata"]["name"].startswith("score-demo-churn-")
    assert doc["metadata"]["labels"]["app.kubernetes.io/version"] == "12"
    assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "batch-scoring"
    pod_spec = doc["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["serviceAccountName"] == "churn-scorer"
    base = {c["name"]: c for c in pod_spec["containers"]}["base"]
    assert base["image"] == "ghcr.io/acme/mlops/demo_churn:12"
    assert base["command"] == ["airflow-mlops"]
    args = base["args"]
    assert args == plan[1]["arguments"]
    assert args[:7] == [
        "score",
        "--model",
        "/app/model",
        "--input",
        partitions[1],
        "--output",
        f"s3://lake/churn/scored/date={DAY}/part-1.parquet",
    ]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--expect-version"] == "12" and flags["--expect-name"] == "demo_churn"
    assert flags["--xcom-file"] == "/airflow/xcom/return.json"
    assert flags["--monitoring-dir"] == "s3://lake/monitoring"
    assert flags["--sample-date"] == DAY and flags["--seed"] == "42"
    # Profile figures, with the serving profile's memory limit raised to the scorer's floor.
    assert base["resources"] == {
        "requests": {"cpu": "300m", "memory": "192Mi"},
        "limits": {"cpu": "1500m", "memory": "768Mi"},
    }
    env = {e["name"]: e for e in base["env"]}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-credentials",
        "key": "access_key",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "secret_key"
    assert {"secretRef": {"name": "scoring-extra"}} in base["envFrom"]
    assert base["securityContext"]["runAsNonRoot"] is True
    assert base["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in base["volumeMounts"]}
    assert {"/tmp", "/airflow/xcom"} <= mounts
    # The provider's sidecar reads /airflow/xcom/return.json, which the command writes.
    assert "airflow-xcom-sidecar" in {c["name"] for c in pod_spec["containers"]}


def test_a_wrong_pod_fails_the_schema_so_the_validation_means_something(k8s_dag):
    from kubernetes.client import ApiClient

    score = k8s_dag.get_task("score")
    kwargs = score.expand_input.value.callables[0](
        {"arguments": ["score"], "image": "x:1", "labels": {}, "container_resources": {}}
    )
    doc = ApiClient().sanitize_for_serialization(
        score.unmap(kwargs).build_pod_request_obj(dry_run=True)
    )
    doc["spec"]["containers"][0]["resources"] = {"limits": {"cpu": ["2"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_summary_takes_the_results_of_either_runner(k8s_dag, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from airflow.sdk.exceptions import AirflowFailException

    def result(partition, version="12"):
        # The summary checks each result against its files: write them, as a pod would have.
        out, rejects = tmp_path / f"{partition}.out", tmp_path / f"{partition}.rejects"
        pq.write_table(pa.table({"x": [1, 2, 3, 4]}), out)
        pq.write_table(pa.table({"x": [5]}), rejects)
        return {
            "input_uri": partition,
            "output_uri": str(out),
            "rejects_uri": str(rejects),
            "rows_in": 5,
            "rows_out": 4,
            "rows_rejected": 1,
            "model_name": "demo_churn",
            "model_version": version,
            "seconds": 0.5,
            "rows_per_second": 10.0,
            "peak_rss_mb": 200.0,
            "sample_uri": None,
        }

    summary = k8s_dag.get_task("summary").python_callable
    worker, pod = result("a"), json.loads(json.dumps(result("b")))
    out = summary([worker, pod], ["a", "b"])
    assert (out["scored"], out["rows_in"], out["model_versions"]) == (2, 10, ["demo_churn v12"])
    # A pod that failed (or wrote no return.json) leaves no result: named as missing.
    with pytest.raises(AirflowFailException, match=r"1 of 2 partition\(s\) were not scored.*'b'"):
        summary([worker, None], ["a", "b"])
    with pytest.raises(AirflowFailException, match=r"result 1 is not a ScoreResult"):
        summary([worker, {"rows": 3}], ["a", "b"])


def test_an_unknown_kubernetes_key_fails_the_dag_build_naming_the_key_and_file(tmp_path):
    from airflow_mlops.dags.batch_scoring import scoring_dag

    bad = {**SCORING, "kubernetes": {**SCORING["kubernetes"], "service_acount": "x"}}
    path = _config(tmp_path, bad)
    with pytest.raises(ConfigError) as err:
        scoring_dag(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: scoring.kubernetes: unknown key(s) ['service_acount']")


_PROBE = r"""
import json, sys, time, importlib.util
before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
dag = module.dag
score = dag.get_task("score")
new = {m.split(".")[0] for m in set(sys.modules) - before}
print(json.dumps({"seconds": elapsed, "kubernetes": "kubernetes" in new,
                  "operator": score.operator_class.__name__, "tasks": sorted(dag.task_ids)}))
"""


def _parse(config: Path | None) -> dict:
    import os

    env = dict(os.environ)
    if config is not None:
        env["MLOPS_SCORING_CONFIG"] = str(config)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(REPO / "dags" / "ml_batch_scoring.py")],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_demo_config_keeps_the_worker_runner_and_never_imports_the_provider():
    parsed = _parse(None)
    assert parsed["operator"] == "BatchScoreOperator"
    assert parsed["tasks"] == ["list_partitions", "resolve_model", "score", "summary"]
    assert parsed["kubernetes"] is False


def test_the_kubernetes_variant_parses_from_the_dag_file(tmp_path):
    parsed = _parse(_config(tmp_path, SCORING))
    assert parsed["operator"] == "KubernetesPodOperator"
    assert "plan_pods" in parsed["tasks"]
    # The provider's import is the cost of this runner at parse time (see docs/scoring.md).
    print(f"kubernetes variant parsed in {parsed['seconds']:.2f} s")
