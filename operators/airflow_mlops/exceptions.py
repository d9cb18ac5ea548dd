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

__all__ = ["MLOpsError", "MLOpsTransientError", "is_permanent"]


class MLOpsError(Exception):
    """A failure that the same inputs will reproduce; retrying the task cannot fix it."""


class MLOpsTransientError(Exception):
    """A failure of something outside the task (a server, a network) that may pass."""


# Errors of the libraries the package drives that the same call will reproduce. Matched by
# class name and module, so this file still imports nothing (botocore, MLflow and ONNX Runtime
# are imported where they are used, not here).
_PERMANENT_BY_MODULE = {
    # No credentials at all, or half of them: nothing changes until someone configures them.
    "botocore": {"NoCredentialsError", "PartialCredentialsError", "NoRegionError"},
    # A graph ONNX Runtime refuses (unregistered op, bad protobuf, invalid graph) stays refused.
    "onnxruntime": {"Fail", "InvalidGraph", "InvalidProtobuf", "InvalidArgument", "NotImplemented"},
}

# MLflow's error codes for requests the server (or the client's own checks: schema enforcement,
# a signature that does not match) refuse as asked; the others (INTERNAL_ERROR,
# TEMPORARILY_UNAVAILABLE, REQUEST_LIMIT_EXCEEDED, ...) may pass.
_MLFLOW_PERMANENT_CODES = frozenset(
    {
        "BAD_REQUEST",
        "INVALID_PARAMETER_VALUE",
        "MALFORMED_REQUEST",
        "INVALID_STATE",
        "INVALID_STATE_TRANSITION",
        "RESOURCE_ALREADY_EXISTS",
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "CUSTOMER_UNAUTHORIZED",
        "FEATURE_DISABLED",
        "NOT_IMPLEMENTED",
    }
)


def _library(cls: type) -> str:
    return cls.__module__.split(".", 1)[0]


def _permanent_itself(exc: BaseException) -> bool | None:
    """True/False when ``exc`` alone decides; ``None`` when it says nothing either way."""
    if isinstance(exc, MLOpsError):
        return True
    if isinstance(exc, MLOpsTransientError):
        return False
    for cls in type(exc).__mro__:
        if cls.__name__ in _PERMANENT_BY_MODULE.get(_library(cls), ()):
            return True
        if _library(cls) == "mlflow" and cls.__name__ == "MlflowException":
            return str(getattr(exc, "error_code", "")) in _MLFLOW_PERMANENT_CODES
    return None


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying what raised ``exc`` gives the same failure.

    The package's own errors say so by their root. A library error counts as permanent when it
    is one the same call reproduces: botocore finding no credentials, ONNX Runtime refusing a
    graph (an op it does not implement), MLflow refusing a request as invalid (a signature or
    schema mismatch, a name that does not exist). The first error in the ``raise ... from``
    chain that decides wins; anything unknown is not permanent, so the task's retries apply.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        decided = _permanent_itself(current)
        if decided is not None:
            return decided
        current = current.__cause__ or current.__context__
    return False
