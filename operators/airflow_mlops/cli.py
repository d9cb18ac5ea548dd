"""The ``airflow-mlops`` command: the demo, the local UI stack, and the demo data generator."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from airflow_mlops import devstack

DEMO_CONFIG = devstack.REPO_ROOT / "dags" / "configs" / "demo_churn.yaml"
DEMO_ROWS = 200_000


def _say(text: str = "") -> None:
    print(text, flush=True)


def _ensure_demo_data(home: Path, rows: int) -> Path:
    from airflow_mlops.core.demo_data import write_dataset

    path = home / "data" / "demo_churn" / "train.parquet"
    if not path.exists():
        started = time.perf_counter()
        write_dataset(str(path), rows=rows, seed=0)
        _say(f"generated {rows:,} demo rows in {time.perf_counter() - started:.1f}s -> {path}")
    return path


def _version_summary(tracking: Any, name: str) -> list[str]:
    from airflow_mlops.core import registry

    lines = []
    versions = registry.search_versions(tracking, name)
    if not versions:
        return [f"  no version of {name} is registered"]
    latest = versions[0]
    tags = latest.tags
    t = "mlops."
    lines.append(
        f"  dataset     {tags.get(t + 'data.uri')}: {tags.get(t + 'data.rows')} rows, "
        f"sha256 {tags.get(t + 'data.sha256', '')[:16]}…"
    )
    lines.append(f"  validation  {tags.get(t + 'validation.summary')}")
    metrics = {
        k.removeprefix(t + "metric."): v for k, v in tags.items() if k.startswith(t + "metric.")
    }
    shown = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(metrics.items()))
    lines.append(f"  metrics     {shown}")
    lines.append(
        f"  parity      max |Δp| {float(tags.get(t + 'parity.max_abs_diff', 'nan')):.2e}, "
        f"{tags.get(t + 'parity.label_disagreements')} label disagreements "
        f"on {tags.get(t + 'parity.rows')} holdout rows"
    )
    lines.append(
        f"  gates       {tags.get(t + 'evaluation.summary')} "
        f"({tags.get(t + 'evaluation.champion_basis', '')})"
    )
    for gate in filter(None, tags.get(t + "evaluation.gates", "").split("; ")):
        lines.append(f"                {gate}")
    lines.append(f"  promotion   {tags.get(t + 'promotion', 'not decided')}")
    lines.append("  registry:")
    for found in versions[:5]:
        # Searches do not return aliases; a version read by number does.
        v = registry.get_version(tracking, name, found.version) or found
        aliases = ", ".join(f"@{a}" for a in v.aliases) or "-"
        lines.append(f"    {name} v{v.version:<4} {aliases}")
    return lines


def _check_champion(tracking: Any, name: str) -> str:
    """Load the champion both ways a user would and compare with the native model."""
    import mlflow
    import numpy as np

    from airflow_mlops.core import registry
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.data import load_frame
    from airflow_mlops.core.onnx import load_session, predict_proba_onnx

    champion = registry.get_version(tracking, name, registry.CHAMPION)
    if champion is None:
        return "no champion"
    config = load_config(DEMO_CONFIG)
    frame = load_frame(str(config.data.uri)).head(2000)
    features = frame[list(config.data.features)]
    with tracking.activate():
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        native = mlflow.sklearn.load_model(f"runs:/{champion.run_id}/native")
    proba_pyfunc = pyfunc.predict(features).filter(like="probability_").to_numpy()
    session = load_session(registry.download_onnx(tracking, f"models:/{name}@champion"))
    proba_ort = predict_proba_onnx(
        session, features, config.data.numeric_features, config.data.categorical_features
    )
    proba_native = native.predict_proba(features)
    return (
        f"champion v{champion.version} loads with "
        f"mlflow.pyfunc.load_model('models:/{name}@champion') and with ONNX Runtime; "
        f"max |Δp| vs native on {len(frame)} rows: "
        f"pyfunc {np.abs(proba_pyfunc - proba_native).max():.2e}, "
        f"ORT {np.abs(proba_ort - proba_native).max():.2e}"
    )


def demo(args: argparse.Namespace) -> int:
    """Generate data, start MLflow, run ``ml_training`` with ``airflow dags test``, summarise."""
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.tracking import TrackingConfig

    home = devstack.mlops_home()
    os.environ["MLOPS_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
    _say(f"airflow-mlops demo — everything lives in {home}")
    data = _ensure_demo_data(home, args.rows)
    config = load_config(DEMO_CONFIG)
    with devstack.MLflowServer(home / "mlflow") as server:
        _say(f"MLflow server on {server.url} (SQLite {server.backend_uri})")
        env = devstack.airflow_env(home, server.url)
        devstack.migrate_airflow_db(env)
        log_path = home / "logs" / "demo-ml_training.log"
        _say(
            "running DAG ml_training (prepare → validate → train → evaluate + convert → "
            f"register → promote); log: {log_path}"
        )
        started = time.perf_counter()
        code = devstack.run_dag_test("ml_training", env, log_path)
        _say(
            f"ml_training finished in {time.perf_counter() - started:.0f}s "
            f"({'success' if code == 0 else f'FAILED, exit {code}'})"
        )
        tracking = TrackingConfig(tracking_uri=server.url)
        _say("")
        _say(f"model {config.name} — data {data}")
        for line in _version_summary(tracking, config.name):
            _say(line)
        if code == 0:
            _say("  check       " + _check_champion(tracking, config.name))
    _say("")
    _say(
        "open the UIs on the same data:  make airflow   (Airflow http://127.0.0.1:8080, "
        "MLflow http://127.0.0.1:5000)"
    )
    if code != 0:
        _say(f"the run failed: see {log_path}")
    return code


def stack(args: argparse.Namespace) -> int:
    """``airflow standalone`` + ``mlflow server`` on 127.0.0.1 until Ctrl-C."""
    home = devstack.mlops_home()
    server = devstack.MLflowServer(home / "mlflow", port=args.mlflow_port).start()
    env = devstack.airflow_env(home, server.url)
    env["AIRFLOW__API__PORT"] = str(args.airflow_port)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(
        home / "airflow" / "passwords.json"
    )
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    passwords = home / "airflow" / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({"admin": "admin"}))
    creds = json.loads(passwords.read_text())
    airflow = subprocess.Popen([devstack._bin("airflow"), "standalone"], env=env)
    _say(f"MLflow UI:  {server.url}")
    _say(f"Airflow UI: http://127.0.0.1:{args.airflow_port}  login: admin / {creds.get('admin')}")
    _say("Ctrl-C stops both.")
    try:
        return airflow.wait()
    except KeyboardInterrupt:
        airflow.terminate()
        airflow.wait(timeout=30)
        return 0
    finally:
        server.stop()


def demo_data(args: argparse.Namespace) -> int:
    from airflow_mlops.core.demo_data import write_dataset

    files = write_dataset(args.out, rows=args.rows, seed=args.seed, shift=args.shift)
    _say("\n".join(files))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the training loop on generated data")
    p.add_argument("--rows", type=int, default=DEMO_ROWS)
    p.set_defaults(func=demo)
    p = sub.add_parser("stack", help="Airflow standalone + MLflow server for the UIs")
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.set_defaults(func=stack)
    p = sub.add_parser("demo-data", help="write the demo dataset (Parquet)")
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=DEMO_ROWS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shift", type=float, default=0.0, help="drift knob: 0 = reference")
    p.set_defaults(func=demo_data)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
