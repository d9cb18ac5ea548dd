"""The two roots of every error this package raises, by what a retry can do about it.

- :class:`MLOpsError`: permanent. Bad data, a bad config, a failed gate, a missing version:
  running the same task again gives the same answer, so an Airflow task fails at once
  (``MLOpsBaseOperator.call_core`` turns it into ``AirflowFailException``).
- :class:`MLOpsTransientError`: a retry may help (MLflow or object storage did not answer), so
  the task's retries apply.

Each concrete error also keeps the builtin base it always had (``ValueError``,
``RuntimeError``, ``ConnectionError``...), so code that catches those keeps working.
Imports nothing: ``core/`` and ``serving/`` raise these without Airflow installed.
"""

from __future__ import annotations

__all__ = ["MLOpsError", "MLOpsTransientError"]


class MLOpsError(Exception):
    """A failure that the same inputs will reproduce; retrying the task cannot fix it."""


class MLOpsTransientError(Exception):
    """A failure of something outside the task (a server, a network) that may pass."""
