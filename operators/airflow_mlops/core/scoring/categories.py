"""The categories a model was trained on, read from its ONNX graph, to count unseen values.

skl2onnx converts the training pipeline's ``OneHotEncoder(handle_unknown="ignore")`` into one
``ai.onnx.ml.OneHotEncoder`` node per categorical column, its trained categories in the
``cats_strings`` attribute (``zeros=1``: an unseen value is all-zero one-hot). The node's input
is one column picked out of the categorical inputs: ``Concat`` of the ``[N, 1]`` string inputs,
then ``Gather(axis=1)`` (or ``ArrayFeatureExtractor``) with a constant index, possibly through
``Identity`` nodes (our ``FillMissingCategories`` step converts to one). That chain is followed
back to the graph input named as the column.

A column whose categories cannot be read that way (another encoder, a graph this reader does
not follow, no ``onnx`` package as in the serving image) is ``None``: not available, never 0.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["known_categories"]


def known_categories(onnx_path: str, columns: Sequence[str]) -> dict[str, frozenset[str] | None]:
    """Per column in ``columns``, the categories the model's one-hot encoder knows, else ``None``.

    Read once per model file in a process (keyed by path, size and modification time): parsing
    a large tree ensemble's graph takes a while, and one process may score many partitions.
    """
    try:
        stat = os.stat(onnx_path)
    except OSError:
        return dict.fromkeys(columns)
    found = _read(onnx_path, stat.st_size, stat.st_mtime_ns)
    return {column: found.get(column) for column in columns}


@functools.lru_cache(maxsize=8)
def _read(onnx_path: str, size: int, mtime_ns: int) -> dict[str, frozenset[str]]:
    try:
        import onnx
    except ImportError:
        log.info("no onnx package here: unseen categories are not counted")
        return {}
    try:
        model = onnx.load(onnx_path, load_external_data=False)
    except Exception as exc:  # the session loaded it; a reader failure only loses the counts
        log.warning("cannot read the categories of %s: %s", onnx_path, exc)
        return {}
    return _Graph(model.graph).categories()


class _Graph:
    """Follows a OneHotEncoder's input back to the graph input it encodes."""

    def __init__(self, graph: Any) -> None:
        self.inputs = {i.name for i in graph.input}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.initializers = {t.name: t for t in graph.initializer}
        self.nodes = list(graph.node)

    def categories(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for node in self.nodes:
            if node.op_type != "OneHotEncoder" or node.domain != "ai.onnx.ml":
                continue
            cats = _attribute(node, "cats_strings")
            columns = self.columns(node.input[0], depth=0)
            if cats is None or columns is None or len(columns) != 1:
                continue
            found.setdefault(columns[0], set()).update(c.decode("utf-8") for c in cats.strings)
        return {column: frozenset(cats) for column, cats in found.items()}

    def columns(self, name: str, depth: int) -> list[str] | None:
        """The graph inputs (``[N, 1]`` each) that make up tensor ``name``'s columns."""
        if name in self.inputs:
            return [name]
        node = self.producer.get(name)
        if node is None or depth > 50:
            return None
        op = node.op_type
        if op == "Identity":
            return self.columns(node.input[0], depth + 1)
        if op == "Concat":
            axis = _attribute(node, "axis")
            if axis is None or axis.i not in (1, -1):
                return None
            out: list[str] = []
            for part in node.input:
                cols = self.columns(part, depth + 1)
                if cols is None:
                    return None
                out += cols
            return out
        if op in ("Gather", "ArrayFeatureExtractor"):
            if op == "Gather":
                axis = _attribute(node, "axis")
                if axis is None or axis.i not in (1, -1):
                    return None
            cols = self.columns(node.input[0], depth + 1)
            picked = self.constant(node.input[1])
            if cols is None or picked is None or any(not 0 <= i < len(cols) for i in picked):
                return None
            return [cols[i] for i in picked]
        return None

    def constant(self, name: str) -> list[int] | None:
        from onnx import numpy_helper

        tensor = self.initializers.get(name)
        if tensor is None:
            node = self.producer.get(name)
            value = _attribute(node, "value") if node is not None else None
            if node is None or node.op_type != "Constant" or value is None:
                return None
            tensor = value.t
        return [int(i) for i in numpy_helper.to_array(tensor).reshape(-1)]


def _attribute(node: Any, name: str) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute
    return None
