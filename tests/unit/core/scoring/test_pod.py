"""The Kubernetes runner's core: the ``scoring.kubernetes`` section, pod plans, ``score`` CLI.

No cluster and no Docker engine exist here: these tests check the plain data that becomes a
pod, and run ``airflow-mlops score`` in-process on a real ONNX model against real files.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from airflow_mlops import cli
from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.packaging import context as packaging
from airflow_mlops.core.scoring.pod import (
    DEFAULT_RESOURCES,
    normalize_results,
    plan_pods,
    pod_resources,
)
from airflow_mlops.core.scoring.spec import KubernetesScoringSpec, ScoringSpec, quantity
from airflow_mlops.core.scoring.types import ScoringError, partition_target
from tests.conftest import REPO

REMOTE = {
    "input_uri": "s3://lake/in",
    "output_uri": "s3://lake/out",
    "monitoring_dir": "s3://lake/monitoring",
}
PINNED = {
    "name": "demo_churn",
    "version": "7",
    "model_uri": "models:/demo_churn/7",
    "reference": "champion",
}


def _kube(**raw):
    return ScoringSpec.from_dict({"runner": "kubernetes", **REMOTE, "kubernetes": raw}, "m.yaml")


def test_runner_defaults_to_worker_and_the_kubernetes_section_is_optional():
    spec = ScoringSpec.from_dict({})
    assert spec.runner == "worker" and spec.kubernetes is None
    spec = ScoringSpec.from_dict({"runner": "kubernetes", **REMOTE})
    assert spec.kubernetes == KubernetesScoringSpec()
    assert spec.kubernetes.namespace == "default"
    assert spec.kubernetes.on_finish_action == "delete_succeeded_pod"
    # A worker config may carry the section (switching runners is one key); it is checked too.
    spec = ScoringSpec.from_dict({"kubernetes": {"namespace": "ml"}})
    assert spec.runner == "worker" and spec.kubernetes.namespace == "ml"


def test_unknown_keys_name_the_key_and_the_file():
    with pytest.raises(ConfigError) as err:
        _kube(namespace="ml", nodeSelector={"a": "b"})
    assert str(err.value).startswith(
        "m.yaml: scoring.kubernetes: unknown key(s) ['nodeSelector']; known keys: ["
    )
    with pytest.raises(ConfigError, match=r"scoring.kubernetes: unknown key\(s\) \['imgae'\]"):
        ScoringSpec.from_dict({"kubernetes": {"imgae": "x"}}, "m.yaml")
    # ScoringSpec's own messages keep their form.
    with pytest.raises(ConfigError, match=r"^x.yaml: scoring: unknown key\(s\) \['batch'\]"):
        ScoringSpec.from_dict({"batch": 1}, "x.yaml")
    with pytest.raises(ConfigError, match=r"scoring.batch_rows must be an integer >= 1"):
        ScoringSpec.from_dict({"batch_rows": 0, "runner": "kubernetes", **REMOTE})


def test_runner_must_be_worker_or_kubernetes():
    with pytest.raises(
        ConfigError, match=r"^m.yaml: scoring.runner must be worker or kubernetes, got 'k8s'$"
    ):
        ScoringSpec.from_dict({"runner": "k8s"}, "m.yaml")


def test_kubernetes_runner_refuses_worker_paths_unless_a_pod_template_mounts_them():
    with pytest.raises(ConfigError) as err:
        ScoringSpec.from_dict(
            {"runner": "kubernetes", **REMOTE, "output_uri": "/data/scored"}, "m.yaml"
        )
    assert "scoring.output_uri is '/data/scored': a pod cannot see the worker's disk" in str(
        err.value
    )
    with pytest.raises(ConfigError, match=r"scoring.input_uri is not set \(the default is"):
        ScoringSpec.from_dict({"runner": "kubernetes"}, "m.yaml")
    with pytest.raises(ConfigError, match=r"scoring.monitoring_dir is 'file:///m'"):
        ScoringSpec.from_dict(
            {"runner": "kubernetes", **REMOTE, "monitoring_dir": "file:///m"}, "m.yaml"
        )
    # No sample, no monitoring folder needed.
    ScoringSpec.from_dict(
        {"runner": "kubernetes", **REMOTE, "monitoring_dir": None, "sample_rows": 0}
    )
    local = {k: f"/shared/{k}" for k in REMOTE}
    spec = ScoringSpec.from_dict(
        {"runner": "kubernetes", **local, "kubernetes": {"pod_template_file": "/t.yaml"}}
    )
    assert spec.output_uri == "/shared/output_uri"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"namespace": "ML_Team"}, r"scoring.kubernetes.namespace: 'ML_Team' is not a DNS-1123"),
        ({"resources": {"limits": {"memory": "1 GB"}}}, r"resources.limits.memory: '1 GB' is not"),
        ({"resources": {"limit": {"cpu": "1"}}}, r"resources: expected requests/limits"),
        ({"memory_floor": "lots"}, r"scoring.kubernetes.memory_floor: 'lots' is not"),
        ({"secret_env": {"AWS_ACCESS_KEY_ID": "s3-creds"}}, r"expected '<secret name>/<key>'"),
        ({"secret_env": {"1BAD": "s/k"}}, r"'1BAD' is not a valid environment variable name"),
        ({"env": ["A=1"]}, r"scoring.kubernetes.env: expected a mapping"),
        ({"secret_env_from": "s3-creds"}, r"secret_env_from: expected a list of Secret names"),
        ({"on_finish_action": "delete"}, r"on_finish_action must be one of"),
        ({"image_pull_policy": "always"}, r"image_pull_policy must be one of"),
        ({"startup_timeout_seconds": 0}, r"startup_timeout_seconds must be a positive integer"),
        ({"in_cluster": "yes"}, r"in_cluster must be true, false or null"),
    ],
)
def test_kubernetes_section_values_are_checked(raw, message):
    with pytest.raises(ConfigError, match=r"^m.yaml: .*" + message):
        _kube(**raw)


def test_quantities():
    assert quantity("500m") == 0.5 and quantity("2") == 2.0
    assert quantity("768Mi") == 768 * 2**20 and quantity("1G") == 1e9
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity("1.5 Gi")


def test_resources_come_from_config_then_profile_tags_then_defaults_with_a_memory_floor():
    kube = KubernetesScoringSpec()
    assert pod_resources(kube, {}) == DEFAULT_RESOURCES
    profile = {
        "mlops.profile.cpu_request": "300m",
        "mlops.profile.cpu_limit": "1500m",
        "mlops.profile.memory_request": "192Mi",
        "mlops.profile.memory_limit": "384Mi",
    }
    # The serving profile's 384Mi limit is below the streaming scorer's floor: raised.
    assert pod_resources(kube, profile) == {
        "requests": {"cpu": "300m", "memory": "192Mi"},
        "limits": {"cpu": "1500m", "memory": "768Mi"},
    }
    configured = KubernetesScoringSpec(
        resources={"limits": {"memory": "2Gi"}, "requests": {"cpu": 1}}, memory_floor=None
    )
    assert pod_resources(configured, profile) == {
        "requests": {"cpu": "1", "memory": "192Mi"},
        "limits": {"cpu": "1500m", "memory": "2Gi"},
    }
    no_floor = KubernetesScoringSpec(memory_floor=None)
    assert pod_resources(no_floor, profile)["limits"]["memory"] == "384Mi"


def test_a_request_above_its_limit_is_refused_with_both_figures():
    kube = KubernetesScoringSpec(resources={"requests": {"cpu": "4"}})
    with pytest.raises(ScoringError, match=r"the cpu request 4 is above its limit 2"):
        pod_resources(kube, {})


def test_plan_has_one_pod_per_partition_with_the_versions_image_and_worker_paths():
    spec = _kube(image_registry="ghcr.io/acme")
    spec = replace(spec, threads=2, sample_rows=100, batch_rows=1000)
    parts = ["s3://lake/in/date=2026-11-20/part-0.parquet", "s3://lake/in/date=2026-11-20/b"]
    plan = plan_pods(
        parts,
        PINNED,
        spec,
        output_template="s3://lake/out/date={date}/{partition}.parquet",
        key_columns=["customer_id"],
        seed=3,
        tags={"mlops.profile.cpu_request": "250m"},
    )
    assert len(plan) == 2
    first = plan[0]
    assert first["image"] == "ghcr.io/acme/mlops/demo_churn:7"
    assert first["container_resources"]["requests"]["cpu"] == "250m"
    assert first["labels"]["app.kubernetes.io/name"] == "demo-churn"
    assert first["labels"]["app.kubernetes.io/version"] == "7"
    assert first["arguments"] == [
        "score",
        "--model",
        "/app/model",
        "--input",
        parts[0],
        "--output",
        "s3://lake/out/date=2026-11-20/part-0.parquet",
        "--partition",
        "part-0",
        "--batch-rows",
        "1000",
        "--seed",
        "3",
        "--progress-seconds",
        "30",
        "--format",
        "auto",
        "--key-column",
        "customer_id",
        "--threads",
        "2",
        "--sample-rows",
        "100",
        "--monitoring-dir",
        "s3://lake/monitoring",
        "--sample-date",
        "2026-11-20",
        "--expect-name",
        "demo_churn",
        "--expect-version",
        "7",
        "--xcom-file",
        "/airflow/xcom/return.json",
    ]
    # The output URI is the one the worker would write.
    _, _, worker_output = partition_target(
        parts[1], "s3://lake/out/date={date}/{partition}.parquet"
    )
    assert plan[1]["arguments"][6] == worker_output == "s3://lake/out/date=2026-11-20/b.parquet"
    json.dumps(plan)  # travels through XCom


def test_plan_image_template_and_refusals():
    spec = _kube(image="registry.local/scorers/{name}:v{version}")
    plan = plan_pods(
        ["s3://in/p"], PINNED, spec, output_template="s3://o/{partition}", key_columns=(), seed=0
    )
    assert plan[0]["image"] == "registry.local/scorers/demo_churn:v7"
    local = PINNED | {"version": "local-0123456789ab", "model_uri": "/m/model.onnx"}
    with pytest.raises(ScoringError, match=r"serving image of a registered version.*/m/model.onnx"):
        plan_pods(["s3://in/p"], local, spec, output_template="s3://o/x", key_columns=(), seed=0)
    with pytest.raises(ScoringError, match=r"uses \{date\} but input s3://in/p has no date="):
        plan_pods(
            ["s3://in/p"], PINNED, spec, output_template="s3://o/{date}/x", key_columns=(), seed=0
        )


def _result(partition: str, version: str = "7") -> dict:
    return {
        "input_uri": partition,
        "output_uri": f"out/{partition}.parquet",
        "rejects_uri": None,
        "rows_in": 10,
        "rows_out": 10,
        "rows_rejected": 0,
        "model_name": "demo_churn",
        "model_version": version,
        "seconds": 1.0,
        "rows_per_second": 10.0,
        "peak_rss_mb": 300.0,
        "sample_uri": None,
    }


def test_results_of_both_runners_normalize_to_score_results():
    worker = _result("a")
    pod = json.loads(json.dumps(_result("b")))  # what the XCom sidecar's return.json decodes to
    text = json.dumps(_result("c"))  # a sidecar value left as text
    assert normalize_results([worker, pod, text, None]) == [worker, pod, _result("c")]
    assert normalize_results(None) == []
    with pytest.raises(
        ScoringError, match=r"result 0 is not a ScoreResult: missing \['model_name'"
    ):
        normalize_results([{k: v for k, v in worker.items() if k != "model_name"}])
    with pytest.raises(ScoringError, match=r"result 1 is not JSON"):
        normalize_results([worker, "scored ok"])
    with pytest.raises(ScoringError, match=r"result 0 is a list"):
        normalize_results([[worker]])


# The container side, on a real model.


@pytest.fixture(scope="module")
def model_folder(onnx_model, tmp_path_factory) -> Path:
    """The model folder packaging bakes into the image, for version 7."""
    from airflow_mlops.core.model.reference import resolve_model

    resolved = resolve_model(onnx_model, name="demo_churn")
    meta = {
        "name": "demo_churn",
        "version": "7",
        "numeric_features": list(resolved.numeric_features),
        "categorical_features": list(resolved.categorical_features),
        "classes": list(resolved.classes),
        "input_types": {c: "double" for c in resolved.numeric_features}
        | {c: "string" for c in resolved.categorical_features},
    }
    return packaging.write_model_folder(
        tmp_path_factory.mktemp("image") / "model", onnx_model, meta
    )


@pytest.fixture
def partition(tmp_path) -> str:
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    frame = generate(2_500, seed=5)
    frame.loc[[7], "monthly_charges"] = np.inf
    path = tmp_path / "in" / "date=2026-11-20" / "part-0.parquet"
    write_parquet_atomic(frame, str(path))
    return str(path)


def _cli(args, capsys):
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err


def test_score_command_writes_what_score_partition_writes_and_the_xcom_file(
    model_folder, onnx_model, partition, tmp_path, capsys, caplog
):
    from airflow_mlops.core.model.reference import resolve_model
    from airflow_mlops.core.scoring.partition import score_partition

    caplog.set_level(logging.INFO)  # in a fresh process the command sets this up itself
    xcom = tmp_path / "airflow" / "xcom" / "return.json"
    out = tmp_path / "scored" / "date={date}" / "{partition}.parquet"
    code, lines, err = _cli(
        [
            "score",
            "--model",
            str(model_folder),
            "--input",
            partition,
            "--output",
            str(out),
            "--key-column",
            "customer_id",
            "--batch-rows",
            "700",
            "--sample-rows",
            "50",
            "--monitoring-dir",
            str(tmp_path / "monitoring"),
            "--expect-name",
            "demo_churn",
            "--expect-version",
            "7",
            "--xcom-file",
            str(xcom),
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(lines[-1])
    assert json.loads(xcom.read_text()) == result
    assert normalize_results([result]) == [result]
    assert result["model_name"] == "demo_churn" and result["model_version"] == "7"
    assert result["output_uri"] == str(tmp_path / "scored" / "date=2026-11-20" / "part-0.parquet")
    assert (result["rows_in"], result["rows_out"], result["rows_rejected"]) == (2_500, 2_499, 1)
    assert result["sample_uri"].endswith(
        "model=demo_churn/source=batch/version=7/date=2026-11-20/part-0.parquet"
    )
    assert "scored part-0 with demo_churn v7" in caplog.text

    worker = score_partition(
        partition,
        str(tmp_path / "worker.parquet"),
        resolve_model(onnx_model, name="demo_churn"),
        key_columns=["customer_id"],
        batch_rows=700,
    )
    pod_rows = pq.read_table(result["output_uri"]).to_pandas()
    worker_rows = pq.read_table(worker.output_uri).to_pandas()
    probs = ["probability_0", "probability_1"]
    assert pod_rows["customer_id"].tolist() == worker_rows["customer_id"].tolist()
    assert pod_rows["prediction"].tolist() == worker_rows["prediction"].tolist()
    assert np.array_equal(pod_rows[probs].to_numpy(), worker_rows[probs].to_numpy())
    pod_rejects = pq.read_table(result["rejects_uri"]).to_pandas()
    assert pod_rejects.equals(pq.read_table(worker.rejects_uri).to_pandas())


def test_score_command_writes_the_xcom_file_named_by_the_environment(
    model_folder, partition, tmp_path, capsys, monkeypatch
):
    xcom = tmp_path / "x" / "return.json"
    monkeypatch.setenv("MLOPS_XCOM_FILE", str(xcom))
    args = ["score", "--model", str(model_folder), "--input", partition]
    code, lines, err = _cli([*args, "--output", str(tmp_path / "o.parquet")], capsys)
    assert code == 0, err
    assert json.loads(xcom.read_text()) == json.loads(lines[-1])


def test_score_command_refuses_an_image_holding_another_version(
    model_folder, partition, tmp_path, capsys
):
    xcom = tmp_path / "return.json"
    args = ["score", "--model", str(model_folder), "--input", partition, "--output"]
    args += [str(tmp_path / "o.parquet"), "--expect-version", "8", "--xcom-file", str(xcom)]
    code, lines, err = _cli(args, capsys)
    assert code == 2 and lines == []
    assert "holds demo_churn v7, but the run pinned demo_churn v8" in err
    assert not xcom.exists() and not (tmp_path / "o.parquet").exists()


def test_score_command_fails_a_bad_partition_with_exit_2_and_writes_nothing(
    model_folder, tmp_path, capsys
):
    from airflow_mlops.core.data.io import write_parquet_atomic
    from airflow_mlops.devstack.demo_data import generate

    src = tmp_path / "part-9.parquet"
    write_parquet_atomic(generate(100, seed=1).drop(columns=["tenure_months"]), str(src))
    args = ["score", "--model", str(model_folder), "--input", str(src)]
    code, lines, err = _cli([*args, "--output", str(tmp_path / "o.parquet")], capsys)
    assert code == 2 and lines == []
    assert "partition part-9" in err and "tenure_months" in err
    assert not (tmp_path / "o.parquet").exists()


def test_score_command_reads_a_bare_onnx_file_where_onnx_is_installed(
    onnx_model, partition, tmp_path, capsys
):
    args = ["score", "--model", onnx_model, "--input", partition, "--sample-rows", "0"]
    code, lines, err = _cli([*args, "--output", str(tmp_path / "o.parquet")], capsys)
    assert code == 0, err
    assert json.loads(lines[-1])["model_version"].startswith("local-")


# What the image gets.


def test_image_requirements_cover_the_batch_scorer():
    names = {pin.split("==")[0] for pin in packaging.serving_requirements()}
    assert {"pandas", "pyarrow", "fsspec", "s3fs", "onnxruntime", "numpy"} <= names
    assert not names & {"apache-airflow", "mlflow", "scikit-learn", "onnx", "kubernetes"}


def test_a_protocol_package_missing_here_is_left_out_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(packaging, "BATCH_SCORING_PACKAGES", ("s3fs", "no-such-dist-for-gcs"))
    pins = packaging.serving_requirements()
    assert any(pin.startswith("s3fs==") for pin in pins)
    assert not any("no-such-dist" in pin for pin in pins)
    assert "no-such-dist-for-gcs is not installed here" in caplog.text


def test_batch_scorer_scan_refuses_a_module_level_mlflow_import(tmp_path):
    pkg = tmp_path / "airflow_mlops"
    (pkg / "serving").mkdir(parents=True)
    (pkg / "core" / "scoring").mkdir(parents=True)
    (pkg / "serving" / "app.py").write_text("import json\n")
    partition = pkg / "core" / "scoring" / "partition.py"
    partition.write_text("import pyarrow\nfrom mlflow import pyfunc\n")
    assert packaging.batch_scoring_imports(pkg) == {"pyarrow", "mlflow"}
    with pytest.raises(packaging.PackagingError, match=r"batch scorer .* imports \['mlflow'\]"):
        packaging.serving_requirements(pkg)


def test_the_wheel_installs_the_airflow_mlops_command(tmp_path):
    import zipfile

    wheel = packaging.build_wheel(tmp_path / "w")
    with zipfile.ZipFile(wheel) as zf:
        entry_points = zf.read("airflow_mlops-0.1.0.dist-info/entry_points.txt").decode()
    assert entry_points == "[console_scripts]\nairflow-mlops = airflow_mlops.cli:main\n"
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, "--target", str(target), str(wheel)], check=True)
    command = target / "bin" / "airflow-mlops"
    out = subprocess.run(
        [str(command), "score", "--help"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--expect-version" in out.stdout
    # The Dockerfile keeps the server as its entry point; pods override it with this command.
    text = packaging.dockerfile({}, wheel.name)
    assert "#   airflow-mlops score --model /app/model" in text


def test_the_documented_example_section_is_a_valid_config():
    import yaml

    text = (REPO / "docs" / "scoring.md").read_text()
    section = text.split("## Scale-out on Kubernetes", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = ScoringSpec.from_dict(yaml.safe_load(example)["scoring"], "docs/scoring.md")
    assert spec.runner == "kubernetes"
    assert spec.kubernetes.secret_env["AWS_ACCESS_KEY_ID"] == "s3-credentials/access_key"
    assert {f.name for f in fields(KubernetesScoringSpec)} <= set(
        yaml.safe_load(example)["scoring"]["kubernetes"]
    )


def test_plan_refuses_two_partitions_that_would_write_one_output():
    parts = [
        "s3://lake/in/date=2026-11-20/part-x.csv",
        "s3://lake/in/date=2026-11-20/part-x.parquet",
    ]
    with pytest.raises(ScoringError, match=r"part-x\.csv.*part-x\.parquet.*same output"):
        plan_pods(
            parts,
            PINNED,
            _kube(),
            output_template="s3://lake/out/date={date}/{partition}.parquet",
            key_columns=(),
            seed=0,
        )
