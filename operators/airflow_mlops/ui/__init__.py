"""The "Models" view: registered models as the lifecycle left them, read from MLflow.

``overview`` gathers versions, aliases and the ``mlops.*`` tags into plain dataclasses,
``render`` turns them into one escaped HTML page, ``app`` serves both (HTML and JSON) as a
FastAPI app that the Airflow plugin ``airflow_mlops.plugins.ui`` mounts under ``/mlops``.
Nothing here imports Airflow (ruff TID251): the plugin hands in how to find MLflow and how to
check access.
"""

from __future__ import annotations
