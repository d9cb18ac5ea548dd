"""The package's plugins: registered by an installed package with no plugins folder, never twice.

Each case runs Airflow in a fresh interpreter with a temporary ``AIRFLOW_HOME``: the plugin
manager caches what it loaded, and the settings it reads are fixed at import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
NAMES = ["mlops_events", "mlops_ui"]

_PROBE = r"""
import json
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
print(json.dumps({"names": sorted(p.name for p in plugins), "errors": errors}))
"""


def _env(tmp_path: Path, plugins_folder: Path, lazy: bool = True) -> dict[str, str]:
    home = tmp_path / "airflow"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": str(lazy),
    }


def test_airflow_plugins_lists_both_with_an_empty_plugins_folder(tmp_path) -> None:
    empty = tmp_path / "plugins"
    empty.mkdir()
    out = subprocess.run(
        [AIRFLOW, "plugins", "-o", "json"],
        env=_env(tmp_path, empty),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    listed = {p["name"]: p for p in json.loads(out.stdout[out.stdout.index("[") :])}
    assert sorted(listed) == NAMES
    assert listed["mlops_events"]["listeners"] == ["airflow_mlops.plugins.events.LifecycleListener"]
    (view,) = listed["mlops_ui"]["external_views"]
    assert (view["name"], view["href"], view["url_route"]) == ("Models", "/mlops/", "mlops_models")
    assert listed["mlops_ui"]["fastapi_apps"][0]["url_prefix"] == "/mlops"


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy-providers", "eager-providers"])
@pytest.mark.parametrize("folder", ["empty", "repo"])
def test_each_plugin_is_registered_once_without_an_import_error(tmp_path, folder, lazy) -> None:
    # Airflow loads the folder, then entry points, then (providers not lazy) the provider
    # info's plugins; a second copy of a name is skipped and reported as an import error.
    plugins_folder = REPO / "plugins" if folder == "repo" else tmp_path / "plugins"
    plugins_folder.mkdir(exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=_env(tmp_path, plugins_folder, lazy),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"names": NAMES, "errors": {}}


def test_provider_info_declares_the_plugins_the_entry_points_load() -> None:
    from importlib import metadata

    from airflow_mlops.get_provider_info import get_provider_info
    from airflow_mlops.plugins import entry_points

    declared = {p["name"]: p["plugin-class"] for p in get_provider_info()["plugins"]}
    points = {
        ep.name: ep.value
        for ep in metadata.distribution("airflow-mlops").entry_points
        if ep.group == "airflow.plugins"
    }
    assert sorted(declared) == sorted(points) == NAMES
    for name, target in points.items():
        module, attr = declared[name].rsplit(".", 1)
        assert target == f"airflow_mlops.plugins.entry_points:{attr}"
        plugin = getattr(entry_points, attr)
        assert plugin is getattr(importlib.import_module(module), attr)
        assert plugin.name == name


def test_entry_points_step_aside_when_airflow_loads_provider_plugins(monkeypatch) -> None:
    from airflow import settings

    from airflow_mlops.plugins import entry_points

    monkeypatch.setattr(settings, "LAZY_LOAD_PROVIDERS", False)
    assert entry_points.MLOpsUIPlugin is None
    with pytest.raises(AttributeError):
        entry_points.NoSuchPlugin  # noqa: B018


@pytest.mark.parametrize(
    ("file", "name", "cls"),
    [
        ("mlops_events.py", "mlops_events", "MLOpsEventsPlugin"),
        ("mlops_ui.py", "mlops_ui", "MLOpsUIPlugin"),
    ],
)
def test_folder_files_expose_the_plugin_only_for_a_package_not_installed(
    monkeypatch, file, name, cls
) -> None:
    from importlib import metadata

    import airflow_mlops.plugins as plugins

    def load() -> dict:
        spec = importlib.util.spec_from_file_location(f"folder_{name}", REPO / "plugins" / file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return vars(module)

    assert plugins.registered_by_package(name) is True
    assert cls not in load()

    def missing(dist: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "distribution", missing)
    assert plugins.registered_by_package(name) is False
    exposed = load()[cls]
    assert exposed.name == name and exposed.__module__.startswith("airflow_mlops.plugins.")
