"""Every error class of the package has one of the two roots, and keeps its builtin base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import airflow_mlops
from airflow_mlops.exceptions import MLOpsError, MLOpsTransientError

# Modules that need an optional extra or a running Airflow to import are not where error
# classes live; the ones that do are all importable in the test environment.
_SKIP = ("airflow_mlops.serving.__main__",)


def _package_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(airflow_mlops.__path__, "airflow_mlops."):
        if info.name in _SKIP:
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not obj.__module__.startswith("airflow_mlops.exceptions")
            ):
                found[f"{obj.__module__}.{name}"] = obj
    return found


ERRORS = _package_errors()


def test_the_package_errors_were_found() -> None:
    assert len(ERRORS) >= 21, sorted(ERRORS)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_error_has_exactly_one_root(name: str) -> None:
    cls = ERRORS[name]
    assert issubclass(cls, MLOpsError) != issubclass(cls, MLOpsTransientError), name


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("core.config.parse.ConfigError", ValueError),
        ("core.data.io.DataError", ValueError),
        ("core.data.io.StorageUnreachable", ConnectionError),
        ("core.training.pipeline.TrainingError", ValueError),
        ("core.training.evaluation.EvaluationError", ValueError),
        ("core.model.reference.ModelRefError", ValueError),
        ("core.scoring.types.ScoringError", ValueError),
        ("core.drift.monitor.NothingToMonitor", LookupError),
        ("core.pipeline.steps.GateFailed", RuntimeError),
        ("core.registry.versions.RegistryError", RuntimeError),
        ("core.rollout.targets.base.StepFailed", RuntimeError),
        ("serving.models.LoadError", RuntimeError),
        ("core.registry.tracking.MLflowUnreachable", ConnectionError),
    ],
)
def test_builtin_bases_are_kept(name: str, builtin: type[Exception]) -> None:
    assert issubclass(ERRORS[f"airflow_mlops.{name}"], builtin)


def test_only_an_unreachable_service_is_transient() -> None:
    transient = sorted(n for n, cls in ERRORS.items() if issubclass(cls, MLOpsTransientError))
    assert transient == [
        "airflow_mlops.core.data.io.StorageUnreachable",
        "airflow_mlops.core.registry.tracking.MLflowUnreachable",
        "airflow_mlops.ui.overview.UIError",
    ]


def test_the_module_imports_nothing() -> None:
    import ast

    source = inspect.getsource(importlib.import_module("airflow_mlops.exceptions"))
    imports = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom) and node.module != "__future__"
    ]
    assert imports == []
