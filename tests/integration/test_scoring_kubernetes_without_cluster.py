"""The Kubernetes runner with real parts, up to the cluster boundary. No cluster, no Docker.

What runs for real:

- ``ml_batch_scoring`` (``runner: kubernetes``) in an Airflow ``dag.test()`` up to ``plan_pods``:
  the champion resolved in a real MLflow server, the day's partitions listed, the pods planned
  (the version's registry tags read). The mapped ``KubernetesPodOperator`` tasks are not run:
  no cluster exists here and nothing stands in for one. Their pods are built by the provider's
  ``build_pod_request_obj(dry_run=True)`` from the run's real plan and validated against the
  Kubernetes 1.33 schemas.
- The serving image's build context for the champion (``packaging.build_context``). No Docker
  engine exists, so no image is built. The context's wheel is installed into a folder and a
  planned pod's exact command runs as a local process that can import only what
  ``requirements-serving.txt`` pins (and what those depend on): Airflow, MLflow, scikit-learn
  and onnx are not importable in it. Two paths are mapped, as the image would have them
  elsewhere: ``/app/model`` → the context's ``model/`` and ``/airflow/xcom/return.json`` →
  a temporary file.
- Its outputs are compared with the worker runner's path (``resolve_model`` from the registry +
  ``score_partition``, what ``BatchScoreOperator`` runs) on the same rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.integration

kubernetes_validate = pytest.importorskip("kubernetes_validate")
pytest.importorskip("airflow.providers.cncf.kubernetes")

DAY = "2026-11-20"
DAG_ID = "ml_batch_scoring"
REPO = Path(__file__).resolve().parents[2]

# Only the distributions the image installs (and the standard library) may be imported.
_GUARD = """
import importlib.abc, importlib.machinery, sys, sysconfig

_ALLOWED = frozenset({allowed!r})
_STDLIB = tuple({{sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}})


def _in_stdlib(name):
    # Private stdlib modules such as _sysconfigdata_* are not in sys.stdlib_module_names.
    spec = importlib.machinery.PathFinder.find_spec(name)
    origin = (spec.origin or "") if spec else ""
    return origin.startswith(_STDLIB) and "site-packages" not in origin


class _ServingImageOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _ALLOWED or top in sys.stdlib_module_names:
            return None
        if path is None and _in_stdlib(name):
            return None
        raise ModuleNotFoundError(f"No module named {{name!r}} in the serving image", name=name)


sys.meta_path.insert(0, _ServingImageOnly())
"""


def _image_modules(requirements: Path) -> set[str]:
    """Top-level modules of the pinned distributions and everything they require."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = [
        line.strip()
        for line in requirements.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    todo = [Requirement(pin) for pin in pins]
    for req in todo:
        installed = metadata.version(req.name)
        assert req.specifier.contains(installed), f"{req} pinned but {installed} installed"
    seen: set[str] = set()
    names = [r.name for r in todo]
    while names:
        name = canonicalize_name(names.pop())
        if name in seen:
            continue
        seen.add(name)
        for raw in metadata.distribution(name).requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                names.append(req.name)
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if any(canonicalize_name(d) in seen for d in dists)
    } | {"airflow_mlops"}


@pytest.fixture(scope="module")
def stack(champion, airflow_db, tmp_path_factory, demo_config_path):
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    root = tmp_path_factory.mktemp("k8s-scoring")
    day = root / "lake" / "incoming" / f"date={DAY}"
    write_parquet_atomic(generate(3_000, seed=21), str(day / "part-0.parquet"))
    bad = generate(2_000, seed=22)
    bad.loc[[5, 6], "monthly_charges"] = np.inf
    write_parquet_atomic(bad, str(day / "part-1.parquet"))
    # The pods would see the lake through this claim, mounted at the same path.
    template = root / "pod-template.yaml"
    template.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "scoring-template"},
                "spec": {
                    "containers": [
                        {
                            "name": "base",
                            "image": "placeholder",
                            "volumeMounts": [{"name": "lake", "mountPath": str(root / "lake")}],
                        }
                    ],
                    "volumes": [
                        {"name": "lake", "persistentVolumeClaim": {"claimName": "scoring-lake"}}
                    ],
                },
            }
        )
    )
    raw = yaml.safe_load(demo_config_path.read_text())
    raw["name"] = "fixture_churn"
    raw["data"]["uri"] = str(champion["data"])
    raw["scoring"] = {
        "runner": "kubernetes",
        "input_uri": str(root / "lake" / "incoming"),
        "output_uri": str(root / "lake" / "scored"),
        "monitoring_dir": str(root / "lake" / "monitoring"),
        "sample_rows": 200,
        "batch_rows": 1_000,
        "threads": 1,
        "kubernetes": {"namespace": "ml", "pod_template_file": str(template)},
    }
    config = root / "fixture_churn_k8s.yaml"
    config.write_text(yaml.safe_dump(raw))
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": champion["tracking"].tracking_uri}
    )
    # dag.test() writes the DAG from the DAGs folder to the database: the file reads this.
    os.environ["MLOPS_SCORING_CONFIG"] = str(config)
    yield {
        "root": root,
        "day": day,
        "config": config,
        "version": champion["registered"]["version"],
        "champion": champion,
    }
    os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
    os.environ.pop("MLOPS_SCORING_CONFIG", None)


@pytest.fixture(scope="module")
def planned(stack):
    """``dag.test()`` of the kubernetes variant up to ``plan_pods``; its real XCom."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(REPO / "dags" / "ml_batch_scoring.py"))
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert dag.get_task("score").operator_class.__name__ == "KubernetesPodOperator"
    # Only up to the plan: the mapped pods need a cluster, and there is none.
    upto = dag.partial_subset(task_ids=["plan_pods"], include_upstream=True)
    run = upto.test(run_conf={"date": DAY})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == dict.fromkeys(("resolve_model", "list_partitions", "plan_pods"), "success")
    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run.run_id, dag_ids=DAG_ID, task_ids="plan_pods", key="return_value"
            )
        ).first()
        plan = XComModel.deserialize_value(row)
    return {"dag": dag, "plan": plan}


def test_the_dag_plans_pods_of_the_pinned_version_up_to_the_cluster_boundary(stack, planned):
    from kubernetes.client import ApiClient

    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.scoring.pod import pod_resources
    from airflow_mlops.core.scoring.spec import KubernetesScoringSpec

    plan, version = planned["plan"], stack["version"]
    assert len(plan) == 2
    # Whatever the version's tags hold when this runs (another test may have profiled it):
    # the profile's figures, else the defaults, then the memory floor.
    tags = registry.get_version(stack["champion"]["tracking"], "fixture_churn", version).tags
    expected = pod_resources(KubernetesScoringSpec(), tags)
    for i, pod_plan in enumerate(plan):
        assert pod_plan["image"] == f"mlops/fixture_churn:{version}"  # packaging's tag
        assert pod_plan["container_resources"] == expected
        args = pod_plan["arguments"]
        assert args[args.index("--input") + 1] == str(stack["day"] / f"part-{i}.parquet")
        assert args[args.index("--expect-version") + 1] == version

    score = planned["dag"].get_task("score")
    for pod_plan in plan:
        kwargs = pod_plan
        for transform in score.expand_input.value.callables:
            kwargs = transform(kwargs)
        task = score.unmap(kwargs)
        task.render_template_fields({})
        doc = ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))
        kubernetes_validate.validate(doc, "1.33", strict=True)
        base = {c["name"]: c for c in doc["spec"]["containers"]}["base"]
        assert base["image"] == f"mlops/fixture_churn:{version}"
        assert base["args"] == pod_plan["arguments"]
        assert {v["name"] for v in doc["spec"]["volumes"]} >= {"lake", "tmp", "xcom"}
        assert str(stack["root"] / "lake") in {m["mountPath"] for m in base["volumeMounts"]}


@pytest.fixture(scope="module")
def image_env(stack):
    """The build context's wheel in a folder, and an environment limited to the image's pins."""
    from airflow_mlops.core.packaging import context as packaging

    champion = stack["champion"]
    ctx = packaging.build_context(
        champion["tracking"], "fixture_churn", stack["version"], stack["root"] / "ctx"
    )
    site = stack["root"] / "image-site"
    (wheel,) = (Path(ctx.path) / "wheels").glob("*.whl")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, "--target", str(site), str(wheel)], check=True)
    guard = stack["root"] / "guard"
    guard.mkdir()
    allowed = sorted(_image_modules(Path(ctx.path) / "requirements-serving.txt"))
    (guard / "sitecustomize.py").write_text(_GUARD.format(allowed=allowed))
    env = {
        "PATH": f"{site / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": f"{guard}:{site}",
        "HOME": str(stack["root"]),
        "LANG": "C.UTF-8",
    }
    return {"ctx": Path(ctx.path), "env": env, "site": site}


def test_the_image_environment_has_the_wheel_and_not_airflow_mlflow_or_onnx(image_env):
    probe = (
        "import importlib, json, airflow_mlops.cli as c\n"
        "missing = []\n"
        "for m in ('airflow', 'mlflow', 'sklearn', 'onnx', 'kubernetes'):\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError:\n"
        "        missing.append(m)\n"
        "print(json.dumps({'cli': c.__file__, 'missing': missing}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=image_env["env"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(out.stdout)
    assert found["cli"].startswith(str(image_env["site"]))  # the wheel, not the repo
    assert found["missing"] == ["airflow", "mlflow", "sklearn", "onnx", "kubernetes"]


@pytest.mark.parametrize("index", [0, 1])
def test_the_container_command_scores_like_the_worker_without_cluster_or_docker(
    stack, planned, image_env, index
):
    from airflow_mlops.core.model.reference import resolve_model
    from airflow_mlops.core.scoring.container import (
        CONTAINER_COMMAND,
        CONTAINER_MODEL_DIR,
        XCOM_RETURN_FILE,
    )
    from airflow_mlops.core.scoring.partition import score_partition

    root, version = stack["root"], stack["version"]
    xcom = root / f"xcom-{index}" / "return.json"
    mapped = {CONTAINER_MODEL_DIR: str(image_env["ctx"] / "model"), XCOM_RETURN_FILE: str(xcom)}
    arguments = [mapped.get(a, a) for a in planned["plan"][index]["arguments"]]
    proc = subprocess.run(
        [*CONTAINER_COMMAND, *arguments],
        env=image_env["env"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(xcom.read_text()) == result
    assert f"scored part-{index} with fixture_churn v{version}" in proc.stderr
    assert result["model_version"] == version
    print(f"part-{index}: container peak RSS {result['peak_rss_mb']} MB")

    # The worker runner's path on the same partition, with the same settings.
    worker_root = root / f"worker-{index}"
    source = str(stack["day"] / f"part-{index}.parquet")
    worker = score_partition(
        source,
        str(worker_root / "scored" / f"part-{index}.parquet"),
        resolve_model(
            {"name": "fixture_churn", "version": version, "model_uri": f"models:/x/{version}"},
            stack["champion"]["tracking"],
        ),
        key_columns=("customer_id",),
        batch_rows=1_000,
        threads=1,
        monitoring_dir=str(worker_root / "monitoring"),
        sample_rows=200,
        sample_date=DAY,
        seed=stack["champion"]["config"].data.seed,
        partition=f"part-{index}",
    )
    assert result["output_uri"] == str(
        root / "lake" / "scored" / f"date={DAY}" / f"part-{index}.parquet"
    )
    for key in ("rows_in", "rows_out", "rows_rejected", "model_name", "model_version"):
        assert result[key] == getattr(worker, key), key
    pod_rows = pq.read_table(result["output_uri"]).to_pandas()
    worker_rows = pq.read_table(worker.output_uri).to_pandas()
    same = [c for c in worker_rows.columns if c != "scored_at"]
    assert list(pod_rows.columns) == list(worker_rows.columns)
    assert pod_rows[same].equals(worker_rows[same])
    if index == 1:
        assert result["rows_rejected"] == 2
        pod_rejects = pq.read_table(result["rejects_uri"]).to_pandas()
        assert pod_rejects.equals(pq.read_table(worker.rejects_uri).to_pandas())
    pod_sample = pq.read_table(result["sample_uri"]).to_pandas()
    worker_sample = pq.read_table(worker.sample_uri).to_pandas()
    same = [c for c in worker_sample.columns if c != "scored_at"]
    assert len(pod_sample) == 200 and pod_sample[same].equals(worker_sample[same])
