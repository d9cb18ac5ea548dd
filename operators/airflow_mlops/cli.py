"""The ``airflow-mlops`` command: the demo, the local UI stack, and the demo data generator."""

from __future__ import annotations

import argparse
import json
import os
import sys

from airflow_mlops import devstack

DEMO_ROWS = 200_000


def _say(text: str = "") -> None:
    print(text, flush=True)


def demo(args: argparse.Namespace) -> int:
    """The whole loop on generated data (see :mod:`airflow_mlops.demo`)."""
    from airflow_mlops.demo import run

    return run(args.rows)


def stack(args: argparse.Namespace) -> int:
    """``airflow standalone`` + ``mlflow server`` on 127.0.0.1 until Ctrl-C (or SIGTERM)."""
    import signal

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
            with airflow:
                _say(f"Airflow UI: {airflow.url}  login: admin / {creds.get('admin')}")
                _say("DAGs start paused: enable them in the UI. Ctrl-C stops both.")
                assert airflow.process is not None
                return airflow.process.wait()
    except KeyboardInterrupt:
        _say("stopped")
        return 0


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
