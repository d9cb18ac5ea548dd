"""Human approval before promotion and before full rollout: options and what the approver reads.

The model config's ``approval`` section (all keys optional; off by default, so unattended runs
never wait for a person)::

    approval:
      promotion: true         # ml_training: wait for a person between profile and promote
      rollout: true           # ml_rollout: wait for a person before the 100 % traffic step
      timeout_hours: 24       # how long to wait (null: forever)
      on_timeout: reject      # reject | approve | fail
      assigned_users: [{id: "alice", name: "Alice"}]   # who may answer (default: anyone)

The Airflow face (``operators/approval.py``) shows :func:`approval_body` as the Markdown body of
an Airflow human-in-the-loop request, and :func:`decision_tags` are what the version carries
afterwards (who decided, when, why). Nothing here imports Airflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, check_keys

ON_TIMEOUT = ("reject", "approve", "fail")
TAG = "mlops.approval."


@dataclass(frozen=True)
class ApprovalSpec:
    """When a person must approve, how long to wait and what a timeout means.

    :param promotion: gate promotion in the training DAG.
    :param rollout: gate the full (100 %) rollout step.
    :param timeout_hours: hours to wait for an answer; ``None`` waits forever.
    :param on_timeout: ``reject`` (the default answer is Reject), ``approve`` (the default
        answer is Approve) or ``fail`` (no default: the gate task fails).
    :param assigned_users: ``[{"id": ..., "name": ...}]`` allowed to answer; empty: anyone
        with access to the DAG.
    """

    promotion: bool = False
    rollout: bool = False
    timeout_hours: float | None = 24.0
    on_timeout: str = "reject"
    assigned_users: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "approval") -> ApprovalSpec:
        """Check and build the spec; a :class:`ConfigError` names the key and the value."""
        raw = dict(raw or {})
        check_keys(raw, cls, source)
        for key in ("promotion", "rollout"):
            if not isinstance(raw.get(key, False), bool):
                raise ConfigError(f"{source}.{key} must be true or false, got {raw[key]!r}")
        timeout = raw.get("timeout_hours", 24.0)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigError(f"{source}.timeout_hours must be > 0 or null, got {timeout!r}")
        on_timeout = raw.get("on_timeout", "reject")
        if on_timeout not in ON_TIMEOUT:
            raise ConfigError(
                f"{source}.on_timeout must be one of {list(ON_TIMEOUT)}, got {on_timeout!r}"
            )
        users = raw.get("assigned_users") or []
        if not isinstance(users, list) or any(
            not isinstance(u, dict) or not u.get("id") for u in users
        ):
            raise ConfigError(
                f"{source}.assigned_users must be a list of {{id, name}} mappings, got {users!r}"
            )
        return cls(
            promotion=raw.get("promotion", False),
            rollout=raw.get("rollout", False),
            timeout_hours=None if timeout is None else float(timeout),
            on_timeout=on_timeout,
            assigned_users=tuple(
                {"id": str(u["id"]), "name": str(u.get("name") or u["id"])} for u in users
            ),
        )

    @classmethod
    def from_config(cls, config: Any, override: dict[str, Any] | None = None) -> ApprovalSpec:
        """The spec from ``config.approval`` (absent on configs that predate the section)."""
        raw = override if override is not None else getattr(config, "approval", None)
        return cls.from_dict(raw, f"{getattr(config, 'name', 'model')}: approval")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def approval_body(
    name: str,
    version: str,
    *,
    purpose: str,
    tags: dict[str, str] | None = None,
    evaluation: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> str:
    """The Markdown an approver reads: gates with figures, metrics against the champion,
    ONNX parity, the latency profile and the most important features.

    :param purpose: one line saying what approving does.
    :param tags: the version's MLflow tags (``mlops.*``); figures the other arguments miss are
        read from them, so the rollout gate can render from the registry alone.
    :param evaluation: the evaluate step's result (gates, ``champion_metrics``).
    :param profile: the profile step's result (``passed``, ``message``).
    :param links: label → URL (MLflow version, run).
    :param extra: more Markdown lines (e.g. the canary's analyses so far).
    """
    tags = tags or {}
    lines = [f"## {name} v{version}", "", purpose, ""]
    evaluation = evaluation or {}
    gates = evaluation.get("gates")
    verdict = evaluation.get("summary") or tags.get("mlops.evaluation.summary")
    lines += ["### Gates", f"**{verdict or 'no evaluation recorded'}**", ""]
    if gates:
        lines += [f"- {'✅' if g.get('passed') else '❌'} {g.get('message')}" for g in gates]
    elif tags.get("mlops.evaluation.gates"):
        lines += [f"- {m.strip()}" for m in tags["mlops.evaluation.gates"].split(";")]
    metrics = {
        k.removeprefix("mlops.metric."): v for k, v in tags.items() if k.startswith("mlops.metric.")
    }
    metrics |= evaluation.get("metrics") or {}
    champion = evaluation.get("champion_metrics") or {}
    if metrics:
        basis = evaluation.get("champion_basis") or tags.get("mlops.evaluation.champion_basis")
        lines += ["", "### Metrics (holdout)", "| metric | this version | champion | Δ |"]
        lines += ["|---|---|---|---|"]
        for metric in sorted(metrics):
            value = float(metrics[metric])
            ref = champion.get(metric)
            delta = "-" if ref is None else f"{value - float(ref):+.4g}"
            lines.append(f"| {metric} | {_fmt(value)} | {_fmt(ref)} | {delta} |")
        if basis:
            lines.append(f"\n_{basis}_")
    parity = {k.removeprefix("mlops.parity."): v for k, v in tags.items() if "parity." in k}
    if parity:
        lines += ["", "### ONNX parity", ", ".join(f"{k} {v}" for k, v in sorted(parity.items()))]
    prof = {k.removeprefix("mlops.profile."): v for k, v in tags.items() if ".profile." in k}
    if prof or profile:
        lines += ["", "### Profile"]
        if prof:
            keys = ("p50_ms", "p99_ms", "max_rows_per_s", "peak_rss_mb", "slo_met")
            lines.append(", ".join(f"{k} {prof[k]}" for k in keys if k in prof))
        if profile and profile.get("message"):
            lines.append(f"SLO: {profile['message']}")
    top = tags.get("mlops.importance.top")
    if top:
        ranked = json.loads(top)
        lines += ["", "### Most important features (permutation, holdout)"]
        lines += [f"- `{k}`: {_fmt(v)}" for k, v in ranked.items()]
    if extra:
        lines += ["", *extra]
    if links:
        lines += ["", " · ".join(f"[{label}]({url})" for label, url in links.items() if url)]
    return "\n".join(lines)


def decision_tags(
    approved: bool, by: str | None, comment: str | None, when: str, gate: str, timed_out: bool
) -> dict[str, str]:
    """The ``mlops.approval.*`` tags (and the ``mlops.promotion`` verdict on rejection)."""
    who = by or ("nobody (timed out)" if timed_out else "unknown")
    verdict = "approved" if approved else "rejected"
    tags = {
        f"{TAG}{gate}.decision": verdict,
        f"{TAG}{gate}.by": who,
        f"{TAG}{gate}.at": when,
        f"{TAG}{gate}.comment": comment or "",
    }
    if not approved:
        reason = f": {comment}" if comment else ""
        tags["mlops.promotion"] = f"rejected at the {gate} approval by {who}{reason}"
    return tags
