"""The ``onnx`` section: conversion and parity tolerances."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OnnxSpec"]


@dataclass(frozen=True)
class OnnxSpec:
    """Conversion and parity tolerances.

    :param target_opset: ONNX opset for the main domain.
    :param max_abs_diff: largest allowed absolute probability difference, native vs ONNX.
    :param max_label_disagreements: largest allowed number of holdout rows whose predicted
        label differs between the native model and ONNX Runtime.
    """

    target_opset: int = 15
    max_abs_diff: float = 1e-4
    max_label_disagreements: int = 0
