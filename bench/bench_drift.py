"""Drift check cost and quality: this package's check vs Evidently alone vs a SciPy floor.

Part 1 (cost): for 10k, 100k and 1M rows per side x the 20 demo features, each variant runs in
its own subprocess (clean peak RSS) on the same Parquet files:
- ``check``: ``core.drift.check_drift`` - decision on every row + Evidently HTML on 5k rows
  (time split into the decision and the whole call, which includes importing Evidently);
- ``evidently``: ``DataDriftPreset`` alone on all rows, same methods/thresholds (1M is optional:
  ``--evidently-max``);
- ``scipy``: ``scipy.stats.wasserstein_distance`` + Jensen-Shannon per column (the floor).
Part 2 (agreement): per-column decisions and dataset drift of the check vs full-data Evidently
over trials with shifts near the thresholds.
Part 3 (rates): false-positive and detection rates of the default policy over seeds.

Run: ``.venv/bin/python bench/bench_drift.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10_000, 100_000, 1_000_000)


def _frames(rows: int, seed: int, shift: float):
    from airflow_mlops.devstack.demo_data import generate

    return generate(rows, seed=seed, shift=shift)


def _kinds():
    from airflow_mlops.devstack.demo_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    return {c: "numeric" for c in NUMERIC_FEATURES} | {
        c: "categorical" for c in CATEGORICAL_FEATURES
    }


def child(variant: str, ref_path: str, cur_path: str) -> None:
    """One measured run in a fresh interpreter; prints a JSON line.

    ``cold`` is a monitoring task's whole work from interpreter start: import, read both
    Parquet files, decide and write the report (the parent times it from outside). The other
    variants read the files first and time the computation with its libraries imported - the
    basis of the issue's Evidently figures - and report the import on its own.
    """
    import_started = time.perf_counter()
    if variant == "cold":
        from airflow_mlops.core.drift.report import preload_evidently

        preload_evidently()  # what monitor() does first
    import pandas as pd

    kinds = _kinds()
    cols = list(kinds)
    numeric = [c for c in cols if kinds[c] == "numeric"]
    categorical = [c for c in cols if kinds[c] == "categorical"]
    out: dict = {}
    if variant == "cold":
        from airflow_mlops.core.drift.check import check_drift
        from airflow_mlops.core.drift.types import DriftPolicy

        ref = pd.read_parquet(ref_path, columns=cols)
        cur = pd.read_parquet(cur_path, columns=cols)
        with tempfile.TemporaryDirectory() as tmp:
            result = check_drift(
                ref, cur, DriftPolicy(), numeric=numeric, categorical=categorical,
                report_path=f"{tmp}/report.html",
            )  # fmt: skip
            assert result.report_uri, result.report_error
        out["drifted"] = sorted(result.drifted_columns)
        out["in_process_s"] = time.perf_counter() - import_started
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    ref = pd.read_parquet(ref_path, columns=cols)
    cur = pd.read_parquet(cur_path, columns=cols)
    if variant == "check":
        from airflow_mlops.core.drift.check import check_drift
        from airflow_mlops.core.drift.types import DriftPolicy

        t = time.perf_counter()
        import evidently.presets

        out["import_s"] = time.perf_counter() - t
        policy = DriftPolicy()
        t = time.perf_counter()
        decision = check_drift(ref, cur, policy, numeric=numeric, categorical=categorical)
        out["decision_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = check_drift(
                ref, cur, policy, numeric=numeric, categorical=categorical,
                report_path=f"{tmp}/report.html",
            )  # fmt: skip
            assert result.report_uri, result.report_error
        # The whole check: decision on every row + Evidently's HTML on 5k rows per side.
        out["total_s"] = time.perf_counter() - t
        out["drifted"] = sorted(decision.drifted_columns)
    elif variant == "evidently":
        from airflow_mlops.core.drift.report import evidently_decisions, run_evidently
        from airflow_mlops.core.drift.types import DriftPolicy

        t = time.perf_counter()
        import evidently.presets  # noqa: F401

        out["import_s"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = evidently_decisions(run_evidently(ref, cur, DriftPolicy(), kinds, cols))
        out["drifted"] = sorted(c for c, v in scores.items() if v >= 0.1)
        out["total_s"] = time.perf_counter() - t
    elif variant == "scipy":
        import numpy as np
        from scipy import stats
        from scipy.spatial import distance

        t = time.perf_counter()
        drifted = []
        for c in cols:
            r, k = ref[c].dropna(), cur[c].dropna()
            if kinds[c] == "numeric":
                value = stats.wasserstein_distance(r, k) / max(float(np.std(r)), 0.001)
            else:
                keys = sorted(set(r) | set(k))
                p = r.value_counts().reindex(keys, fill_value=0).to_numpy(float)
                q = k.value_counts().reindex(keys, fill_value=0).to_numpy(float)
                value = distance.jensenshannon(p / p.sum(), q / q.sum())
            if value >= 0.1:
                drifted.append(c)
        out["drifted"] = sorted(drifted)
        out["total_s"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


VARIANT_NAMES = {
    "check": "check (decision + HTML on 5k)",
    "cold": "check as a task (fresh process: imports + read + check)",
    "scipy": "SciPy floor",
    "evidently": "Evidently alone",
}


def cost(sizes, repeats: int, evidently_max: int, tmp: Path) -> None:
    print("## Cost: one check, rows per side x 20 features (median of repeats)\n")
    print("| rows/side | variant | check s | decision s | import s (once per process) | "
          "wall s (fresh process) | peak RSS MB | drifted columns |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for rows in sizes:
        ref_p, cur_p = tmp / f"ref-{rows}.parquet", tmp / f"cur-{rows}.parquet"
        _frames(rows, 1, 0.0).to_parquet(ref_p)
        _frames(rows, 2, 1.0).to_parquet(cur_p)
        variants = ["check", "cold", "scipy"] + (["evidently"] if rows <= evidently_max else [])
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(repeats):  # interleaved: the machine is shared and noisy
            for v in variants:
                started = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", v, str(ref_p), str(cur_p)],
                    capture_output=True, text=True, timeout=900,
                )  # fmt: skip
                if proc.returncode:
                    raise RuntimeError(proc.stderr[-2000:])
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                run["wall_s"] = time.perf_counter() - started
                runs[v].append(run)
        for v in variants:
            keys = ("total_s", "decision_s", "import_s", "wall_s", "peak_rss_mb")
            med = {k: statistics.median(r[k] for r in runs[v]) for k in keys if k in runs[v][0]}
            shown = ("total_s", "decision_s", "import_s")
            cells = [f"{med[k]:.2f}" if k in med else "-" for k in shown]
            cells.append(f"{med['wall_s']:.2f}" if v == "cold" else "-")
            flagged = runs[v][0]["drifted"]
            print(f"| {rows:,} | {VARIANT_NAMES[v]} | {' | '.join(cells)} | "
                  f"{med['peak_rss_mb']:.0f} | {len(flagged)}: {', '.join(flagged)} |")  # fmt: skip
        same = {v: runs[v][0]["drifted"] for v in variants}
        print(f"|  | same columns flagged by all: {len({tuple(d) for d in same.values()}) == 1} |"
              " | | | | | |")  # fmt: skip
    print()


def agreement(trials: int, rows: int) -> None:
    """Check vs Evidently on the same rows, same config, shifts that put columns near 0.1."""
    import numpy as np

    from airflow_mlops.core.drift.check import check_drift
    from airflow_mlops.core.drift.report import evidently_decisions, run_evidently
    from airflow_mlops.core.drift.types import DriftPolicy

    kinds = _kinds()
    cols = list(kinds)
    policy = DriftPolicy()
    numeric = [c for c in cols if kinds[c] == "numeric"]
    categorical = [c for c in cols if kinds[c] == "categorical"]
    col_agree = col_total = data_agree = near = 0
    for t in range(trials):
        shift = float(np.random.default_rng(t).uniform(0.3, 1.2))
        ref, cur = _frames(rows, 100 + t, 0.0), _frames(rows, 200 + t, shift)
        ours = check_drift(ref, cur, policy, numeric=numeric, categorical=categorical)
        scores = evidently_decisions(run_evidently(ref, cur, policy, kinds, cols))
        theirs = {c: scores[c] >= 0.1 for c in cols}
        col_agree += sum(ours.columns[c].drifted == theirs[c] for c in cols)
        col_total += len(cols)
        near += sum(abs(scores[c] - 0.1) < 0.01 for c in cols)
        evid_share = sum(theirs.values()) / len(cols)
        data_agree += ours.dataset_drift == (evid_share >= policy.drift_share)
    print(f"## Agreement with full-data Evidently ({trials} trials, {rows:,} rows/side, "
          "shift drawn from 0.3-1.2)\n")  # fmt: skip
    print(
        f"- per-column decisions equal: {col_agree}/{col_total} ({col_agree / col_total:.2%}); "
        f"{near} column statistics fell within 0.01 of the threshold"
    )
    print(f"- dataset drift equal: {data_agree}/{trials} ({data_agree / trials:.2%})\n")


def rates(seeds: int, sizes, reference_rows: int) -> None:
    """Share of checks whose status is ``drift`` under the default policy."""
    from airflow_mlops.core.drift.check import check_drift
    from airflow_mlops.core.drift.types import DriftPolicy
    from airflow_mlops.devstack.demo_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    policy = DriftPolicy()
    print(f"## Drift rates of the default policy ({seeds} seeds; reference {reference_rows:,} "
          "rows as registered, or as many rows as the current side)\n")  # fmt: skip
    print("| current rows | reference rows | same distribution | monthly_charges +3 (modest, one "
          "feature) | monthly_charges +8 | demo shift 0.5 | demo shift 1.0 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    cases = {"same": (0.0, 0.0), "modest": (0.0, 3.0), "one": (0.0, 8.0),
             "s05": (0.5, 0.0), "s10": (1.0, 0.0)}  # fmt: skip
    for rows in sizes:
        for ref_rows in (reference_rows, rows):
            hits = {k: 0 for k in cases}
            col_hits = {k: 0 for k in cases}
            for seed in range(seeds):
                ref = _frames(ref_rows, 5000 + seed, 0.0)
                for k, (shift, bump) in cases.items():
                    cur = _frames(rows, seed, shift)
                    if bump:
                        cur["monthly_charges"] = cur["monthly_charges"] + bump
                    r = check_drift(ref, cur, policy, numeric=NUMERIC_FEATURES,
                                    categorical=CATEGORICAL_FEATURES)  # fmt: skip
                    hits[k] += r.status == "drift"
                    col_hits[k] += r.columns["monthly_charges"].drifted
            cells = [f"{hits[k] / seeds:.0%} (col {col_hits[k] / seeds:.0%})" for k in cases]
            print(f"| {rows:,} | {ref_rows:,} | {' | '.join(cells)} |")
    print("\n`col` = share of checks where `monthly_charges` itself was flagged.\n")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few trials")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-max", type=int, default=1_000_000,
                        help="largest rows/side for Evidently alone (1M: ~100 s)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--skip", nargs="*", default=[], choices=["cost", "agreement", "rates"])
    args = parser.parse_args()
    sizes = (10_000, 100_000) if args.quick else SIZES
    seeds, trials = (5, 5) if args.quick else (args.seeds, args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        if "cost" not in args.skip:
            cost(sizes, 1 if args.quick else args.repeats, args.evidently_max, Path(tmp))
    if "agreement" not in args.skip:
        agreement(trials, 5_000)
        agreement(max(trials // 10, 2), 200_000)
    if "rates" not in args.skip:
        rates(seeds, (1_000, 5_000, 50_000), 20_000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
