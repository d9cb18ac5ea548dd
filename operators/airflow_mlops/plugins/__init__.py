"""The package's Airflow plugins: the lifecycle-event listener and the "Models" view.

An installed package registers them itself, so no plugins folder is needed: through its
``airflow.plugins`` entry points (setup.cfg, ``entry_points.py``) by default, and through the
``plugins`` of ``get_provider_info()`` when ``[core] lazy_discover_providers`` is off. Never
both: Airflow would skip the second copy and report it as an import error.
"""

from __future__ import annotations

DISTRIBUTION = "airflow-mlops"
ENTRY_POINT_GROUP = "airflow.plugins"


def registered_by_package(name: str) -> bool:
    """Whether the installed package registers plugin ``name`` itself (it declares the entry
    point; a package only on ``PYTHONPATH`` declares nothing).

    A plugins-folder file exposes the plugin class only when this is false, so that Airflow
    never registers a plugin twice.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return any(ep.group == ENTRY_POINT_GROUP and ep.name == name for ep in dist.entry_points)
