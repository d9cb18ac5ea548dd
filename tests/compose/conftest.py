"""Fixtures for the compose checks: the parsed compose file and Dockerfiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """``docker-compose.yaml`` as YAML data (anchors and merge keys resolved)."""
    import yaml

    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs of a Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
    assert not pending, f"{path}: the last instruction ends in a line continuation"
    return out


def requirement_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line (comments and options skipped)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[name.split("[", 1)[0].strip().lower()] = version.strip()
    return pins
