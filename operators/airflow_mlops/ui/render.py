"""The "Models" page as one server-rendered HTML document (no script, no build step).

Every value that came from MLflow passes through :func:`html.escape` (model names, tag values and
descriptions are user-controlled). Links open in a new tab: the page usually sits in an Airflow
iframe, and the MLflow UI may refuse to be framed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from html import escape

from airflow_mlops.ui.overview import Drift, ModelView, Overview, VersionView

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#1f2933;
background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 4px}
.sub{color:#52606d;font-size:13px;margin-bottom:8px}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px;table-layout:fixed}
th,td{border-bottom:1px solid #e4e7eb;padding:6px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f5f7fa;font-weight:600;color:#3e4c59}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;margin:1px 2px;
background:#e4e7eb;color:#1f2933}
.champion{background:#c6f7e2;color:#014d40}.challenger{background:#dceefb;color:#0b4f71}
.candidate{background:#fff3c4;color:#8d2b0b}
.drift{background:#ffe3e3;color:#8a041a}.no_drift{background:#c6f7e2;color:#014d40}
.insufficient_data,.unusable{background:#fff3c4;color:#8d2b0b}
.kv{overflow-wrap:anywhere}.kv b{font-weight:600;color:#3e4c59}.muted{color:#9aa5b1}
a{color:#0967d2;text-decoration:none}a:hover{text-decoration:underline}
.error{background:#ffe3e3;color:#8a041a;padding:10px;border-radius:4px}
"""


def _link(url: str | None, text: str) -> str:
    if not url:
        return escape(text)
    return f'<a href="{escape(url)}" target="_blank" rel="noopener">{escape(text)}</a>'


def _badge(text: str, kind: str | None = None) -> str:
    cls = f"badge {escape(kind)}" if kind else "badge"
    return f'<span class="{cls}">{escape(text)}</span>'


def _kv(items: Iterable[tuple[str, object]]) -> str:
    rows = [f'<div class="kv"><b>{escape(k)}</b> {escape(_fmt(v))}</div>' for k, v in items]
    return "".join(rows) or '<span class="muted">-</span>'


def _fmt(value: object) -> str:
    # Tags hold numbers as text ("1.293171573157892e-07"): fractions get 4 significant digits,
    # integers and words stay as written.
    if isinstance(value, str) and any(c in value for c in ".eE"):
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _drift_cell(drift: Drift | None) -> str:
    if drift is None:
        return '<span class="muted">not checked</span>'
    parts = [_badge(drift.status, drift.status)]
    if drift.consecutive:
        parts.append(f"<div>{drift.consecutive} drifting window(s) in a row</div>")
    if drift.window:
        parts.append(f'<div class="muted">window {escape(drift.window)}</div>')
    links = [_link(drift.report_url, "report")] if drift.report_url else []
    if drift.run_url:
        links.append(_link(drift.run_url, "run"))
    if links:
        parts.append("<div>" + " · ".join(links) + "</div>")
    return "".join(parts)


def _deployed_cell(version: VersionView) -> str:
    if not version.deployments:
        return '<span class="muted">not deployed</span>'
    rows = []
    for d in version.deployments:
        weight = f" {d.weight}%" if d.weight is not None else ""
        where = _link(d.endpoint, d.endpoint) if "://" in d.endpoint else escape(d.endpoint)
        rows.append(f'<div class="kv"><b>{escape(d.target)}</b>{escape(weight)} {where}</div>')
    return "".join(rows)


def _version_row(version: VersionView) -> str:
    aliases = "".join(_badge(a, a) for a in version.aliases) or '<span class="muted">-</span>'
    links = [_link(version.version_url, "version")]
    if version.run_url:
        links.append(_link(version.run_url, "training run"))
    cells = [
        f"<td>{_link(version.version_url, 'v' + version.version)}"
        f'<div class="muted">{escape(_when(version.created))}</div></td>',
        f"<td>{aliases}</td>",
        f"<td>{_kv(version.metrics.items())}</td>",
        f"<td>{_kv(version.parity.items())}</td>",
        f"<td>{_kv(version.profile.items())}</td>",
        f"<td>{_deployed_cell(version)}</td>",
        f"<td>{_drift_cell(version.drift)}</td>",
        f"<td>{' · '.join(links)}</td>",
    ]
    title = f' title="{escape(version.evaluation)}"' if version.evaluation else ""
    return f"<tr{title}>" + "".join(cells) + "</tr>"


_COLS = "".join(f'<col style="width:{w}%">' for w in (8, 10, 14, 15, 13, 15, 14, 11))
_HEAD = (
    "<tr><th>Version</th><th>Aliases</th><th>Metrics (holdout)</th><th>ONNX parity</th>"
    "<th>Profile</th><th>Deployed</th><th>Drift (latest)</th><th>MLflow</th></tr>"
)


def _model(model: ModelView) -> str:
    aliases = " ".join(_badge(f"@{a} → v{v}", a) for a, v in sorted(model.aliases.items()))
    more = (
        f'<div class="muted">{model.hidden_versions} older version(s) not shown</div>'
        if model.hidden_versions
        else ""
    )
    rows = "".join(_version_row(v) for v in model.versions)
    return (
        f'<section class="model" id="model-{escape(model.name)}">'
        f"<h2>{_link(model.model_url, model.name)} {aliases}</h2>"
        + (f'<div class="sub">{escape(model.description)}</div>' if model.description else "")
        + f"<table>{_COLS}<thead>{_HEAD}</thead><tbody>{rows}</tbody></table>{more}</section>"
    )


def page(overview: Overview | None, *, error: str | None = None, title: str = "Models") -> str:
    """The whole HTML document; with ``error`` set, the page says what failed instead."""
    if error is not None:
        body = f'<div class="error">{escape(error)}</div>'
        source = ""
    else:
        assert overview is not None
        source = (
            f'<div class="sub">Registry: {_link(overview.ui_base, overview.tracking_uri)} · '
            f"{len(overview.models)} registered model(s)</div>"
        )
        body = "".join(_model(m) for m in overview.models) or (
            '<p class="muted">No registered models yet: run the ml_training DAG.</p>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{escape(title)}</h1>{source}{body}</body></html>"
    )
