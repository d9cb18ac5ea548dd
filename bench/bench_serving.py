"""Is the scoring server fast enough beside ``mlflow models serve`` on the same ONNX model?

Trains the demo churn model (HistGradientBoosting, 20k rows) through the core steps, registers
it in a temporary ``mlflow server`` (SQLite, loopback), then starts side by side:

- ``ours``: ``python -m airflow_mlops.serving`` on a model folder from the registered ONNX file,
  with everything on: validation, two versions routed 90/10, metrics, request capture (10% of
  rows to Parquet; ``--sample-rate``);
- ``mlflow``: ``mlflow models serve --env-manager local -m models:/bench_serving/1`` (one uvicorn
  worker, its default), the registered pyfunc over the same ONNX file.

Load: ``wrk`` (one thread, keep-alive, POST ``dataframe_split`` bodies), bounded by
``--duration`` per cell; single-row and 32-row requests at 1 and 8 connections; cells
interleaved server by server and repeated ``--repeats`` times; medians reported. wrk is a C
client: on a 2-core machine a Python load generator would take most of a core itself. Then a
shift run: 8 connections on ``ours`` while the weights change ``--shifts`` times through
``PUT /admin/routes``; failed requests are counted (non-2xx + socket errors).

    apt-get install wrk   # Debian/Ubuntu
    .venv/bin/python bench/bench_serving.py [--duration 5] [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "bench_serving"


def build_model(root: Path, tracking_uri: str) -> tuple[str, Path, Path]:
    """Register the demo model; returns its version, a model folder and the data file."""
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.pipeline import steps
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig
    from airflow_mlops.devstack.demo_data import write_dataset
    from airflow_mlops.serving.models import meta_from_mlmodel, write_model_folder

    data = root / "data" / "train.parquet"
    write_dataset(str(data), rows=20_000, seed=0)
    base = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    config = replace(
        base, name=NAME, data=replace(base.data, uri=str(data)), work_dir=str(root / "work")
    )
    tracking = TrackingConfig(tracking_uri=tracking_uri)
    out = str(root / "work" / "run")
    registered = steps.train_and_register(tracking, config, out, airflow={"dag_id": "bench"})[
        "registered"
    ]
    version = str(registered["version"])
    dl = root / "download"
    onnx_path = registry.download_onnx(tracking, f"models:/{NAME}/{version}", str(dl))
    meta = meta_from_mlmodel(next(dl.rglob("MLmodel")), NAME, version)
    return version, write_model_folder(root / "model", onnx_path, meta), data


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    from airflow_mlops.devstack.stack import wait_healthy

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_healthy(proc, ready, timeout, url, log)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # its own session: only what we started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def post(url: str, body: bytes, method: str = "POST") -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unparsed wrk latency {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def wrk(url: str, body_file: Path, connections: int, duration: float) -> dict[str, float]:
    """One wrk run; requests/s, p50/p99 ms and failed requests (non-2xx + socket errors)."""
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local f = io.open({json.dumps(str(body_file))}, 'rb')\n"
        "wrk.body = f:read('*a')\nf:close()\n"
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(script),
            f"{url}/invocations",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0
    )
    return {
        "rps": rps,
        "p50_ms": _ms(lat["50"]),
        "p99_ms": _ms(lat["99"]),
        "requests": total,
        "failed": failed,
    }


def bodies(data: Path, root: Path) -> dict[int, Path]:
    import pandas as pd

    from airflow_mlops.core.config.model import load_config

    cfg = load_config(REPO / "dags" / "configs" / "demo_churn.yaml").data
    frame = pd.read_parquet(data).head(32)[[*cfg.numeric_features, *cfg.categorical_features]]
    out = {}
    for rows in (1, 32):
        doc = {"dataframe_split": json.loads(frame.head(rows).to_json(orient="split", index=False))}
        path = root / f"body-{rows}.json"
        path.write_text(json.dumps(doc))
        out[rows] = path
    return out


def same_answers(ours: str, mlflow: str, body: Path) -> float:
    """Max |Δp| between the two servers on one 32-row body (both must answer 200)."""
    a_code, a = post(f"{ours}/invocations", body.read_bytes())
    b_code, b = post(f"{mlflow}/invocations", body.read_bytes())
    if a_code != 200 or b_code != 200:
        raise RuntimeError(
            f"sanity request failed: ours {a_code} {a[:200]!r}, mlflow {b_code} {b[:200]!r}"
        )
    pa, pb = json.loads(a)["predictions"], json.loads(b)["predictions"]
    assert [p["label"] for p in pa] == [p["label"] for p in pb], "labels differ"
    return max(abs(x[k] - y[k]) for x, y in zip(pa, pb, strict=True) for k in x if k != "label")


def shift_run(url: str, body: Path, duration: float, shifts: int) -> dict[str, float]:
    """8 connections on ``url`` while the weights change ``shifts`` times."""
    plans = [{"routes": {"1": 100 - p, "2": p}} for p in (10, 25, 50, 100, 0)]
    codes: list[int] = []

    def shifter() -> None:
        time.sleep(0.5)
        for i in range(shifts):
            code, _ = post(
                f"{url}/admin/routes", json.dumps(plans[i % len(plans)]).encode(), method="PUT"
            )
            codes.append(code)
            time.sleep(max(duration - 1.0, 0.5) / shifts)

    thread = threading.Thread(target=shifter)
    thread.start()
    result = wrk(url, body, 8, duration)
    thread.join()
    return {**result, "shifts": len(codes), "shift_failures": sum(c != 200 for c in codes)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shifts", type=int, default=10)
    p.add_argument("--sample-rate", type=float, default=0.1, help="capture share of rows")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    from airflow_mlops.devstack.stack import MLflowServer, free_port

    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    procs: list[subprocess.Popen] = []
    mlflow = MLflowServer(root / "mlflow").start()
    try:
        t0 = time.perf_counter()
        version, folder, data = build_model(root, mlflow.url)
        print(f"model registered and downloaded in {time.perf_counter() - t0:.0f}s")
        # TrackingConfig.activate() leaves MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI in
        # os.environ (the restored default): set both for the children.
        # `mlflow models serve` execs `uvicorn` from PATH: put this virtualenv first.
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow.url,
            "MLFLOW_REGISTRY_URI": mlflow.url,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        cfg = {
            "model": NAME,
            "versions": {"1": str(folder), "2": str(folder)},
            "routes": {"1": 90, "2": 10},
            "capture": {"dir": str(root / "monitoring"), "sample_rate": args.sample_rate},
        }
        (root / "serve.json").write_text(json.dumps(cfg))
        urls = {
            "ours": f"http://127.0.0.1:{free_port()}",
            "mlflow": f"http://127.0.0.1:{free_port()}",
        }
        ours = start(
            [
                sys.executable,
                "-m",
                "airflow_mlops.serving",
                "--config",
                str(root / "serve.json"),
                "--port",
                urls["ours"].rsplit(":", 1)[1],
                "--log-level",
                "warning",
            ],
            env,
            root / "ours.log",
        )
        procs.append(ours)
        ml = start(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "models",
                "serve",
                "-m",
                f"models:/{NAME}/{version}",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "-p",
                urls["mlflow"].rsplit(":", 1)[1],
            ],
            env,
            root / "mlflow-serve.log",
        )
        procs.append(ml)
        wait_ready(urls["ours"], ours, root / "ours.log")
        wait_ready(urls["mlflow"], ml, root / "mlflow-serve.log")
        body = bodies(data, root)
        diff = same_answers(urls["ours"], urls["mlflow"], body[32])
        print(f"both servers answer the same 32 rows (max |dp| {diff:.1e})")
        for url in urls.values():  # warm-up, not measured
            wrk(url, body[1], 8, 1.0)
        load_before = os.getloadavg()[0]
        cells: dict[tuple[str, int, int], list[dict[str, float]]] = {}
        for rep in range(args.repeats):
            order = list(urls) if rep % 2 == 0 else list(reversed(urls))
            for rows in (1, 32):
                for conns in (1, 8):
                    for server in order:
                        r = wrk(urls[server], body[rows], conns, args.duration)
                        cells.setdefault((server, rows, conns), []).append(r)
            print(f"repeat {rep + 1}/{args.repeats} done")
        shift = shift_run(urls["ours"], body[1], max(args.duration, 5.0), args.shifts)
        status, text = post(f"{urls['ours']}/admin/routes", b"", method="GET")
        report(cells, shift, args, json.loads(text) if status == 200 else None)
        print(
            f"1-minute load average: {load_before:.1f} before the cells, "
            f"{os.getloadavg()[0]:.1f} after (2 cores; wrk and both servers included)"
        )
        if args.out:
            Path(args.out).write_text(
                json.dumps(
                    {
                        "cells": {f"{s}/{r}/{c}": v for (s, r, c), v in cells.items()},
                        "shift": shift,
                    },
                    indent=2,
                )
            )
    finally:
        for proc in procs:
            stop(proc)
        mlflow.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    return 0


def report(cells: dict, shift: dict, args: argparse.Namespace, routes: dict | None) -> None:
    def med(server: str, rows: int, conns: int, key: str) -> float:
        return statistics.median(r[key] for r in cells[(server, rows, conns)])

    print(
        f"\nmedians of {args.repeats} interleaved runs of {args.duration:g}s (wrk -t1, "
        f"keep-alive; capture {args.sample_rate:.0%} of rows)"
    )
    print(
        "| rows | conns | ours req/s | ours p50 / p99 ms | mlflow req/s | "
        "mlflow p50 / p99 ms | req/s ratio | failed (ours/mlflow) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows in (1, 32):
        for conns in (1, 8):
            o, m = ("ours", rows, conns), ("mlflow", rows, conns)
            fo = sum(r["failed"] for r in cells[o])
            fm = sum(r["failed"] for r in cells[m])
            print(
                f"| {rows} | {conns} | {med(*o, 'rps'):,.0f} | {med(*o, 'p50_ms'):.2f} / "
                f"{med(*o, 'p99_ms'):.2f} | {med(*m, 'rps'):,.0f} | {med(*m, 'p50_ms'):.2f} / "
                f"{med(*m, 'p99_ms'):.2f} | {med(*o, 'rps') / med(*m, 'rps'):.1f}x | "
                f"{fo}/{fm} |"
            )
    ratio = med("ours", 1, 8, "rps") / med("mlflow", 1, 8, "rps")
    p99 = med("ours", 1, 8, "p99_ms")
    print(
        f"\ntarget single row, 8 connections: >= 4x mlflow req/s -> {ratio:.1f}x "
        f"({'met' if ratio >= 4 else 'MISSED'}); p99 <= 5 ms -> {p99:.2f} ms "
        f"({'met' if p99 <= 5 else 'MISSED'})"
    )
    print(
        f"weight shifts under load: {shift['shifts']} PUTs ({shift['shift_failures']} refused), "
        f"{shift['requests']} requests at {shift['rps']:,.0f}/s, failed requests: "
        f"{shift['failed']}; final routes {routes['routes'] if routes else '?'}"
    )


if __name__ == "__main__":
    sys.exit(main())
