"""What the lifecycle DAG factories share: the config read at parse time, dates, task defaults."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum

from airflow_mlops.core.config.model import ModelConfig, load_config

# A fixed past date with ``catchup=False``: a scheduled DAG's first run is its next tick.
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")


def read_config(config_path: str | os.PathLike[str]) -> tuple[str, ModelConfig]:
    """The config's absolute path and the config itself.

    Read at parse time: the file is small and local. Tasks get the absolute path so that they
    find it whatever directory the worker runs in.
    """
    config_file = str(Path(config_path).resolve())
    return config_file, load_config(config_file)


def default_args(*, retries: int = 1, retry_delay: timedelta | None = None) -> dict[str, Any]:
    """The ``default_args`` of every lifecycle DAG (owner ``mlops``)."""
    return {
        "owner": "mlops",
        "retries": retries,
        "retry_delay": retry_delay if retry_delay is not None else timedelta(minutes=1),
    }


def operator_args(config_file: str, mlflow_conn_id: str) -> dict[str, Any]:
    """The arguments every lifecycle operator of one DAG shares."""
    return {"config": config_file, "mlflow_conn_id": mlflow_conn_id}
