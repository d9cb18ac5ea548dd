"""The ``airflow-mlops`` command: the demo, the local UI stack, the demo data generator, and
``score``, the batch scorer of one partition that Kubernetes pods run.

Only standard-library imports at module level, the rest inside each command: ``airflow-mlops
score`` runs inside the serving image, which has neither Airflow nor MLflow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEMO_ROWS = 200_000


def _say(text: str = "") -> None:
    print(text, flush=True)


def demo(args: argparse.Namespace) -> int:
    """The whole loop on generated data (see :mod:`airflow_mlops.demo`)."""
    from airflow_mlops.devstack.demo import run

    return run(args.rows, config_path=args.config, dags_folder=args.dags_folder)


def stack(args: argparse.Namespace) -> int:
    """``airflow standalone`` + ``mlflow server`` on 127.0.0.1 until Ctrl-C (or SIGTERM)."""
    import signal

    from airflow_mlops.devstack import stack as devstack

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    home = devstack.mlops_home()
    os.environ["MLOPS_HOME"] = str(home)
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    passwords = home / "airflow" / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({"admin": "admin"}))
    creds = json.loads(passwords.read_text())
    try:
        with devstack.MLflowServer(home / "mlflow", port=args.mlflow_port) as server:
            env = devstack.airflow_env(home, server.url)
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
            _say(f"MLflow UI:  {server.url}")
            _say(f"starting airflow standalone (log {home / 'airflow'}/standalone-*.log) ...")
            airflow = devstack.AirflowStandalone(env, port=args.airflow_port, unpause_new=False)
            try:
                with airflow:
                    _say(f"Airflow UI: {airflow.url}  login: admin / {creds.get('admin')}")
                    _say("DAGs start paused: enable them in the UI. Ctrl-C stops both.")
                    assert airflow.process is not None
                    return airflow.process.wait()
            finally:
                # ml_rollout's local endpoints outlive their tasks on purpose, not the stack.
                _stop_rollout_servers(server.url)
    except KeyboardInterrupt:
        _say("stopped")
        return 0
    except RuntimeError as exc:  # a port in use, a server that would not start: its message
        _say(f"airflow-mlops stack: {exc}")
        return 1


def _stop_rollout_servers(tracking_uri: str) -> list[str]:
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.core.rollout.targets.local import stop_recorded_servers

    stopped = stop_recorded_servers(TrackingConfig(tracking_uri))
    for model in stopped:
        _say(f"stopped the local scoring server of {model}")
    return stopped


def serve_stop(args: argparse.Namespace) -> int:
    """Stop the local scoring servers ``ml_rollout`` left running under ``$MLOPS_HOME/rollout``
    and clear their versions' ``mlops.deployed.local`` records."""
    from airflow_mlops.core.registry.tracking import MLflowUnreachable, TrackingConfig

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        _say("serve-stop: give --tracking-uri or set MLFLOW_TRACKING_URI (the records live there)")
        return 2
    try:
        TrackingConfig(uri).check_reachable()
    except MLflowUnreachable as exc:
        _say(f"serve-stop: {exc}; nothing stopped (the records could not be cleared)")
        return 2
    if not _stop_rollout_servers(uri):
        _say("no local scoring server was running")
    return 0


def demo_data(args: argparse.Namespace) -> int:
    from airflow_mlops.devstack.demo_data import write_dataset

    files = write_dataset(args.out, rows=args.rows, seed=args.seed, shift=args.shift)
    _say("\n".join(files))
    return 0


def score(args: argparse.Namespace) -> int:
    """Score one partition with a model folder; the result's JSON is the last stdout line.

    With ``--xcom-file`` (or ``$MLOPS_XCOM_FILE``) the same JSON is written there, which is
    where ``KubernetesPodOperator(do_xcom_push=True)`` reads a pod's result. Exit status 2: the
    input or the model cannot be scored (the message says why; a retry will not help).
    """
    import logging

    from airflow_mlops import settings
    from airflow_mlops.core.data.io import DataError
    from airflow_mlops.core.model.reference import ModelRefError
    from airflow_mlops.core.scoring.container import score_in_container, write_xcom
    from airflow_mlops.core.scoring.types import ScoringError

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = score_in_container(
            args.model,
            args.input,
            args.output,
            partition=args.partition,
            expect_name=args.expect_name,
            expect_version=args.expect_version,
            key_columns=tuple(args.key_column or ()),
            rejects_uri=args.rejects,
            batch_rows=args.batch_rows,
            threads=args.threads,
            monitoring_dir=args.monitoring_dir if args.sample_rows else None,
            sample_rows=args.sample_rows,
            sample_date=args.sample_date,
            seed=args.seed,
            progress_seconds=args.progress_seconds,
            format=args.format,
        )
    except (ScoringError, DataError, ModelRefError) as exc:
        print(f"airflow-mlops score: {exc}", file=sys.stderr, flush=True)
        return 2
    payload = result.to_dict()
    xcom_file = args.xcom_file or settings.xcom_file()
    if xcom_file:
        write_xcom(payload, xcom_file)
    _say(json.dumps(payload, sort_keys=True))
    return 0


def _score_parser(sub: Any) -> None:
    from airflow_mlops.core.scoring.types import DEFAULT_BATCH_ROWS, DEFAULT_SAMPLE_ROWS

    p = sub.add_parser(
        "score",
        help="score one partition with a model folder (what a Kubernetes scoring pod runs)",
        description=score.__doc__,
    )
    p.add_argument("--model", required=True, help="model folder (model.onnx + model.json)")
    p.add_argument("--input", required=True, help="the partition: file, folder or URI")
    p.add_argument("--output", required=True, help="predictions file; {partition}, {date} work")
    p.add_argument("--rejects", default=None, help="default <output folder>/_rejects/<file>")
    p.add_argument("--partition", default=None, help="name in logs and the sample file")
    p.add_argument("--key-column", action="append", help="copied to the output (repeatable)")
    p.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    p.add_argument("--threads", type=int, default=None, help="default: cores of the pod")
    p.add_argument("--sample-rows", type=int, default=DEFAULT_SAMPLE_ROWS, help="0: no sample")
    p.add_argument("--monitoring-dir", default=None, help="root of the monitoring samples")
    p.add_argument("--sample-date", default=None, help="default: the input's date= folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress-seconds", type=float, default=30.0)
    p.add_argument("--format", choices=("auto", "parquet", "csv"), default="auto")
    p.add_argument("--expect-name", default=None, help="fail unless the folder holds this model")
    p.add_argument("--expect-version", default=None, help="...and this version")
    p.add_argument(
        "--xcom-file", default=None, help="also write the result here (default $MLOPS_XCOM_FILE)"
    )
    p.set_defaults(func=score)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the training loop on generated data")
    p.add_argument("--rows", type=int, default=DEMO_ROWS)
    p.add_argument("--config", default=None, help="model config (default: the checkout's)")
    p.add_argument("--dags-folder", default=None, help="the DAGs (default: the checkout's)")
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
    _score_parser(sub)
    p = sub.add_parser("serve-stop", help="stop the local scoring servers ml_rollout started")
    p.add_argument("--tracking-uri", default=None, help="MLflow (default $MLFLOW_TRACKING_URI)")
    p.set_defaults(func=serve_stop)
    sub.add_parser(
        "serve",
        help="the ONNX scoring server (options: airflow-mlops serve --help)",
        add_help=False,
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # The server owns its options (and runs without Airflow: see airflow_mlops.serving).
        from airflow_mlops.serving.main import serve

        return serve(argv[1:])
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
