"""Drift monitoring of a registered model: find the window, compare, record, confirm.

One call of :func:`monitor` checks the latest window of what the champion scored against the
reference sample of that exact version (``mlops.reference.uri``), records the check as an MLflow
run in ``<model>-monitoring`` (HTML report and JSON summary as artifacts) and keeps the streak of
drifting windows on the model version itself, so the state survives workers and restarts and is
visible in the MLflow UI:

- ``mlops.drift.history``: the last windows checked, ``[{"w": window, "s": status, "c": 1 if
  drift was confirmed there}]`` (a window checked again replaces its entry);
- ``mlops.drift.consecutive``: drifting windows in a row since the last confirmation;
- ``mlops.drift.last_run_id`` / ``last_status`` / ``last_window``.

Windows that could not be judged (``insufficient_data``, ``unusable``) neither extend nor break
a streak. Confirmation restarts the count, so a model that stays drifted asks for retraining
again only after another ``consecutive_windows`` windows.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from airflow_mlops import settings
from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.core.config.parse import ConfigError, expand
from airflow_mlops.core.drift.check import check_drift
from airflow_mlops.core.drift.report import preload_evidently
from airflow_mlops.core.drift.types import DriftPolicy, DriftResult
from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsError

log = logging.getLogger(__name__)

TAG = "mlops.drift."
_HISTORY = 30
_LOCATION_KEYS = ("current_uri", "monitoring_dir", "sources", "window", "schedule")


class NothingToMonitor(MLOpsError, LookupError):
    """No champion (or no reference sample) to compare with; the message says which."""


@dataclass(frozen=True)
class MonitoringSpec:
    """Where current data is, and the drift policy (the model config's ``monitoring``).

    :param current_uri: a Parquet/CSV file or folder to check instead of the monitoring layout.
    :param monitoring_dir: root of ``model=<name>/source=*/version=<v>/date=<day>/*.parquet``
        (default ``${MLOPS_HOME}/monitoring``).
    :param sources: the sources to read (default all, e.g. ``batch`` and ``online``).
    :param window: ``latest`` (the newest ``date=`` folder) or a ``YYYY-MM-DD`` day.
    :param schedule: schedule of the ``ml_drift_monitor`` DAG.
    :param policy: the drift policy (every other key of the section).
    """

    current_uri: str | None = None
    monitoring_dir: str | None = None
    sources: tuple[str, ...] | None = None
    window: str = "latest"
    schedule: str | None = "@daily"
    policy: DriftPolicy = field(default_factory=DriftPolicy)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "monitoring") -> MonitoringSpec:
        """Split the section into location keys and the policy; both are checked."""
        raw = dict(raw or {})
        where = {k: raw.pop(k) for k in _LOCATION_KEYS if k in raw}
        if "sources" in where and where["sources"] is not None:
            if isinstance(where["sources"], str):
                raise ConfigError(f"{source}.sources: expected a list, got {where['sources']!r}")
            where["sources"] = tuple(str(s) for s in where["sources"])
        return cls(**where, policy=DriftPolicy.from_dict(raw, source))

    @property
    def root(self) -> str:
        default = os.path.join(settings.mlops_home(), "monitoring")
        return expand(self.monitoring_dir) if self.monitoring_dir else default


@dataclass(frozen=True)
class Window:
    """The current data to check: its files and a key that names it in the drift history."""

    key: str
    uris: tuple[str, ...]
    description: str


def find_window(spec: MonitoringSpec, name: str, version: str, day: str | None = None) -> Window:
    """The window to check: ``current_uri`` as a whole, or one day of the monitoring layout.

    The layout may be a local folder or an fsspec URI (``s3://``): it is listed afresh on every
    call (one recursive listing, never a cached one), so a long-lived process (a sensor, a
    ``dag.test()``) sees days that other processes wrote since its last look.
    """
    from airflow_mlops.core.data.io import _url_to_fs, fingerprint

    if spec.current_uri:
        uri = expand(spec.current_uri)
        digest = fingerprint(uri)[:16] if _exists(uri) else "missing"
        return Window(f"{uri}#{digest}", (uri,), f"current_uri {uri}")
    root = spec.root
    base = posixpath.join(root.rstrip("/"), f"model={name}")
    sources = spec.sources or ("*",)
    fs, base_path = _url_to_fs(base)
    prefix = base_path.rstrip("/") + "/"
    folders = set()
    for path in fs.find(base_path):
        parts = path[len(prefix) :].split("/")
        if (
            len(parts) > 3
            and any(fnmatch.fnmatchcase(parts[0], f"source={src}") for src in sources)
            and parts[1] == f"version={version}"
            and parts[2].startswith("date=")
        ):
            folders.add(prefix + "/".join(parts[:3]))
    wanted = day or (None if spec.window == "latest" else spec.window)
    days = sorted({posixpath.basename(p).removeprefix("date=") for p in folders})
    pick = wanted or (days[-1] if days else None)
    remote = "://" in root and not root.startswith("file://")
    chosen = tuple(
        sorted(
            fs.unstrip_protocol(p) if remote else p for p in folders if p.endswith(f"/date={pick}")
        )
    )
    where = f"{base}/source={','.join(sources)}/version={version}/date={pick or '*'}"
    return Window(f"date={pick or 'none'}", chosen, where)


def _exists(uri: str) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.exists(path))


def load_window(window: Window) -> pd.DataFrame:
    """Every row of the window (an empty frame when it has no files)."""
    from airflow_mlops.core.data.io import DataError, load_frame

    frames = []
    for uri in window.uris:
        try:
            frames.append(load_frame(uri))
        except DataError as exc:
            if "has no rows" not in str(exc):
                raise
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_reference(tracking: TrackingConfig, tags: dict[str, str], ref: str) -> pd.DataFrame:
    """The version's reference sample, downloaded from MLflow (``mlops.reference.uri``)."""

    from airflow_mlops.core.data.io import load_frame

    uri = tags.get("mlops.reference.uri")
    if not uri:
        raise NothingToMonitor(f"{ref} has no mlops.reference.uri tag: no reference sample")
    local = tracking.download(uri, tempfile.mkdtemp(prefix="mlops-reference-"))
    return load_frame(local, format="parquet")


def pending_window(
    tracking: TrackingConfig, config: ModelConfig, ref: str = "champion", day: str | None = None
) -> Window | None:
    """The window :func:`monitor` would check, or ``None`` if it was already checked for this
    version (or has no files). Cheap: lists files and reads one tag; a sensor polls this."""
    from airflow_mlops.core.registry import versions as registry

    spec = MonitoringSpec.from_dict(config.monitoring, f"{config.name}: monitoring")
    version = registry.get_version(tracking, config.name, ref)
    if version is None:
        return None
    window = find_window(spec, config.name, version.version, day)
    if not window.uris or version.tags.get(f"{TAG}last_window") == window.key:
        return None
    return window


def monitor(
    tracking: TrackingConfig,
    config: ModelConfig,
    *,
    ref: str = "champion",
    day: str | None = None,
    airflow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check one window against ``ref``'s reference, record it, and say if drift is confirmed.

    Returns a small JSON-able dict: model, version, window, status, confirmed, consecutive,
    drifted_columns, drift_share, prediction_drift, report_uri, run_id, run_url, summary.
    """
    from airflow_mlops.core.registry import versions as registry

    spec = MonitoringSpec.from_dict(config.monitoring, f"{config.name}: monitoring")
    preload_evidently()  # its import overlaps the registry calls, download and read below
    version = registry.get_version(tracking, config.name, ref)
    if version is None:
        raise NothingToMonitor(f"{config.name} has no version {ref!r} to monitor")
    if spec.policy.weights_from == "importance":
        from dataclasses import replace

        from airflow_mlops.core.training.importance import weights_from_tags

        try:
            weights = weights_from_tags(version.tags, list(config.data.features))
        except ValueError as exc:
            where = f"{config.name} v{version.version}"
            raise NothingToMonitor(f"{where}: weights: importance: {exc}") from exc
        spec = replace(spec, policy=replace(spec.policy, weights=weights))
    reference = load_reference(tracking, version.tags, f"{config.name} v{version.version}")
    window = find_window(spec, config.name, version.version, day)
    current = load_window(window)
    classes = json.loads(version.tags.get("mlops.classes", "[]") or "[]")
    prediction = _prediction_column(classes, reference)
    if spec.policy.prediction and prediction and len(current) and prediction not in current:
        current = _score(tracking, config, version.model_uri, current, classes)
    out_dir = tempfile.mkdtemp(prefix="mlops-drift-")
    result = check_drift(
        reference,
        current,
        spec.policy,
        numeric=config.data.numeric_features,
        categorical=config.data.categorical_features,
        prediction_column=prediction,
        report_path=os.path.join(out_dir, "report.html"),
    )
    if not window.uris:
        result = _no_files(result, window)
    return record(tracking, config, version, window, result, spec.policy, out_dir, airflow or {})


def _prediction_column(classes: list[Any], reference: pd.DataFrame) -> str | None:
    """Probability of the positive class for a binary model, else the predicted label."""
    if len(classes) == 2 and f"probability_{classes[-1]}" in reference:
        return f"probability_{classes[-1]}"
    return "prediction" if "prediction" in reference else None


def _score(
    tracking: TrackingConfig,
    config: ModelConfig,
    model_uri: str,
    frame: pd.DataFrame,
    classes: list[Any],
) -> pd.DataFrame:
    """Add the version's predictions to data that was not scored (a plain ``current_uri``)."""
    import numpy as np

    from airflow_mlops.core.model.session import load_session
    from airflow_mlops.core.registry import versions as registry
    from airflow_mlops.core.training.parity import predict_proba_onnx

    features = list(config.data.features)
    if any(c not in frame for c in features):
        return frame  # the check names the missing columns; nothing to score
    try:
        session = load_session(registry.download_onnx(tracking, model_uri))
        proba = predict_proba_onnx(
            session, frame, config.data.numeric_features, config.data.categorical_features
        )
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("cannot score the window with %s (%s): no prediction drift", model_uri, exc)
        return frame
    frame = frame.copy()
    frame["prediction"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    for i, cls in enumerate(classes):
        frame[f"probability_{cls}"] = proba[:, i]
    return frame


def _no_files(result: DriftResult, window: Window) -> DriftResult:
    from dataclasses import replace

    return replace(
        result,
        status="insufficient_data",
        summary=f"insufficient data: no files in {window.description} (not a 'no drift' verdict)",
    )


def record(
    tracking: TrackingConfig,
    config: ModelConfig,
    version: Any,
    window: Window,
    result: DriftResult,
    policy: DriftPolicy,
    out_dir: str,
    airflow: dict[str, Any],
) -> dict[str, Any]:
    """Log the check as a monitoring run, update the version's streak, return the summary."""
    from airflow_mlops.core.registry import versions as registry

    step = _Streak.advance(version.tags.get(f"{TAG}history"), window.key, result.status, policy)
    summary = {
        "model": config.name,
        "version": version.version,
        "window": window.key,
        "status": result.status,
        "confirmed": step.confirmed and not step.already,
        "already_confirmed": step.already,
        "consecutive": step.streak,
        "consecutive_required": policy.consecutive_windows,
        "drifted_columns": result.drifted_columns,
        "drift_share": result.drift_share,
        "prediction_drift": _prediction_summary(result),
        "rows_current": result.rows_current,
        "summary": result.summary,
    }
    summary_path = os.path.join(out_dir, "summary.json")
    with open(summary_path, "w") as fh:
        json.dump(
            {**summary, "result": result.to_dict(), "policy": policy.to_dict(), "airflow": airflow},
            fh, indent=2, default=str,
        )  # fmt: skip
    experiment_id, run_id = _log_run(
        tracking, config, version, window, result, step, summary_path, airflow
    )
    has_report = bool(result.report_uri)
    summary["report_uri"] = f"runs:/{run_id}/drift/report.html" if has_report else None
    summary["summary_uri"] = f"runs:/{run_id}/drift/summary.json"
    summary["run_id"] = run_id
    summary["run_url"] = tracking.run_url(experiment_id, run_id)
    registry.set_version_tags(
        tracking,
        config.name,
        version.version,
        {
            f"{TAG}history": json.dumps(step.history, separators=(",", ":")),
            f"{TAG}consecutive": 0 if step.confirmed else step.streak,
            f"{TAG}last_run_id": run_id,
            f"{TAG}last_status": result.status,
            f"{TAG}last_window": window.key,
        },
    )
    return summary


@dataclass(frozen=True)
class _Streak:
    """The version's window history after one check, and what the check confirmed.

    :param history: the entries to store (this window's last, trimmed to the tag's limit).
    :param streak: drifting windows in a row, this one included.
    :param confirmed: the streak reached ``consecutive_windows`` on a drifting window.
    :param already: this window had confirmed drift before (a re-run): not news.
    """

    history: list[dict[str, Any]]
    streak: int
    confirmed: bool
    already: bool

    @classmethod
    def advance(
        cls, raw_history: str | None, key: str, status: str, policy: DriftPolicy
    ) -> _Streak:
        """Add the check of window ``key`` to the stored history."""
        history = _history(raw_history)
        # A window checked again (a cleared task, a re-run) replaces its entry. If it had
        # already confirmed drift and still drifts, it stays confirmed but is not news: no
        # second event, so no second retraining for the same data.
        before = [h for h in history if h.get("w") == key]
        history = [h for h in history if h.get("w") != key]
        streak = _streak(history) + (1 if status == "drift" else 0)
        confirmed = status == "drift" and streak >= policy.consecutive_windows
        already = confirmed and any(h.get("c") for h in before)
        history.append({"w": key, "s": status, "c": int(confirmed)})
        return cls(_fit(history[-_HISTORY:]), streak, confirmed, already)


def _log_run(
    tracking: TrackingConfig,
    config: ModelConfig,
    version: Any,
    window: Window,
    result: DriftResult,
    step: _Streak,
    summary_path: str,
    airflow: dict[str, Any],
) -> tuple[str, str]:
    """One run in ``<model>-monitoring``: tags, metrics, summary and report; its ids."""
    import mlflow

    from airflow_mlops.core.registry import versions as registry

    with tracking.activate():
        experiment_id = tracking.experiment_id(f"{config.name}-monitoring")
        run_name = f"drift-v{version.version}-{window.key}"[:250]
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            mlflow.set_tags(
                {
                    "mlops.model.name": config.name,
                    "mlops.model.version": version.version,
                    f"{TAG}window": window.key[:4000],
                    f"{TAG}status": result.status,
                    f"{TAG}confirmed": str(step.confirmed).lower(),
                    **registry.flatten_tags("airflow", airflow),
                }
            )
            mlflow.log_metrics(_metrics(result, step.streak))
            mlflow.log_artifact(summary_path, artifact_path="drift")
            if result.report_uri:
                mlflow.log_artifact(result.report_uri, artifact_path="drift")
    return experiment_id, run.info.run_id


def _history(raw: str | None) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        log.warning("ignoring unreadable %shistory tag: %r", TAG, raw[:200] if raw else raw)
        return []
    return [h for h in value if isinstance(h, dict)] if isinstance(value, list) else []


def _streak(history: list[dict[str, Any]]) -> int:
    """Drifting windows in a row at the end of ``history``, since the last confirmation."""
    count = 0
    for entry in reversed(history):
        if entry.get("c"):
            break
        if entry.get("s") == "drift":
            count += 1
        elif entry.get("s") == "no_drift":
            break
    return count


def _fit(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the oldest entries until the tag fits MLflow's value limit."""
    while history and len(json.dumps(history, separators=(",", ":"))) > 4000:
        history = history[1:]
    return history


def _prediction_summary(result: DriftResult) -> dict[str, Any] | None:
    pred = result.prediction_drift
    if pred is None:
        return None
    if not pred.usable:
        return {"usable": False, "reason": pred.reason}
    return {
        "column": pred.column,
        "method": pred.method,
        "statistic": pred.statistic,
        "threshold": pred.threshold,
        "drifted": pred.drifted,
    }


def _metrics(result: DriftResult, streak: int) -> dict[str, float]:
    metrics = {
        "drift_share": result.drift_share,
        "drifted_columns": float(len(result.drifted_columns)),
        "unusable_columns": float(len(result.unusable_columns)),
        "rows_current": float(result.rows_current),
        "rows_reference": float(result.rows_reference),
        "consecutive": float(streak),
    }
    for col in result.columns.values():
        if col.statistic is not None:
            metrics[f"stat.{col.column}"] = float(col.statistic)
    pred = result.prediction_drift
    if pred is not None and pred.statistic is not None:
        metrics["stat.prediction"] = float(pred.statistic)
    return metrics
