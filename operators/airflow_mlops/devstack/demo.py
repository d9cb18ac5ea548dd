"""``make demo``: the whole loop on one machine, printed as it goes.

1. ``ml_training`` (``airflow dags test``): prepare → validate → train → evaluate → convert →
   register → profile → promote.
2. Batch scoring of a few million generated rows with the champion (rows/s, peak memory).
3. Two days of drifted input scored by ``ml_batch_scoring``, checked by ``ml_drift_monitor``:
   the second drifting day confirms drift and emits the model's drift Asset event.
4. New labelled data lands; ``airflow standalone`` starts and its scheduler runs the
   ``ml_training`` run that the drift event queued; the new version passes or fails the gates.
5. A passing version is the candidate: it is rolled out on the local target, traffic shifted
   step by step under load, and ``champion`` moves only after the last step.

Everything lives under ``MLOPS_HOME`` (default ``.mlops``); every server binds 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_mlops.devstack import stack as devstack

DRIFT_SHIFT = 1.5


def demo_config(path: str | os.PathLike[str] | None = None) -> Path:
    """The demo's model config: ``path`` when given, else the checkout's
    ``dags/configs/demo_churn.yaml``; an installed package has no checkout, so it must be
    given."""
    if path:
        return Path(path)
    checkout = devstack.checkout_root()
    if checkout is None:
        raise RuntimeError(
            "no source checkout beside the installed package: pass the demo's model config "
            "and DAGs folder (airflow-mlops demo --config <dags>/configs/demo_churn.yaml "
            "--dags-folder <dags>)"
        )
    return checkout / "dags" / "configs" / "demo_churn.yaml"


def say(text: str = "") -> None:
    print(text, flush=True)


def _section(title: str) -> None:
    say("")
    say(f"== {title}")


def _airflow(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [devstack._bin("airflow"), *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def _dag_test(env: dict[str, str], home: Path, dag_id: str, conf: dict | None, tag: str) -> bool:
    log = home / "logs" / f"demo-{dag_id}-{tag}.log"
    started = time.perf_counter()
    code = devstack.run_dag_test(dag_id, env, log, conf=conf)
    state = "success" if code == 0 else f"FAILED (exit {code})"
    say(f"  {dag_id} {tag}: {state} in {time.perf_counter() - started:.0f}s; log {log}")
    return code == 0


def training_summary(tracking: Any, name: str, version: str | None = None) -> list[str]:
    """What a version carries: data, validation, metrics, parity, profile, gates, promotion."""
    from airflow_mlops.core.registry import versions as registry

    found = registry.search_versions(tracking, name)
    if not found:
        return [f"  no version of {name} is registered"]
    v = registry.get_version(tracking, name, version or found[0].version) or found[0]
    tags, t = v.tags, "mlops."
    metrics = {k.removeprefix(t + "metric."): v for k, v in tags.items() if ".metric." in k}
    lines = [
        f"  version     {name} v{v.version} (aliases: {', '.join(v.aliases) or '-'})",
        f"  dataset     {tags.get(t + 'data.uri')}: {tags.get(t + 'data.rows')} rows, "
        f"sha256 {tags.get(t + 'data.sha256', '')[:16]}…",
        f"  trigger     {tags.get(t + 'trigger.type')}",
        f"  validation  {tags.get(t + 'validation.summary')}",
        "  metrics     " + ", ".join(f"{k}={float(x):.4f}" for k, x in sorted(metrics.items())),
        f"  parity      max |Δp| {float(tags.get(t + 'parity.max_abs_diff', 'nan')):.2e}, "
        f"{tags.get(t + 'parity.label_disagreements')} label disagreements on "
        f"{tags.get(t + 'parity.rows')} holdout rows",
    ]
    if tags.get(t + "profile.p99_ms"):
        lines.append(
            f"  profile     p50 {tags.get(t + 'profile.p50_ms')} ms, p99 "
            f"{tags.get(t + 'profile.p99_ms')} ms, {tags.get(t + 'profile.max_rows_per_s')} rows/s"
            f", peak RSS {tags.get(t + 'profile.peak_rss_mb')} MB → cpu "
            f"{tags.get(t + 'profile.cpu_request')}/{tags.get(t + 'profile.cpu_limit')}, memory "
            f"{tags.get(t + 'profile.memory_request')}/{tags.get(t + 'profile.memory_limit')}"
        )
    lines.append(
        f"  gates       {tags.get(t + 'evaluation.summary')} "
        f"({tags.get(t + 'evaluation.champion_basis', '')})"
    )
    for gate in filter(None, tags.get(t + "evaluation.gates", "").split("; ")):
        lines.append(f"                {gate}")
    lines.append(f"  promotion   {tags.get(t + 'promotion', 'not decided')}")
    return lines


def check_champion(tracking: Any, name: str, config: Any) -> str:
    """Load the champion both ways a user would and compare with the native model."""
    import mlflow
    import numpy as np

    from airflow_mlops.core.data.io import load_frame
    from airflow_mlops.core.model.session import load_session
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.training.parity import predict_proba_onnx

    champion = registry.get_version(tracking, name, registry.CHAMPION)
    if champion is None:
        return "no champion"
    features = load_frame(str(config.data.uri)).head(2000)[list(config.data.features)]
    with tracking.activate(), warnings.catch_warnings():
        # MLflow suggests type hints on predict(); the logged signature already is the schema.
        warnings.simplefilter("ignore", UserWarning)
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        native = mlflow.sklearn.load_model(f"runs:/{champion.run_id}/native")
        via_pyfunc = pyfunc.predict(features).filter(like="probability_").to_numpy()
    session = load_session(registry.download_onnx(tracking, f"models:/{name}@champion"))
    via_ort = predict_proba_onnx(
        session, features, config.data.numeric_features, config.data.categorical_features
    )
    expected = native.predict_proba(features)
    return (
        f"champion v{champion.version} loads with mlflow.pyfunc.load_model("
        f"'models:/{name}@champion') and with ONNX Runtime; max |Δp| vs native on "
        f"{len(features)} rows: pyfunc {np.abs(via_pyfunc - expected).max():.2e}, "
        f"ORT {np.abs(via_ort - expected).max():.2e}"
    )


def _drift_days(env: dict[str, str], home: Path, config: Any, tracking: Any) -> bool:
    """Two days of drifted input, scored by the DAG, then checked by the monitor DAG."""
    from airflow_mlops.core.events import read_events
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.devstack.demo_data import write_dataset

    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in (2, 1)]
    incoming = home / "data" / config.name / "incoming"
    for i, day in enumerate(days):
        write_dataset(
            str(incoming / f"date={day}"), rows=100_000, seed=100 + i, shift=DRIFT_SHIFT,
            partitions=2,
        )  # fmt: skip
        say(f"  {day}: 100,000 new rows with the drift knob at {DRIFT_SHIFT} (2 partitions)")
        _dag_test(env, home, "ml_batch_scoring", {"date": day}, day)
        _dag_test(env, home, "ml_drift_monitor", {"day": day}, day)
        champion = registry.get_version(tracking, config.name, registry.CHAMPION)
        tags = champion.tags if champion else {}
        history = json.loads(tags.get("mlops.drift.history") or "[]")
        confirmed = bool(history and history[-1].get("c"))
        say(
            f"    drift check of v{champion.version if champion else '?'}: "
            f"{tags.get('mlops.drift.last_status')}"
            + (
                " — confirmed (streak reached, count restarts)"
                if confirmed
                else f", {tags.get('mlops.drift.consecutive')} drifting window(s) in a row"
            )
        )
    events = [e for e in read_events() if e["kind"] == "drift_detected"]
    if not events:
        say("  no drift confirmed: nothing starts retraining")
        return False
    details = events[-1]["details"]
    say(f"  drift confirmed for v{details.get('version')}: {events[-1]['message']}")
    say(f"    drifted columns {details.get('drifted_columns')}")
    say(
        f"    drift share {details.get('drift_share')}, prediction drift "
        f"{details.get('prediction_drift')}"
    )
    say(f"    report {details.get('report_uri')}")
    say("    the Asset event mlops://models/demo_churn/drift queued an ml_training run")
    return True


def _json_rows(output: str) -> list[dict[str, Any]]:
    """The JSON list an ``airflow ... -o json`` command printed among its log lines."""
    for line in output.splitlines():
        if line.startswith("["):
            return list(json.loads(line))
    return []


def _retrain_on_event(env: dict[str, str], home: Path, config: Any, rows: int) -> dict | None:
    """Start the scheduler (``airflow standalone``) and wait for the queued training run."""
    from airflow_mlops.devstack.demo_data import write_dataset

    write_dataset(str(config.data.uri), rows=rows, seed=1, shift=DRIFT_SHIFT)
    say(f"  new labelled data landed at {config.data.uri} ({rows:,} rows, drifted)")
    standalone = devstack.AirflowStandalone(env)
    started = time.perf_counter()
    say(f"  starting airflow standalone on {standalone.url} (log {standalone.log_path}) ...")
    with standalone:
        say(f"  scheduler up in {time.perf_counter() - started:.0f}s; waiting for the run")
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            runs = _json_rows(_airflow(env, "dags", "list-runs", "ml_training", "-o", "json"))
            done = [
                r for r in runs
                if r["run_id"].startswith("asset_triggered__")
                and r["state"] in ("success", "failed")
            ]  # fmt: skip
            if done:
                run = done[0]
                say(
                    f"  asset-triggered run {run['run_id']}: {run['state']} "
                    f"({time.perf_counter() - started:.0f}s after start)"
                )
                return run
            time.sleep(3)
    say("  the asset-triggered run did not finish within 15 minutes")
    return None


def _rollout(tracking: Any, config: Any) -> None:
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.devstack.rollout_demo import demo_rollout

    candidate = registry.get_version(tracking, config.name, registry.CANDIDATE)
    champion = registry.get_version(tracking, config.name, registry.CHAMPION)
    if candidate is None or champion is None:
        say("  no candidate waiting for a rollout")
        return
    say(f"  rolling v{candidate.version} out beside v{champion.version} on the local target")
    result = demo_rollout(
        tracking, config.name, canary=candidate.version, baseline=champion.version,
        raw_policy=dict(config.rollout),
    )  # fmt: skip
    say(f"  rollout {result.status}: {result.message}")


def run(
    rows: int,
    config_path: str | os.PathLike[str] | None = None,
    dags_folder: str | os.PathLike[str] | None = None,
) -> int:
    """The whole demo; returns the exit status (non-zero if a step failed).

    :param config_path: the model config (default: :func:`demo_config`).
    :param dags_folder: the folder of the four DAGs (default: the checkout's ``dags/``).
    """
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.devstack.demo_data import write_dataset
    from airflow_mlops.devstack.scoring_demo import format_demo, score_demo

    home = devstack.mlops_home()
    os.environ["MLOPS_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
    say(f"airflow-mlops demo — everything lives in {home}")
    config = load_config(demo_config(config_path))
    started = time.perf_counter()
    write_dataset(str(config.data.uri), rows=rows, seed=0)
    say(
        f"training data: {rows:,} generated rows ({time.perf_counter() - started:.1f}s) "
        f"→ {config.data.uri}"
    )
    with devstack.MLflowServer(home / "mlflow") as server:
        tracking = TrackingConfig(tracking_uri=server.url)
        say(f"MLflow server on {server.url} (SQLite {server.backend_uri})")
        env = devstack.airflow_env(
            home, server.url, dags_folder=Path(dags_folder) if dags_folder else None
        )
        devstack.migrate_airflow_db(env)
        _airflow(env, "dags", "reserialize")
        for dag_id in ("ml_batch_scoring", "ml_drift_monitor", "ml_rollout"):
            _airflow(env, "dags", "pause", dag_id)
        # Drift events queue runs only for enabled DAGs: training is the one they start here.
        _airflow(env, "dags", "unpause", "ml_training")

        _section("1. training: ml_training")
        ok = _dag_test(env, home, "ml_training", None, "first")
        for line in training_summary(tracking, config.name):
            say(line)
        if not ok:
            return 1
        say("  check       " + check_champion(tracking, config.name, config))

        _section("2. batch scoring with the champion")
        for line in format_demo(score_demo(tracking, config.name, rows=2_000_000, partitions=2)):
            say("  " + line.strip())

        _section("3. drift monitoring: two days of drifted input")
        if _drift_days(env, home, config, tracking):
            _section("4. retraining started by the drift event")
            run = _retrain_on_event(env, home, config, rows)
            if run is not None:
                version = next(
                    (v.version for v in registry.search_versions(tracking, config.name)
                     if v.tags.get("mlops.airflow.run_id") == run["run_id"]),
                    None,
                )  # fmt: skip
                if version:
                    for line in training_summary(tracking, config.name, version):
                        say(line)

            _section("5. rollout of the candidate (local target)")
            _rollout(tracking, config)

        _section("registry")
        for found in registry.search_versions(tracking, config.name)[:6]:
            v = registry.get_version(tracking, config.name, found.version) or found
            aliases = ", ".join(f"@{a}" for a in v.aliases) or "-"
            say(f"  {config.name} v{v.version:<4} {aliases}")
    say("")
    say(
        "open the UIs on the same data:  make airflow   (Airflow http://127.0.0.1:8080, "
        "login admin/admin; MLflow http://127.0.0.1:5000)"
    )
    say(f"lifecycle events: {home / 'events' / 'events.jsonl'}")
    return 0
