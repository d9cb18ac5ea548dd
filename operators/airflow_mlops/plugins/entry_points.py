"""What the package's ``airflow.plugins`` entry points load (setup.cfg).

Airflow registers a plugin once per name and reports any second copy as an import error. It
reads the ``plugins`` of ``get_provider_info()`` itself only when ``[core]
lazy_discover_providers`` is off; then these names resolve to ``None``, which Airflow skips
without a word, and each plugin comes from the provider info alone. With the default (on) they
resolve to the plugin classes.
"""

from __future__ import annotations

from typing import Any

PLUGINS = {
    "MLOpsEventsPlugin": "airflow_mlops.plugins.events",
    "MLOpsUIPlugin": "airflow_mlops.plugins.ui",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = PLUGINS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from airflow import settings

    if not getattr(settings, "LAZY_LOAD_PROVIDERS", True):
        return None
    return getattr(importlib.import_module(module), name)
