"""The ``validation`` section: declarative data checks (turned into a Great Expectations suite
by :mod:`airflow_mlops.core.data.validation`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, as_tuple, build_section

__all__ = ["ColumnSpec", "ValidationSpec", "check_validation", "parse_validation"]

COLUMN_TYPES = ("numeric", "integer", "string", "boolean")


@dataclass(frozen=True)
class ColumnSpec:
    """Expectations for one column.

    :param type: ``numeric``, ``integer``, ``string`` or ``boolean``.
    :param max_null_fraction: largest allowed share of nulls (0 means none allowed).
    :param min: smallest allowed value (numeric columns).
    :param max: largest allowed value (numeric columns).
    :param allowed: the allowed values (categorical columns).
    :param mostly: share of non-null rows that must satisfy ``min``/``max``/``allowed``.
    """

    type: str = "numeric"
    max_null_fraction: float = 0.0
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    mostly: float = 1.0


@dataclass(frozen=True)
class ValidationSpec:
    """Declarative data checks, turned into a Great Expectations suite.

    :param min_rows: fewest rows a dataset may have.
    :param max_rows: most rows a dataset may have (``None``: no limit).
    :param columns: per-column expectations; every column named here must exist.
    """

    min_rows: int = 1
    max_rows: int | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)


def parse_validation(raw: Any, source: str) -> ValidationSpec:
    """Build the :class:`ValidationSpec` of a config's ``validation`` mapping."""
    val_raw = dict(raw or {})
    cols_raw = val_raw.pop("columns", None) or {}
    columns = {}
    for col, spec in cols_raw.items():
        spec = dict(spec or {})
        if "allowed" in spec:
            spec["allowed"] = as_tuple(
                spec["allowed"], f"{source}: validation.columns.{col}.allowed"
            )
        columns[str(col)] = build_section(ColumnSpec, spec, f"{source}: validation.columns.{col}")
    validation: ValidationSpec = build_section(
        ValidationSpec, {**val_raw, "columns": columns}, f"{source}: validation"
    )
    return validation


def check_validation(validation: ValidationSpec, source: str) -> None:
    """Raise :class:`ConfigError` for an unknown column type or a null share outside [0, 1]."""
    for col, spec in validation.columns.items():
        if spec.type not in COLUMN_TYPES:
            raise ConfigError(
                f"{source}: validation.columns.{col}.type must be numeric, integer, string or "
                f"boolean, got {spec.type!r}"
            )
        if not 0.0 <= spec.max_null_fraction <= 1.0:
            raise ConfigError(f"{source}: validation.columns.{col}.max_null_fraction not in [0, 1]")
