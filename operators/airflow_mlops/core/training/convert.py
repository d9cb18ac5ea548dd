"""Convert a fitted pipeline to ONNX.

The converted model follows the input contract of :mod:`airflow_mlops.core.model.feed` (one
``[N, 1]`` input per feature, float32 numbers with NaN for missing, strings with ``""`` for
missing) and has two outputs, ``label`` and ``probabilities`` (``[N, n_classes]`` in the order of
``classes_``). There is no ZipMap: it costs 1.15x-7.8x in time and hundreds of MB at the batch
sizes we score with. The parity check against the native pipeline is in
:mod:`airflow_mlops.core.training.parity`.

Only numpy is imported at the top; skl2onnx, onnxmltools, lightgbm and this package's
transformers (:mod:`airflow_mlops.core.training.pipeline`, which imports scikit-learn) are
imported where they are needed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from airflow_mlops.core.config.model import ModelConfig
from airflow_mlops.exceptions import MLOpsError

__all__ = ["ConversionError", "convert_to_onnx"]

# ai.onnx.ml 3 is what TreeEnsembleClassifier, OneHotEncoder and the linear ops need, and what
# every onnxruntime release since 1.7 implements.
_ML_OPSET = 3


class ConversionError(MLOpsError, RuntimeError):
    """A pipeline that cannot be converted to ONNX; the message names the step."""


_register_lock = threading.Lock()
_registered = False


def _patch_hist_gradient_boosting() -> None:
    """Make skl2onnx 1.20 convert HistGradientBoosting* again (narrow, idempotent shim).

    ``skl2onnx.common.tree_ensemble.add_tree_to_attribute_pairs_hist_gradient_boosting`` passes
    ``nodes_missing_value_tracks_true=False`` (a Python ``bool``) for every leaf and a
    ``np.uint8`` for every split. ``onnx.helper.make_attribute`` classifies the list as INTS
    (bool is an int subclass), and protobuf 5+ then refuses a bool in a repeated int64 field:
    "Expected an int, got a boolean". We coerce that one flag to ``int`` before it reaches the
    attribute lists; the value is unchanged (False == 0), and every other caller already passes
    ints.
    """
    try:
        from skl2onnx.common import tree_ensemble
    except ImportError:  # pragma: no cover - skl2onnx is a dependency
        return
    original = getattr(tree_ensemble, "add_node", None)
    if original is None or getattr(original, "_airflow_mlops_shim", False):
        return

    @functools.wraps(original)
    def add_node(*args: Any, **kwargs: Any) -> Any:
        flag = kwargs.get("nodes_missing_value_tracks_true")
        if isinstance(flag, bool | np.bool_):
            kwargs["nodes_missing_value_tracks_true"] = int(flag)
        return original(*args, **kwargs)

    add_node._airflow_mlops_shim = True  # type: ignore[attr-defined]
    tree_ensemble.add_node = add_node


def _identity_shape(operator: Any) -> None:
    # One output as wide as the concatenated inputs, of the same element type.
    width = sum(var.type.shape[1] for var in operator.inputs)
    out_type = operator.inputs[0].type.__class__
    operator.outputs[0].type = out_type([None, width])


def _convert_to_float32(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.proto import onnx_proto

    source = concatenate_variables(scope, operator.inputs, container)
    if isinstance(operator.inputs[0].type, FloatTensorType):
        container.add_node("Identity", [source], operator.outputs[0].full_name)
    else:
        container.add_node(
            "Cast", [source], operator.outputs[0].full_name, to=onnx_proto.TensorProto.FLOAT
        )


def _shape_to_float32(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    width = sum(var.type.shape[1] for var in operator.inputs)
    operator.outputs[0].type = FloatTensorType([None, width])


def _convert_float32_scaler(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.proto import onnx_proto

    # Sub then Div on float32 constants: the very arithmetic Float32Scaler.transform does.
    # (skl2onnx's StandardScaler converter multiplies by a reciprocal instead.)
    offset, scale = operator.raw_operator.float32_params()
    source = concatenate_variables(scope, operator.inputs, container)
    offset_name = scope.get_unique_variable_name("offset")
    scale_name = scope.get_unique_variable_name("scale")
    centred = scope.get_unique_variable_name("centred")
    container.add_initializer(
        offset_name, onnx_proto.TensorProto.FLOAT, [len(offset)], offset.tolist()
    )
    container.add_initializer(
        scale_name, onnx_proto.TensorProto.FLOAT, [len(scale)], scale.tolist()
    )
    container.add_node("Sub", [source, offset_name], centred)
    container.add_node("Div", [centred, scale_name], operator.outputs[0].full_name)


def _convert_fill_missing(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.operator_converters.common import concatenate_variables

    # The feed already encodes missing strings as "" (core.model.feed), so the fill is an
    # identity in the graph.
    source = concatenate_variables(scope, operator.inputs, container)
    container.add_node("Identity", [source], operator.outputs[0].full_name)


def _round_down_to_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each value (as float64, so it prints and parses back exactly)."""
    nearest = values.astype(np.float32)
    above = nearest.astype(np.float64) > values
    nearest[above] = np.nextafter(nearest[above], np.float32(-np.inf))
    return nearest.astype(np.float64)


def _lightgbm_with_float32_thresholds(model: Any) -> Any:
    """A shallow copy of a fitted LGBMClassifier whose split thresholds are float32 values.

    LightGBM compares ``double(x) <= t`` with float64 thresholds; the ONNX tree ensemble stores
    thresholds as float32, and onnxmltools rounds them to the nearest float32. When ``t`` lies
    between two adjacent float32 numbers and rounds up, a row whose value equals the rounded
    threshold goes left in ONNX and right natively (measured: |dp| 3.5e-2 on 1 row in 20k).
    For float32 inputs, which this pipeline always feeds the model, ``x <= t`` is exactly
    ``x <= round_down_f32(t)``, so rounding down first makes both runtimes take the same branch
    on every row, and leaves native predictions unchanged.
    """
    import copy

    import lightgbm

    lines = model.booster_.model_to_string().split("\n")
    threshold_at: int | None = None
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            threshold_at = i
        elif line.startswith("decision_type=") and threshold_at is not None:
            thresholds = np.array(lines[threshold_at][10:].split(), dtype=np.float64)
            decision = np.array(line[14:].split(), dtype=np.int64)
            numerical = (decision & 1) == 0  # bit 0 marks a categorical split (a bitset index)
            thresholds[numerical] = _round_down_to_float32(thresholds[numerical])
            lines[threshold_at] = "threshold=" + " ".join(repr(float(t)) for t in thresholds)
            threshold_at = None
    # tree_sizes holds the byte size of each tree block, which the edit changes; without it
    # LightGBM parses the trees one after the other.
    text = "\n".join(line for line in lines if not line.startswith("tree_sizes="))
    adjusted = copy.copy(model)
    adjusted._Booster = lightgbm.Booster(model_str=text)
    return adjusted


def _hist_gradient_boosting_with_float32_thresholds(pipeline: Any) -> Any:
    """The pipeline with a copy of its HistGradientBoostingClassifier whose split thresholds
    are float32 values (the same rounding down as for LightGBM, same reason).

    HistGradientBoosting puts a split halfway between two training values; with little data a
    value that scoring data holds can be exactly that midpoint (a feature in steps of 0.1 whose
    6.5 never appeared in 2,400 training rows: split at 6.5). Rounded to the nearest float32 the
    threshold went up to the input's own float32 value, which then went left in ONNX and right
    natively (|dp| 2e-3). Other pipelines are returned as they are.
    """
    import copy

    from sklearn.ensemble import HistGradientBoostingClassifier

    if not hasattr(pipeline, "steps"):
        return pipeline
    name, model = pipeline.steps[-1]
    if not isinstance(model, HistGradientBoostingClassifier):
        return pipeline
    adjusted = copy.deepcopy(model)
    for iteration in adjusted._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            split = nodes["is_leaf"] == 0
            nodes["num_threshold"][split] = _round_down_to_float32(nodes["num_threshold"][split])
    out = copy.copy(pipeline)
    out.steps = [*pipeline.steps[:-1], (name, adjusted)]
    return out


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    operator.raw_operator = _lightgbm_with_float32_thresholds(operator.raw_operator)
    convert_lightgbm(scope, operator, container)


def _register_converters() -> None:
    """Teach skl2onnx our three transformers and LightGBM (once per process)."""
    global _registered
    with _register_lock:
        if _registered:
            return
        from skl2onnx import update_registered_converter

        from airflow_mlops.core.training.pipeline import (
            FillMissingCategories,
            Float32Scaler,
            ToFloat32,
        )

        _patch_hist_gradient_boosting()
        update_registered_converter(
            ToFloat32, "AirflowMlopsToFloat32", _shape_to_float32, _convert_to_float32
        )
        update_registered_converter(
            Float32Scaler, "AirflowMlopsFloat32Scaler", _shape_to_float32, _convert_float32_scaler
        )
        update_registered_converter(
            FillMissingCategories,
            "AirflowMlopsFillMissingCategories",
            _identity_shape,
            _convert_fill_missing,
        )
        try:
            from lightgbm import LGBMClassifier
            from onnxmltools.convert.lightgbm.operator_converters import LightGbm  # noqa: F401
            from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
        except ImportError:
            pass  # LightGBM is optional; a LightGBM pipeline then fails the step check.
        else:
            update_registered_converter(
                LGBMClassifier,
                "LightGbmLGBMClassifier",
                calculate_linear_classifier_output_shapes,
                _convert_lightgbm,
                options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
            )
        _registered = True


def _public_path(cls: type) -> str:
    # sklearn.svm._classes.SVC -> sklearn.svm.SVC: the name users write in configs.
    parts = [p for p in cls.__module__.split(".") if not p.startswith("_")]
    return ".".join([*parts, cls.__qualname__])


def _describe(step: Any) -> str:
    text = _public_path(type(step))
    # SVC-like estimators only grow predict_proba with probability=True; since scikit-learn 1.9
    # the unset default reads "deprecated", which means False.
    if getattr(step, "probability", None) in (False, "deprecated"):
        text += " with probability=False"
    return text


def _leaf_steps(step: Any, name: str) -> Iterator[tuple[str, Any]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(step, Pipeline):
        for sub_name, sub in step.steps:
            yield from _leaf_steps(sub, f"{name}.{sub_name}" if name else sub_name)
    elif isinstance(step, ColumnTransformer):
        for sub_name, sub, _cols in getattr(step, "transformers_", step.transformers):
            if not isinstance(sub, str):  # "drop" / "passthrough"
                yield from _leaf_steps(sub, f"{name}.{sub_name}")
    elif isinstance(step, FeatureUnion):
        for sub_name, sub in step.transformer_list:
            yield from _leaf_steps(sub, f"{name}.{sub_name}")
    else:
        yield name, step


def _check_convertible(pipeline: Any) -> tuple[str, Any]:
    """Name the first step skl2onnx has no converter for; return the final (name, estimator)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    steps = list(_leaf_steps(pipeline, ""))
    for name, step in steps:
        if type(step) not in sklearn_operator_name_map:
            raise ConversionError(
                f"cannot convert pipeline step {name!r} ({_describe(step)}): no ONNX converter "
                "is registered for it in skl2onnx"
            )
    name, final = steps[-1]
    if not hasattr(final, "predict_proba"):
        raise ConversionError(
            f"cannot convert pipeline step {name!r} ({_describe(final)}): it has no "
            "predict_proba, so the ONNX model would have no probabilities output"
        )
    return name, final


def _initial_types(config: ModelConfig) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types: list[tuple[str, Any]] = [
        (name, FloatTensorType([None, 1])) for name in config.data.numeric_features
    ]
    types += [(name, StringTensorType([None, 1])) for name in config.data.categorical_features]
    return types


def convert_to_onnx(pipeline: Any, config: ModelConfig) -> bytes:
    """Convert a fitted pipeline (from :func:`~airflow_mlops.core.training.build_pipeline`).

    :param pipeline: the fitted scikit-learn pipeline.
    :param config: the model config; its features define the ONNX inputs, ``onnx.target_opset``
        the main opset. LightGBM goes through onnxmltools' converter registered with skl2onnx
        (skl2onnx's own tensor types); that path converts and keeps parity at opsets 15-21.
    :returns: the serialized ONNX model.
    :raises ConversionError: a step has no converter, the model has no probabilities, or
        skl2onnx failed (the message names the estimator and the cause).
    """
    from skl2onnx import convert_sklearn

    _register_converters()
    pipeline = _hist_gradient_boosting_with_float32_thresholds(pipeline)
    final_name, final = _check_convertible(pipeline)
    opset = config.onnx.target_opset
    try:
        model = convert_sklearn(
            pipeline,
            name=config.name,
            initial_types=_initial_types(config),
            target_opset={"": opset, "ai.onnx.ml": _ML_OPSET},
            options={id(final): {"zipmap": False}},
        )
    except Exception as exc:
        # skl2onnx errors may embed whole attribute dumps (megabytes for big forests).
        detail = str(exc)
        if len(detail) > 500:
            detail = detail[:500] + "..."
        raise ConversionError(
            f"cannot convert pipeline (final step {final_name!r}, {_describe(final)}) "
            f"with opset {opset}: {type(exc).__name__}: {detail}"
        ) from exc
    onnx_bytes = bytes(model.SerializeToString())
    _check_runtime_loads(onnx_bytes, final_name, final)
    return onnx_bytes


def _check_runtime_loads(onnx_bytes: bytes, final_name: str, final: Any) -> None:
    """Refuse a graph ONNX Runtime cannot load: skl2onnx may emit ops (``com.microsoft:Solve``
    for Gaussian processes) that this ONNX Runtime does not implement, which would otherwise
    surface as a raw runtime error at the parity check, and again on every retry."""
    import onnxruntime as ort

    from airflow_mlops.core.model.session import load_session

    try:
        load_session(onnx_bytes, threads=1)
    except MemoryError:
        raise
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(
            f"the ONNX model of pipeline step {final_name!r} ({_describe(final)}) does not load "
            f"in ONNX Runtime {ort.__version__}: {detail}; pick an estimator whose converted "
            "graph ONNX Runtime implements"
        ) from exc
