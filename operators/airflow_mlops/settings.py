"""The one reader of the package's settings: Airflow's ``[mlops]`` config section, with the
``MLOPS_*`` environment variables as fallbacks.

Each variable below is also the ``[mlops]`` option named by it without the prefix, in lower
case (``MLOPS_HOME`` is ``[mlops] home``, ``AIRFLOW__MLOPS__HOME`` in the environment); the
option wins where both are set, as Airflow's own settings do over anything else.

Every value is read when asked for, not at import, so a test's ``monkeypatch.setenv`` or a
command that sets ``MLOPS_HOME`` before it starts the servers is seen by the code it runs.
Standard library only: ``core/``, ``serving/``, the DAG files and ``airflow-mlops score`` in
the serving image all import this module.

==============================  ==========================================================
``MLOPS_HOME``                  the local state folder (see :func:`mlops_home`)
``MLOPS_MLFLOW_CHECK_SECONDS``  how long a task waits for MLflow's ``/health`` (10)
``MLOPS_CODE_VERSION``          the code version tagged on a version (else the git commit)
``MLOPS_EVENT_LOG``             the lifecycle event log (``$MLOPS_HOME/events/events.jsonl``)
``MLOPS_XCOM_FILE``             where ``airflow-mlops score`` also writes its result
``MLOPS_UI_MLFLOW_CONN_ID``     the connection of the Models view (``mlflow_default``)
``MLOPS_<DAG>_CONFIG``          the model config of a ready DAG (see :func:`dag_config`)
==============================  ==========================================================
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "DEFAULT_HOME",
    "EVENT_LOG_ENV",
    "HOME_ENV",
    "XCOM_FILE_ENV",
    "code_version",
    "dag_config",
    "event_log",
    "mlflow_check_seconds",
    "mlops_home",
    "ui_mlflow_conn_id",
    "xcom_file",
]

HOME_ENV = "MLOPS_HOME"
#: ``.mlops`` in the working directory. Chosen because it is what the model configs already
#: say (``${MLOPS_HOME:-.mlops}`` in ``dags/configs/``), what most readers used before there
#: was one reader, and what ``make`` sets explicitly (``$(CURDIR)/.mlops``, git-ignored), so
#: a run from the checkout's root finds the same folder with or without ``make``. It is
#: relative on purpose: an installed package has no checkout to anchor it to, and every
#: Airflow component of the embedded stack gets the absolute path in its environment.
DEFAULT_HOME = ".mlops"
EVENT_LOG_ENV = "MLOPS_EVENT_LOG"
XCOM_FILE_ENV = "MLOPS_XCOM_FILE"
MLFLOW_CHECK_ENV = "MLOPS_MLFLOW_CHECK_SECONDS"
# The scoring server's admin token (when its config names no token file).
SERVING_ADMIN_TOKEN_ENV = "MLOPS_SERVING_ADMIN_TOKEN"
DEFAULT_MLFLOW_CHECK_SECONDS = 10.0


def option_name(variable: str) -> str:
    """The ``[mlops]`` option of Airflow's config that stands for ``variable``
    (``MLOPS_HOME`` -> ``home``, ``MLOPS_TRAINING_CONFIG`` -> ``training_config``)."""
    return variable.removeprefix("MLOPS_").lower()


def _airflow_option(option: str) -> str | None:
    """``[mlops] <option>`` from Airflow's config (``airflow.cfg``, ``AIRFLOW__MLOPS__*``,
    their ``_CMD``/``_SECRET`` forms), where Airflow's config is loaded in this process.

    Never imported from here: the serving image and ``airflow-mlops score`` have no Airflow,
    and a process that has not loaded it still sees ``AIRFLOW__MLOPS__<OPTION>`` directly.
    """
    configuration = sys.modules.get("airflow.configuration")
    conf = getattr(configuration, "conf", None)
    if conf is not None:
        try:
            value = conf.get("mlops", option, fallback=None)
        except Exception:  # a broken _CMD or secret: the variables still apply
            value = None
        if value:
            return str(value)
    return os.environ.get(f"AIRFLOW__MLOPS__{option.upper()}") or None


def _get(name: str) -> str | None:
    """The ``[mlops]`` option of Airflow's config, else the ``MLOPS_*`` variable; an empty
    value counts as unset (``MLOPS_HOME= airflow ...``)."""
    return _airflow_option(option_name(name)) or os.environ.get(name) or None


def mlops_home() -> str:
    """``MLOPS_HOME``, else :data:`DEFAULT_HOME`: the folder under which the package keeps
    local state (work files, monitoring samples, the model cache, rollout servers, events,
    the embedded stack's databases). Returned as given: a relative path stays relative."""
    return _get(HOME_ENV) or DEFAULT_HOME


def explicit_home() -> str | None:
    """``MLOPS_HOME`` when it is set, else ``None``: for the scoring server, whose state
    without it goes to its own folder rather than the working directory."""
    return _get(HOME_ENV)


def mlflow_check_seconds() -> float:
    """``MLOPS_MLFLOW_CHECK_SECONDS``: how long a task waits for MLflow's ``/health`` before
    failing the try (default 10)."""
    raw = _get(MLFLOW_CHECK_ENV)
    if raw is None:
        return DEFAULT_MLFLOW_CHECK_SECONDS
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(
            f"{MLFLOW_CHECK_ENV}={raw!r} ([mlops] mlflow_check_seconds) is not a number of seconds"
        ) from exc


def code_version() -> str | None:
    """``MLOPS_CODE_VERSION``: the code version to tag on registered versions (for images
    without a git checkout); ``None``: ask git."""
    return _get("MLOPS_CODE_VERSION")


def event_log() -> str:
    """``MLOPS_EVENT_LOG``, else ``$MLOPS_HOME/events/events.jsonl``."""
    return _get(EVENT_LOG_ENV) or os.path.join(mlops_home(), "events", "events.jsonl")


def xcom_file() -> str | None:
    """``MLOPS_XCOM_FILE``: where ``airflow-mlops score`` also writes its JSON result (the
    Kubernetes pod's XCom sidecar reads it); ``None``: nowhere."""
    return _get(XCOM_FILE_ENV)


def ui_mlflow_conn_id(default: str) -> str:
    """``MLOPS_UI_MLFLOW_CONN_ID``: the MLflow connection of the Models view, else ``default``."""
    return _get("MLOPS_UI_MLFLOW_CONN_ID") or default


def dag_config(dag: str, default: str) -> str:
    """``MLOPS_<DAG>_CONFIG``: the model config a ready DAG is built from, else ``default``.

    :param dag: ``training``, ``scoring``, ``rollout`` or ``monitor``; the monitor falls back
        to the training DAG's config (it watches the model that DAG trains).
    :param default: the config used when no variable names one.
    """
    found = _get(f"MLOPS_{dag.upper()}_CONFIG")
    if found is None and dag == "monitor":
        found = _get("MLOPS_TRAINING_CONFIG")
    return found or default
