"""The typed results of the training steps, in the JSON form they travel in.

Each step returns ``<Result>.to_dict()`` (what an Airflow task pushes to XCom: the keys are
the ones the DAGs, the tests and existing runs already use) and reads its upstream results
with ``<Result>.from_dict()``, so a renamed or missing key fails in one place, naming the
result and the key, instead of as a ``KeyError`` deep inside a step. ``from_dict`` ignores
keys it does not know (a result written by a newer version of a step still reads) and takes
an instance as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Self

from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "ConversionResult",
    "Evaluated",
    "Prepared",
    "Promoted",
    "Registered",
    "StepResult",
    "StepResultError",
    "Trained",
    "Validated",
]


class StepResultError(MLOpsError, ValueError):
    """An upstream result that is not what the step expects; names the result and the key."""


class StepResult:
    """Shared by the step results: ``to_dict`` / ``from_dict`` round-trip."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (what goes to XCom)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | Self) -> Self:
        """Read an upstream result (its dict, or the result itself)."""
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, Mapping):
            raise StepResultError(
                f"{cls.__name__}: expected an upstream task's result (a mapping), "
                f"got {type(raw).__name__}"
            )
        known = fields(cls)  # type: ignore[arg-type]
        missing = [
            f.name
            for f in known
            if f.name not in raw and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise StepResultError(
                f"{cls.__name__}: the upstream result lacks {missing}; it has {sorted(raw)}"
            )
        return cls(**{f.name: raw[f.name] for f in known if f.name in raw})


@dataclass(frozen=True)
class Prepared(StepResult):
    """``prepare``: the split's files and the lineage figures of the source data."""

    data_uri: str
    sha256: str
    rows: int
    train_uri: str
    holdout_uri: str
    train_rows: int
    holdout_rows: int
    target: str = ""
    class_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Validated(StepResult):
    """``validate``: the outcome of the data checks (``report_uri`` when a report was written).

    The validation task pushes only :data:`XCOM_KEYS`; every other field has a default, so
    that short form reads too.
    """

    success: bool
    summary: str
    evaluated: int = 0
    failed_count: int = 0
    skipped: int = 0
    rows: int = 0
    data_uri: str = ""
    failed: list[dict[str, Any]] = field(default_factory=list)
    report_uri: str | None = None

    #: What the validation task returns (the failed checks stay in the report).
    XCOM_KEYS = ("success", "evaluated", "summary", "rows", "report_uri")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.report_uri is None:
            out.pop("report_uri")
        return out

    def xcom(self) -> dict[str, Any]:
        """The short form the validation task returns."""
        out = self.to_dict()
        return {key: out.get(key) for key in self.XCOM_KEYS}


@dataclass(frozen=True)
class Trained(StepResult):
    """``train``: the fitted pipeline's file and its holdout metrics."""

    model_uri: str
    metrics: dict[str, float]
    classes: list[Any]
    n_train: int = 0
    n_holdout: int = 0
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0


@dataclass(frozen=True)
class Evaluated(StepResult):
    """``evaluate``: the verdict, each gate's figures, and what the champion was measured on."""

    passed: bool
    summary: str = ""
    champion_version: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    champion_metrics: dict[str, float] | None = None
    champion_basis: str = ""


@dataclass(frozen=True)
class ConversionResult(StepResult):
    """``convert``: the ONNX file and its parity figures."""

    onnx_uri: str
    size_bytes: int
    convert_seconds: float
    parity: dict[str, Any]


@dataclass(frozen=True)
class Registered(StepResult):
    """``register``: the registered version as the later steps refer to it."""

    name: str
    version: str
    run_id: str | None = None
    model_uri: str = ""
    aliases: list[str] = field(default_factory=list)
    source: str | None = None
    run_url: str | None = None
    version_url: str | None = None
    #: an existing version had the same data, training config and metrics: nothing registered.
    unchanged: bool = False
    message: str = ""


@dataclass(frozen=True)
class Promoted(StepResult):
    """``promote``: which alias moved to which version, and from where."""

    name: str
    version: str
    alias: str
    previous_version: str | None
    message: str
