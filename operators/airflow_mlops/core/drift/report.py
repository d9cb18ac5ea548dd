"""Evidently's HTML drift report, configured with the policy's own methods and thresholds.

Evidently renders per-column distributions and the drift table people know. It runs on a
bounded sample (``report_rows`` per side): its cost grows with rows (about 96 s and 2 GB at 1M
rows per side) while the picture does not get better. The decision itself is taken on every row
by :func:`airflow_mlops.core.drift.check_drift`; with the same methods and thresholds Evidently
reaches the same per-column verdicts on the same rows (measured in ``bench/bench_drift.py``).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.drift.types import DriftPolicy

log = logging.getLogger(__name__)
_preload_lock = threading.Lock()
_preload: threading.Thread | None = None


def preload_evidently() -> None:
    """Start importing Evidently in a background thread (once per process).

    The import takes seconds (it pulls in plotly, nltk and scikit-learn); a monitoring task
    calls this first so the import overlaps its reference download and window read instead of
    adding to them. Import errors surface later, where the report is written.
    """
    global _preload
    with _preload_lock:
        if _preload is not None:
            return

        def run() -> None:
            try:
                import evidently.presets  # noqa: F401
            except Exception:  # reported by write_html, which imports it again
                log.debug("Evidently preload failed", exc_info=True)

        _preload = threading.Thread(target=run, name="evidently-import", daemon=True)
        _preload.start()


def evidently_preset(
    policy: DriftPolicy, kinds: dict[str, str], columns: list[str]
) -> tuple[Any, Any]:
    """``(DataDefinition, DataDriftPreset)`` with the policy's per-column methods/thresholds."""
    from evidently import DataDefinition
    from evidently.presets import DataDriftPreset

    methods, thresholds = {}, {}
    for col in columns:
        rule = policy.rule(col, kinds[col] == "numeric")
        methods[col], thresholds[col] = rule.method, rule.threshold
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == "numeric"],
        categorical_columns=[c for c in columns if kinds[c] == "categorical"],
    )
    preset = DataDriftPreset(
        columns=columns,
        per_column_method=methods,
        per_column_threshold=thresholds,
        drift_share=policy.drift_share,
    )
    return definition, preset


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    policy: DriftPolicy,
    kinds: dict[str, str],
    columns: list[str],
) -> Any:
    """Run Evidently's ``DataDriftPreset`` and return its snapshot."""
    from evidently import Dataset, Report

    definition, preset = evidently_preset(policy, kinds, columns)
    return Report([preset]).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def evidently_decisions(snapshot: Any) -> dict[str, float]:
    """Per-column drift scores from a snapshot (``ValueDrift`` metric values)."""
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def write_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    policy: DriftPolicy,
    kinds: dict[str, str],
    columns: list[str],
    prediction_column: str | None,
    path: str,
) -> str:
    """Write Evidently's report for ``columns`` (and the prediction column) to ``path``."""
    import fsspec

    kinds = dict(kinds)
    columns = list(columns)
    if prediction_column and prediction_column in reference and prediction_column in current:
        kinds[prediction_column] = (
            "numeric" if prediction_column.startswith("probability_") else "categorical"
        )
        columns.append(prediction_column)
    policy = _report_policy(policy, prediction_column)
    snapshot = run_evidently(reference, current, policy, kinds, columns)
    # ``Snapshot.save_html`` silently ignores file objects: write the string ourselves.
    html = snapshot.get_html_str(as_iframe=False)
    with fsspec.open(path, "w", encoding="utf-8") as fh:
        fh.write(html)
    return path


def _report_policy(policy: DriftPolicy, prediction_column: str | None) -> DriftPolicy:
    """The policy with the prediction column's threshold as a per-column rule."""
    from dataclasses import replace

    from airflow_mlops.core.drift.columns import ColumnRule

    if not prediction_column:
        return policy
    numeric = prediction_column.startswith("probability_")
    method = policy.numeric_method if numeric else policy.categorical_method
    rules = {
        **policy.per_column,
        prediction_column: ColumnRule(method, policy.prediction_threshold),
    }
    return replace(policy, per_column=rules)


def start_report(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    policy: DriftPolicy,
    kinds: dict[str, str],
    counted: list[str],
    prediction_column: str | None,
    path: str,
) -> Future[dict[str, Any]]:
    """Evidently's report on ``report_rows`` per side, in a thread: its import alone takes
    seconds, and NumPy releases the GIL for most of the statistics meanwhile. Columns that
    cannot be compared are left out of the picture (the result names them)."""
    from airflow_mlops.core.drift.columns import sample_rows, unusable_reason

    ref_s = sample_rows(ref, policy.report_rows, policy.seed + 2)
    cur_s = sample_rows(cur, policy.report_rows, policy.seed + 3)
    usable = [c for c in counted if not unusable_reason(c, kinds[c], ref_s, cur_s, 1)]
    pred_kind = "numeric" if (prediction_column or "").startswith("probability_") else "categorical"
    if prediction_column and unusable_reason(prediction_column, pred_kind, ref_s, cur_s, 1):
        prediction_column = None

    def run() -> dict[str, Any]:
        try:
            write_html(ref_s, cur_s, policy, kinds, usable, prediction_column, path)
        except Exception as exc:  # a failed picture must not hide the decision
            log.warning("Evidently report failed: %s", exc, exc_info=True)
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"path": path}

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidently-report")
    future = executor.submit(run)
    executor.shutdown(wait=False)
    return future
