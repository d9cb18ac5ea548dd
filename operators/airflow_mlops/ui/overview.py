"""Read registered models and the lifecycle's ``mlops.*`` version tags into plain values.

One ``search_registered_models`` page walk, then one ``search_model_versions`` per model; the only
per-version call is ``get_run`` for the last drift check, whose experiment id the MLflow UI needs
to open the report. Training runs are linked through MLflow's experiment-free ``#/runs/<id>``
route, so they cost nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.exceptions import MLOpsTransientError

PREFIX = "mlops."
# Shown first, in this order, when present; every other mlops.metric.* tag follows.
KEY_METRICS = ("roc_auc", "accuracy", "f1", "log_loss")
PROFILE_KEYS = ("p50_ms", "p99_ms", "max_rows_per_s", "cpu_request", "memory_request", "slo_met")
PARITY_KEYS = ("max_abs_diff", "label_disagreements", "rows")
# Past this many versions a model shows only its newest ones plus every aliased or deployed one.
DEFAULT_MAX_VERSIONS = 10


class UIError(MLOpsTransientError, RuntimeError):
    """MLflow could not be read; the message names the server and what failed."""


@dataclass(frozen=True)
class Deployment:
    """One place a version is deployed (``mlops.deployed.<target> = <endpoint>|<weight>``)."""

    target: str
    endpoint: str
    weight: int | None


@dataclass(frozen=True)
class Drift:
    """The latest drift check of a version (``mlops.drift.*`` tags)."""

    status: str
    consecutive: int | None = None
    window: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    report_url: str | None = None


@dataclass(frozen=True)
class VersionView:
    """One registered version and what the lifecycle recorded on it."""

    version: str
    aliases: tuple[str, ...]
    created: int | None
    run_id: str | None
    version_url: str | None
    run_url: str | None
    metrics: dict[str, float | str] = field(default_factory=dict)
    parity: dict[str, str] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)
    deployments: tuple[Deployment, ...] = ()
    drift: Drift | None = None
    evaluation: str | None = None


@dataclass(frozen=True)
class ModelView:
    """One registered model with its versions, newest first."""

    name: str
    description: str
    model_url: str | None
    aliases: dict[str, str]
    versions: tuple[VersionView, ...]
    hidden_versions: int = 0


@dataclass(frozen=True)
class Overview:
    """Everything the page shows."""

    tracking_uri: str
    ui_base: str | None
    models: tuple[ModelView, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, the shape ``GET /mlops/api/models`` returns."""
        return asdict(self)


def _section(tags: dict[str, str], name: str) -> dict[str, str]:
    head = f"{PREFIX}{name}."
    return {k.removeprefix(head): v for k, v in tags.items() if k.startswith(head)}


def _metrics(tags: dict[str, str]) -> dict[str, float | str]:
    raw = _section(tags, "metric")
    ordered = [k for k in KEY_METRICS if k in raw] + sorted(k for k in raw if k not in KEY_METRICS)
    out: dict[str, float | str] = {}
    for key in ordered:
        try:
            out[key] = float(raw[key])
        except ValueError:
            out[key] = raw[key]
    return out


def _pick(section: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    return {k: section[k] for k in keys if k in section}


def _deployments(tags: dict[str, str]) -> tuple[Deployment, ...]:
    found = []
    for target, value in sorted(_section(tags, "deployed").items()):
        if not value:
            continue
        endpoint, sep, weight = value.rpartition("|")
        try:
            pct: int | None = int(float(weight)) if sep else None
        except ValueError:
            pct = None
        found.append(Deployment(target, endpoint if sep else value, pct))
    return tuple(found)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


class _Runs:
    """``get_run`` once per run id within one overview (a drift run can serve many rows)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.experiments: dict[str, str | None] = {}

    def experiment_id(self, run_id: str) -> str | None:
        if run_id not in self.experiments:
            from mlflow.exceptions import MlflowException

            try:
                self.experiments[run_id] = self.client.get_run(run_id).info.experiment_id
            except MlflowException:
                # A deleted monitoring run must not take the whole page down.
                self.experiments[run_id] = None
        return self.experiments[run_id]


def _drift(tags: dict[str, str], tracking: TrackingConfig, runs: _Runs) -> Drift | None:
    section = _section(tags, "drift")
    status = section.get("last_status")
    if not status:
        return None
    run_id = section.get("last_run_id") or None
    run_url = report_url = None
    base = tracking.ui_base
    if run_id and base:
        experiment = runs.experiment_id(run_id)
        if experiment is not None:
            run_url = tracking.run_url(experiment, run_id)
            # The monitoring run logs its Evidently page as drift/report.html (drift_monitor.py).
            report_url = f"{run_url}/artifacts/drift/report.html"
        else:
            run_url = f"{base}/#/runs/{run_id}"
    return Drift(
        status=status,
        consecutive=_int(section.get("consecutive")),
        window=section.get("last_window"),
        run_id=run_id,
        run_url=run_url,
        report_url=report_url,
    )


def version_view(
    mv: Any, tracking: TrackingConfig, runs: _Runs, model_aliases: dict[str, str] | None = None
) -> VersionView:
    """One MLflow ``ModelVersion`` as the page shows it.

    ``model_aliases`` (alias -> version, from the registered model) is needed because
    ``search_model_versions`` returns versions without their aliases.
    """
    tags = dict(mv.tags or {})
    aliases = set(getattr(mv, "aliases", ()) or ())
    aliases |= {a for a, v in (model_aliases or {}).items() if str(v) == str(mv.version)}
    base = tracking.ui_base
    run_id = mv.run_id or tags.get(f"{PREFIX}run_id")
    return VersionView(
        version=str(mv.version),
        aliases=tuple(sorted(aliases)),
        created=mv.creation_timestamp,
        run_id=run_id,
        version_url=f"{base}/#/models/{quote(mv.name)}/versions/{mv.version}" if base else None,
        run_url=f"{base}/#/runs/{run_id}" if base and run_id else None,
        metrics=_metrics(tags),
        parity=_pick(_section(tags, "parity"), PARITY_KEYS),
        profile=_pick(_section(tags, "profile"), PROFILE_KEYS),
        deployments=_deployments(tags),
        drift=_drift(tags, tracking, runs),
        evaluation=tags.get(f"{PREFIX}evaluation.summary") or None,
    )


def _check_reachable(tracking: TrackingConfig, timeout: float) -> None:
    """Fail in ``timeout`` seconds, not after MLflow's minutes of retries, when it is down."""
    from airflow_mlops.core.registry.tracking import MLflowUnreachable

    try:
        tracking.check_reachable(timeout)
    except MLflowUnreachable as exc:
        raise UIError(str(exc)) from exc


def _shown(
    versions: list[Any], max_versions: int, aliased: frozenset[str] = frozenset()
) -> list[Any]:
    newest = sorted(versions, key=lambda mv: int(mv.version), reverse=True)
    keep = []
    for i, mv in enumerate(newest):
        tags = mv.tags or {}
        deployed = any(k.startswith(f"{PREFIX}deployed.") and v for k, v in tags.items())
        named = getattr(mv, "aliases", None) or str(mv.version) in aliased
        if i < max_versions or named or deployed:
            keep.append(mv)
    return keep


def gather(
    tracking: TrackingConfig,
    *,
    name: str | None = None,
    max_versions: int = DEFAULT_MAX_VERSIONS,
    timeout: float = 5.0,
) -> Overview:
    """Registered models (all, or the one called ``name``) with their versions, newest first.

    :param tracking: where MLflow is (its ``ui_base`` makes the links).
    :param name: only this registered model.
    :param max_versions: per model, the newest versions shown; aliased and deployed versions are
        always shown.
    :param timeout: seconds to wait for the tracking server's ``/health`` before giving up.
    :raises UIError: MLflow cannot be reached or refused a search.
    """
    from mlflow.exceptions import MlflowException

    _check_reachable(tracking, timeout)
    client = tracking.client()
    runs = _Runs(client)
    models = []
    try:
        registered = _named(client, name) if name else _all_models(client)
        for rm in sorted(registered, key=lambda m: m.name.lower()):
            escaped = rm.name.replace("'", "\\'")
            versions = list(client.search_model_versions(f"name = '{escaped}'"))
            aliases = {str(k): str(v) for k, v in (rm.aliases or {}).items()}
            shown = _shown(versions, max_versions, frozenset(aliases.values()))
            base = tracking.ui_base
            models.append(
                ModelView(
                    name=rm.name,
                    description=rm.description or "",
                    model_url=f"{base}/#/models/{quote(rm.name)}" if base else None,
                    aliases=aliases,
                    versions=tuple(version_view(mv, tracking, runs, aliases) for mv in shown),
                    hidden_versions=len(versions) - len(shown),
                )
            )
    except MlflowException as exc:
        where = tracking.tracking_uri
        raise UIError(f"MLflow at {where} refused the registry search: {exc}") from exc
    return Overview(tracking.tracking_uri, tracking.ui_base, tuple(models))


def _named(client: Any, name: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    try:
        return [client.get_registered_model(name)]
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise


def _all_models(client: Any) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found
