"""The "Models" view plugin, ``airflow_mlops.plugins.ui``.

An installed package registers it itself; this file exposes it only when the package is
importable without being installed, so Airflow never registers it twice.
"""

from __future__ import annotations

from airflow_mlops.plugins import registered_by_package

if not registered_by_package("mlops_ui"):
    from airflow_mlops.plugins.ui import MLOpsUIPlugin as MLOpsUIPlugin
