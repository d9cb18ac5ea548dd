"""What every config section's parser shares: the error, the key check, the section builder,
list coercion and ``${VAR}`` expansion. Standard library only (read at DAG-parse time)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from airflow_mlops import settings
from airflow_mlops.exceptions import MLOpsError

__all__ = ["ConfigError", "as_tuple", "build_section", "check_keys", "expand"]


class ConfigError(MLOpsError, ValueError):
    """A model config that cannot be used; the message names the key and the file."""


def check_keys(raw: Any, known: type | Iterable[str], where: str, what: str = "key(s)") -> None:
    """Raise :class:`ConfigError` naming ``where``, the unknown keys and the known ones, when
    ``raw`` is not a mapping or has a key outside ``known`` (names, or a dataclass's fields)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name for f in fields(known)} if isinstance(known, type) else set(known)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown {what} {unknown}; known keys: {sorted(names)}")


def build_section(cls: type, raw: Any, where: str) -> Any:
    """Build the dataclass ``cls`` from a mapping; a non-mapping or an unknown key raises
    :class:`ConfigError` naming ``where`` and the known keys."""
    raw = {} if raw is None else raw
    check_keys(raw, cls, where)
    return cls(**raw)


def as_tuple(raw: Any, where: str) -> tuple[Any, ...]:
    """A YAML list as a tuple (``None``: empty); a string or a scalar raises
    :class:`ConfigError` (``features: age`` is a typo for ``[age]``, not a list of letters)."""
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise ConfigError(f"{where}: expected a list, got {raw!r}")
    return tuple(raw)


def expand(text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from the environment (used for paths).

    ``${MLOPS_HOME}`` is the package's home as :func:`airflow_mlops.settings.mlops_home` finds
    it (Airflow's ``[mlops] home`` first), so config paths and the package's own state agree.
    """

    def repl(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":-")
        if name == settings.HOME_ENV:
            return settings.explicit_home() or default
        return os.environ.get(name, default)

    return re.sub(r"\$\{([^}]+)\}", repl, text)
