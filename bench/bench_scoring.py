"""Is streaming batch scoring as fast as ONNX Runtime allows, and is its memory flat?

For LogisticRegression, RandomForest (100 trees, max_depth 12), HistGradientBoosting and
LightGBM, trained on demo data with the project's ``build_pipeline`` + ``convert_to_onnx``,
scores one N-row Parquet file (default 1M rows) side by side, interleaved, ``--repeats`` times:

- ``stream``: ``core.scoring.score_partition`` end to end (read → score → write + rejects check
  + 5k monitoring sample), one ORT session with threads = available cores;
- ``ort-mem``: ORT on the same rows already in memory as ONNX feeds, same batch size (the limit);
- ``pyfunc``: ``mlflow.pyfunc.load_model(...).predict`` on the same file (pandas read, predict,
  write keys + predictions), the registered pyfunc logged in a temporary SQLite MLflow store;
- ``sklearn``: pandas read, ``predict_proba`` on the native pipeline at matched threads
  (``n_jobs`` / threadpoolctl), write.

Then peak RSS of ``score_partition`` in a fresh process at 1M / 5M (/ 20M with ``--rss-20m``)
rows. Prints medians and the ratios against the issue's targets.

    .venv/bin/python bench/bench_scoring.py [--rows 1000000] [--repeats 3] [--rss-20m]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "LR": ("sklearn.linear_model.LogisticRegression", {"max_iter": 500}),
    "RF": (
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": 100, "max_depth": 12, "random_state": 0},
    ),
    "HGB": (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 200, "learning_rate": 0.1, "random_state": 0},
    ),
    "LGBM": ("lightgbm.LGBMClassifier", {"n_estimators": 200, "verbose": -1, "random_state": 0}),
}


def _child_rss(args: argparse.Namespace) -> None:
    """Score one file in this fresh process and print the result with ru_maxrss."""
    from airflow_mlops.core.model.reference import resolve_model
    from airflow_mlops.core.scoring.partition import score_partition

    model = resolve_model(args.model, name="bench")
    result = score_partition(
        args.input, args.output, model, key_columns=["customer_id"], monitoring_dir=args.mon
    )
    print(json.dumps(result.to_dict()))


def _rss_series(model_path: str, work: Path, with_20m: bool) -> None:
    """Peak RSS (VmHWM) of score_partition in a fresh process per input size."""
    from airflow_mlops.devstack.demo_data import write_dataset

    sizes = [1_000_000, 5_000_000] + ([20_000_000] if with_20m else [])
    print(f"\npeak RSS of score_partition in a fresh process ({Path(model_path).stem})")
    for rows in sizes:
        src = str(work / f"rss-{rows}.parquet")
        write_dataset(src, rows=rows, seed=5, chunk_rows=1_000_000)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--model",
                model_path,
                "--input",
                src,
                "--output",
                str(work / "rss-out.parquet"),
                "--mon",
                str(work / "mon"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ},
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{rows:>12,} rows: peak RSS {res['peak_rss_mb']:6.0f} MB, "
            f"{res['rows_per_second']:>10,.0f} rows/s",
            flush=True,
        )
        os.remove(src)


def _train(name: str, estimator: str, params: dict, frame, threads: int, out: Path):
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.training.convert import convert_to_onnx
    from airflow_mlops.core.training.pipeline import build_pipeline

    config = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    if name in ("RF", "LGBM"):
        params = {**params, "n_jobs": threads}
    config = replace(config, training=replace(config.training, estimator=estimator, params=params))
    pipeline = build_pipeline(config).fit(frame[list(config.data.features)], frame["churned"])
    path = out / f"{name}.onnx"
    path.write_bytes(convert_to_onnx(pipeline, config))
    return config, pipeline, str(path)


def _log_pyfunc(config, onnx_path: str, classes: list, store: Path, pipeline) -> tuple[str, str]:
    """Log our ONNX pyfunc and the native sklearn pipeline in one run; return both URIs."""
    import mlflow

    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.registry.tracking import TrackingConfig

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # Its artifacts beside the database, not in ./mlruns of wherever the bench runs.
    experiment_id = TrackingConfig(uri).experiment_id("bench")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        # What a user without our ONNX pyfunc would log: the sklearn flavor, probabilities.
        # Logged as registry.register_model does (skops, the pipeline's own types trusted).
        from skops.io import dumps, get_untrusted_types

        mlflow.sklearn.log_model(
            pipeline,
            name="native",
            serialization_format="skops",
            skops_trusted_types=get_untrusted_types(data=dumps(pipeline)),
            pyfunc_predict_fn="predict_proba",
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(registry._PYFUNC_CODE),
            # As registry.register_model logs it: the pyfunc loads these from its artifacts.
            artifacts={
                "onnx_model": onnx_path,
                "feed_contract": str(registry._MODEL_CODE / "feed.py"),
                "session_builder": str(registry._MODEL_CODE / "session.py"),
            },
            model_config={
                "numeric_features": list(config.data.numeric_features),
                "categorical_features": list(config.data.categorical_features),
                "classes": classes,
            },
        )
    return info.model_uri, f"runs:/{run.info.run_id}/native"


def _timed(fn, arg) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--models", default="LR,RF,HGB,LGBM")
    parser.add_argument("--rss-20m", action="store_true", help="add a 20M-row RSS point")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--rss-only", help="only the RSS series, with this .onnx model")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--mon", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_rss(args)
        return 0

    import mlflow
    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from airflow_mlops.core.model.feed import onnx_feed
    from airflow_mlops.core.model.reference import resolve_model
    from airflow_mlops.core.model.session import load_session
    from airflow_mlops.core.scoring.partition import available_cores, score_partition
    from airflow_mlops.devstack.demo_data import generate, write_dataset

    threads = available_cores()
    if args.rss_only:
        _rss_series(args.rss_only, Path(tempfile.mkdtemp(prefix="bench-rss-")), args.rss_20m)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    print(f"# work dir {work}; {threads} cores available; rows {args.rows:,}", flush=True)
    data = str(work / "input.parquet")
    write_dataset(data, rows=args.rows, seed=3)
    train = generate(args.train_rows, seed=0)
    frame = pd.read_parquet(data)
    names = [m.strip() for m in args.models.split(",")]
    setups = {}
    for name in names:
        estimator, params = MODELS[name]
        config, pipeline, onnx_path = _train(name, estimator, params, train, threads, work)
        classes = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
        feats = list(config.data.features)
        feed = onnx_feed(
            frame[feats], config.data.numeric_features, config.data.categorical_features
        )
        setups[name] = {
            "config": config,
            "pipeline": pipeline,
            "onnx": onnx_path,
            "model": resolve_model(onnx_path, name=name),
            "feed": feed,
        }
        setups[name]["pyfunc"], setups[name]["native"] = _log_pyfunc(
            config, onnx_path, classes, work, pipeline
        )
        # The limit: session.run alone, on feeds sliced beforehand, session loaded beforehand.
        setups[name]["session"] = load_session(onnx_path, threads)
        setups[name]["slices"] = [
            {k: v[i : i + args.batch_rows] for k, v in feed.items()}
            for i in range(0, args.rows, args.batch_rows)
        ]
        print(f"# trained and converted {name}", flush=True)
    del frame

    def stream(s):
        score_partition(
            data,
            str(work / "out-stream.parquet"),
            s["model"],
            key_columns=["customer_id"],
            monitoring_dir=str(work / "mon"),
            threads=threads,
            batch_rows=args.batch_rows,
        )

    def ort_mem(s):
        run = s["session"].run
        for inputs in s["slices"]:
            run(["label", "probabilities"], inputs)

    def native(s):
        model = mlflow.pyfunc.load_model(s["native"])
        frame = pd.read_parquet(data)
        proba = np.asarray(model.predict(frame[list(s["config"].data.features)]))
        classes = s["pipeline"].classes_
        out = pd.DataFrame({"customer_id": frame["customer_id"].to_numpy()})
        out["prediction"] = classes[proba.argmax(axis=1)]
        for i, c in enumerate(classes):
            out[f"probability_{c}"] = proba[:, i]
        out.to_parquet(work / "out-native.parquet", index=False)

    def pyfunc(s):
        model = mlflow.pyfunc.load_model(s["pyfunc"])
        frame = pd.read_parquet(data)
        out = model.predict(frame[list(s["config"].data.features)])
        out.insert(0, "customer_id", frame["customer_id"].to_numpy())
        out.to_parquet(work / "out-pyfunc.parquet", index=False)

    def sklearn(s):
        frame = pd.read_parquet(data)
        with threadpool_limits(limits=threads):
            proba = s["pipeline"].predict_proba(frame[list(s["config"].data.features)])
        out = pd.DataFrame({"customer_id": frame["customer_id"].to_numpy()})
        out["prediction"] = s["pipeline"].classes_[proba.argmax(axis=1)]
        for i, c in enumerate(s["pipeline"].classes_):
            out[f"probability_{c}"] = proba[:, i]
        out.to_parquet(work / "out-sklearn.parquet", index=False)

    methods = {
        "stream": stream,
        "ort-mem": ort_mem,
        "pyfunc": pyfunc,
        "native": native,
        "sklearn": sklearn,
    }
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        for name in names:
            for method, fn in methods.items():
                times.setdefault((name, method), []).append(_timed(fn, setups[name]))
        print(f"# repeat {rep + 1}/{args.repeats} done", flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.rows / v for k, v in med.items()}
    print(
        f"\nrows/s, median of {args.repeats} interleaved runs, {args.rows:,} rows, "
        f"{threads} threads"
    )
    print(
        f"{'model':6} {'stream':>10} {'ort-mem':>10} {'pyfunc':>10} {'native':>10} "
        f"{'sklearn':>10} {'s/ort':>7} {'s/pyf':>7} {'s/nat':>7} {'s/skl':>7}"
    )
    ratios_skl = []
    for name in names:
        s, o, p, nat, k = (rate[(name, m)] for m in methods)
        ratios_skl.append(s / k)
        print(
            f"{name:6} {s:>10,.0f} {o:>10,.0f} {p:>10,.0f} {nat:>10,.0f} {k:>10,.0f} "
            f"{s / o:>7.2f} {s / p:>7.2f} {s / nat:>7.2f} {s / k:>7.2f}"
        )
    geo = math.exp(sum(math.log(r) for r in ratios_skl) / len(ratios_skl))
    print(f"load average at the end: {os.getloadavg()}")
    print(
        f"targets: stream/ort-mem >= 0.95, stream/pyfunc >= 2, geomean stream/sklearn >= 1.2 "
        f"(measured geomean {geo:.2f})"
    )
    print(
        "spread (min-max s): "
        + ", ".join(f"{n}/{m} {min(v):.2f}-{max(v):.2f}" for (n, m), v in times.items())
    )

    if not args.no_rss:
        _rss_series(setups.get("HGB", next(iter(setups.values())))["onnx"], work, args.rss_20m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
