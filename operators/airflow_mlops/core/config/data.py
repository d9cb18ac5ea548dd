"""The ``data`` section: where the training data is and what its columns mean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.config.parse import ConfigError, as_tuple, build_section

__all__ = ["DataSpec", "check_data", "parse_data"]


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and what its columns mean.

    :param uri: local path or fsspec URI of a Parquet or CSV file, or a folder of them (templated
        in the DAGs).
    :param target: the label column.
    :param numeric_features: numeric input columns.
    :param categorical_features: string input columns (one-hot encoded).
    :param key_columns: identifiers carried through to scoring outputs, never used as features.
    :param format: ``parquet``, ``csv`` or ``auto`` (from the file suffix).
    :param holdout_fraction: share of rows kept aside for evaluation and parity checks.
    :param seed: seed for the split and for every sample taken from the data.
    :param stratify: keep the label balance equal in both parts of the split.
    """

    uri: str
    target: str
    numeric_features: tuple[str, ...] = ()
    categorical_features: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()
    format: str = "auto"
    holdout_fraction: float = 0.2
    seed: int = 42
    stratify: bool = True

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric_features + self.categorical_features


def parse_data(raw: Any, source: str) -> DataSpec:
    """Build the :class:`DataSpec` of a config's ``data`` mapping (``features: {numeric,
    categorical}`` or the flat ``*_features`` keys) and check it (:func:`check_data`)."""
    data_raw = dict(raw or {})
    if "features" in data_raw:
        feats = data_raw.pop("features") or {}
        if not isinstance(feats, dict):
            raise ConfigError(f"{source}: data.features must map 'numeric'/'categorical' to lists")
        data_raw["numeric_features"] = feats.get("numeric")
        data_raw["categorical_features"] = feats.get("categorical")
    for key in ("numeric_features", "categorical_features", "key_columns"):
        data_raw[key] = as_tuple(data_raw.get(key), f"{source}: data.{key}")
    for required in ("uri", "target"):
        if not data_raw.get(required):
            raise ConfigError(f"{source}: missing required key data.{required}")
    data: DataSpec = build_section(DataSpec, data_raw, f"{source}: data")
    return data


def check_data(data: DataSpec, source: str) -> None:
    """Raise :class:`ConfigError` for no features, a column in two roles, a holdout share
    outside (0, 1) or an unknown format."""
    if not data.features:
        raise ConfigError(f"{source}: data.features lists no numeric or categorical column")
    seen: dict[str, str] = {}
    for role, cols in (
        ("numeric", data.numeric_features),
        ("categorical", data.categorical_features),
        ("key", data.key_columns),
        ("target", (data.target,)),
    ):
        for col in cols:
            if col in seen:
                raise ConfigError(
                    f"{source}: column {col!r} is listed as {seen[col]} and as {role}"
                )
            seen[col] = role
    if not 0.0 < data.holdout_fraction < 1.0:
        raise ConfigError(
            f"{source}: data.holdout_fraction must be between 0 and 1, got {data.holdout_fraction}"
        )
    if data.format not in ("auto", "parquet", "csv"):
        raise ConfigError(f"{source}: data.format must be auto, parquet or csv")
