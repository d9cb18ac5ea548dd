"""Prometheus metrics, written by hand: a few counters, a gauge and one histogram.

The hot path only adds to dict entries (the event loop is single-threaded); the capture thread
touches its two counters under a lock. :func:`parse_prometheus` reads the text back (the
rollout analysis and the tests use it).

Metric names (a contract with the rollout analysis):

- ``mlops_requests_total{model,version,protocol,code}``
- ``mlops_request_errors_total{model,version,reason}``
- ``mlops_request_latency_seconds{model,version}`` (histogram, 0.1 ms .. 1 s)
- ``mlops_predictions_total{model,version,label}``
- ``mlops_shadow_requests_total{model,version}``,
  ``mlops_shadow_agreement_total{model,version,agree}`` (rows whose shadow label equals the
  answered label, ``agree="true"``, or not), ``mlops_shadow_dropped_total{model,version}``
  (large mirrored batches not scored because the shadow worker was busy)
- ``mlops_route_weight{model,version}`` (gauge, 0..1)
- ``mlops_capture_rows_total{model,version}``, ``mlops_capture_dropped_total{model}``

The series of a version disappear when it is unloaded (:meth:`Metrics.forget`).
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections import defaultdict
from typing import Any, NamedTuple

__all__ = [
    "LATENCY_BUCKETS",
    "Metrics",
    "Sample",
    "histogram_quantile",
    "metric_sum",
    "parse_prometheus",
]

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

_HELP = {
    "mlops_requests_total": ("counter", "Requests answered, by protocol and HTTP status."),
    "mlops_request_errors_total": ("counter", "Refused or failed requests, by reason."),
    "mlops_request_latency_seconds": ("histogram", "Time from request to response body."),
    "mlops_predictions_total": ("counter", "Predicted rows by label."),
    "mlops_shadow_requests_total": ("counter", "Requests mirrored to the shadow version."),
    "mlops_shadow_agreement_total": ("counter", "Mirrored rows whose shadow label agreed."),
    "mlops_shadow_dropped_total": ("counter", "Mirrored requests dropped: shadow worker busy."),
    "mlops_route_weight": ("gauge", "Share of routed traffic per version (0..1)."),
    "mlops_capture_rows_total": ("counter", "Captured rows written to Parquet."),
    "mlops_capture_dropped_total": ("counter", "Captured rows dropped (queue full, write error)."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """The server's metrics for one model name."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.predictions: dict[tuple[str, str], int] = defaultdict(int)
        self.shadow_requests: dict[str, int] = defaultdict(int)
        self.shadow_agreement: dict[tuple[str, str], int] = defaultdict(int)
        self.shadow_dropped: dict[str, int] = defaultdict(int)
        self.weights: dict[str, float] = {}
        self.capture_rows: dict[str, int] = defaultdict(int)
        self.capture_dropped = 0
        self._lat_counts: dict[str, list[int]] = {}
        self._lat_sum: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def observe(self, version: str, protocol: str, code: int, seconds: float) -> None:
        """One answered request."""
        self.requests[(version, protocol, code)] += 1
        counts = self._lat_counts.get(version)
        if counts is None:
            counts = self._lat_counts[version] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._lat_sum[version] += seconds

    def error(self, version: str, reason: str) -> None:
        self.errors[(version, reason)] += 1

    def predicted(self, version: str, labels: list[Any]) -> None:
        if len(labels) == 1:
            self.predictions[(version, str(labels[0]))] += 1
            return
        for label in labels:
            self.predictions[(version, str(label))] += 1

    def shadowed(self, version: str, agree: int, disagree: int) -> None:
        self.shadow_requests[version] += 1
        self.shadow_agreement[(version, "true")] += agree
        self.shadow_agreement[(version, "false")] += disagree

    def shadow_busy(self, version: str) -> None:
        self.shadow_dropped[version] += 1

    def forget(self, version: str) -> None:
        """Drop every series of ``version`` (unloaded: its counters would otherwise be
        exported, frozen, for the life of the process)."""
        tables: tuple[dict[Any, Any], ...] = (
            self.requests,
            self.errors,
            self.predictions,
            self.shadow_agreement,
        )
        for table in tables:
            for key in [k for k in table if k[0] == version]:
                del table[key]
        by_version: tuple[dict[str, Any], ...] = (
            self.shadow_requests,
            self.shadow_dropped,
            self.weights,
            self._lat_sum,
            self._lat_counts,
        )
        for simple in by_version:
            simple.pop(version, None)
        with self._lock:
            self.capture_rows.pop(version, None)

    def set_weights(self, weights: dict[str, float]) -> None:
        # Versions taken out of the routes stay listed with 0 so dashboards see the drop.
        self.weights = {**dict.fromkeys(self.weights, 0.0), **weights}

    def captured(self, version: str, rows: int) -> None:
        with self._lock:
            self.capture_rows[version] += rows

    def dropped(self, rows: int) -> None:
        with self._lock:
            self.capture_dropped += rows

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        m = _escape(self.model)
        out: list[str] = []

        def head(name: str) -> None:
            kind, text = _HELP[name]
            out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")

        head("mlops_requests_total")
        for (v, proto, code), n in list(self.requests.items()):
            out.append(
                f'mlops_requests_total{{model="{m}",version="{_escape(v)}",'
                f'protocol="{proto}",code="{code}"}} {n}\n'
            )
        head("mlops_request_errors_total")
        for (v, reason), n in list(self.errors.items()):
            out.append(
                f'mlops_request_errors_total{{model="{m}",version="{_escape(v)}",'
                f'reason="{_escape(reason)}"}} {n}\n'
            )
        head("mlops_request_latency_seconds")
        for v, counts in list(self._lat_counts.items()):
            lab = f'model="{m}",version="{_escape(v)}"'
            total = 0
            for le, n in zip((*LATENCY_BUCKETS, math.inf), counts, strict=True):
                total += n
                out.append(
                    f'mlops_request_latency_seconds_bucket{{{lab},le="{_fmt(le)}"}} {total}\n'
                )
            out.append(f"mlops_request_latency_seconds_sum{{{lab}}} {self._lat_sum[v]!r}\n")
            out.append(f"mlops_request_latency_seconds_count{{{lab}}} {total}\n")
        head("mlops_predictions_total")
        for (v, label), n in list(self.predictions.items()):
            out.append(
                f'mlops_predictions_total{{model="{m}",version="{_escape(v)}",'
                f'label="{_escape(label)}"}} {n}\n'
            )
        head("mlops_shadow_requests_total")
        for v, n in list(self.shadow_requests.items()):
            out.append(f'mlops_shadow_requests_total{{model="{m}",version="{_escape(v)}"}} {n}\n')
        head("mlops_shadow_agreement_total")
        for (v, agree), n in list(self.shadow_agreement.items()):
            out.append(
                f'mlops_shadow_agreement_total{{model="{m}",version="{_escape(v)}",'
                f'agree="{agree}"}} {n}\n'
            )
        head("mlops_shadow_dropped_total")
        for v, n in list(self.shadow_dropped.items()):
            out.append(f'mlops_shadow_dropped_total{{model="{m}",version="{_escape(v)}"}} {n}\n')
        head("mlops_route_weight")
        for v, w in list(self.weights.items()):
            out.append(f'mlops_route_weight{{model="{m}",version="{_escape(v)}"}} {_fmt(w)}\n')
        head("mlops_capture_rows_total")
        with self._lock:
            rows = list(self.capture_rows.items())
            dropped = self.capture_dropped
        for v, n in rows:
            out.append(f'mlops_capture_rows_total{{model="{m}",version="{_escape(v)}"}} {n}\n')
        head("mlops_capture_dropped_total")
        out.append(f'mlops_capture_dropped_total{{model="{m}"}} {dropped}\n')
        return "".join(out)


class Sample(NamedTuple):
    """One line of the exposition: its labels and value."""

    labels: dict[str, str]
    value: float


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_prometheus(text: str) -> dict[str, list[Sample]]:
    """``{metric_name: [Sample(labels, value), ...]}`` from a Prometheus text exposition.

    Histogram series keep their suffixed names (``..._bucket``, ``..._sum``, ``..._count``).
    Comment lines are skipped; a malformed line raises ``ValueError`` naming it.
    """
    out: dict[str, list[Sample]] = defaultdict(list)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"line {number} is not a Prometheus sample: {line!r:.120}")
        name, labels, value = match.groups()
        parsed = {k: _unescape(v) for k, v in _LABEL.findall(labels or "")}
        out[name].append(Sample(parsed, float(value)))
    return dict(out)


def _matches(sample: Sample, match: dict[str, str]) -> bool:
    return all(sample.labels.get(k) == str(v) for k, v in match.items())


def metric_sum(parsed: dict[str, list[Sample]], name: str, **match: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``match`` (0 when none)."""
    return sum(s.value for s in parsed.get(name, ()) if _matches(s, match))


def histogram_quantile(
    parsed: dict[str, list[Sample]], name: str, q: float, **match: str
) -> float | None:
    """The ``q`` quantile (0..1) of histogram ``name`` over the matching series, interpolated
    linearly inside the bucket as Prometheus does; ``None`` when there is no observation."""
    per_le: dict[float, float] = defaultdict(float)
    for s in parsed.get(f"{name}_bucket", ()):
        if _matches(s, match):
            per_le[float(s.labels["le"])] += s.value
    if not per_le:
        return None
    edges = sorted(per_le)
    total = per_le[edges[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in edges:
        count = per_le[le]
        if count >= rank:
            if le == math.inf:
                return lower
            width = count - below
            return lower + (le - lower) * ((rank - below) / width if width else 1.0)
        lower, below = le, count
    return lower  # pragma: no cover - the +Inf bucket always reaches the total
