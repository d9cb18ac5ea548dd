"""The ONNX input contract, pinned once for every caller that builds a feed.

Each caller refuses a bad value its own way (batch scoring rejects the row with a reason, the
server answers 4xx, a frame raises); the rules (dtype, missing marker, float32 range) are one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_mlops.core.model import feed as contract
from airflow_mlops.core.model.feed import (
    MISSING_CATEGORY,
    as_inputs,
    categorical_from_arrow,
    category_strings,
    check_row_feed,
    not_float32,
    numeric_from_arrow,
    onnx_feed,
    split_inputs,
    to_float32,
)
from airflow_mlops.core.model.folder import ModelMeta
from airflow_mlops.core.scoring.arrow_feed import Feed as scoring_feed_type
from airflow_mlops.core.scoring.arrow_feed import build_feed as scoring_feed
from airflow_mlops.serving import protocol
from airflow_mlops.serving.feed import Feed as serving_feed_type
from airflow_mlops.serving.feed import build_feed as serving_feed
from airflow_mlops.serving.protocol import ProtocolError

META = ModelMeta(
    name="m",
    version="1",
    numeric_features=("x",),
    categorical_features=("c",),
    classes=(0, 1),
    input_types={"x": "double", "c": "string"},
)


def _serving(records: list[dict]) -> serving_feed_type:
    return serving_feed(protocol.mlflow_columns({"dataframe_records": records}, 100), META)


def _scoring(batch: pa.RecordBatch) -> scoring_feed_type:
    return scoring_feed(batch, ["x"], ["c"], [])


def test_feed_builds_the_contract():
    frame = pd.DataFrame(
        {
            "a": [1, 2, 3],
            "b": pd.array([1.5, None, 2.0], dtype="Float64"),
            "c": ["x", None, np.nan],
            "d": [1, 2, 3],
        }
    )
    feed = onnx_feed(frame, ["a", "b"], ["c", "d"])
    assert feed["a"].dtype == np.float32 and feed["a"].shape == (3, 1)
    assert np.isnan(feed["b"][1, 0])
    assert feed["c"][:, 0].tolist() == ["x", "", ""]
    assert feed["d"][:, 0].tolist() == ["1", "2", "3"]
    assert category_strings(pd.Series(["a", None])).tolist() == ["a", ""]
    with pytest.raises(ValueError, match=r"lacks feature column\(s\) \['zz'\]"):
        onnx_feed(frame, ["zz"], [])


def test_a_missing_category_is_the_empty_string_for_every_caller():
    assert MISSING_CATEGORY == ""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", None, pd.NA]})
    assert onnx_feed(frame, ["x"], ["c"])["c"][:, 0].tolist() == ["a", "", ""]
    batch = pa.RecordBatch.from_pydict({"x": [1.0, 2.0, 3.0], "c": ["a", None, None]})
    assert _scoring(batch).inputs["c"][:, 0].tolist() == ["a", "", ""]
    dictionary = pa.RecordBatch.from_pydict(
        {"x": [1.0, 2.0], "c": pa.array(["a", None]).dictionary_encode()}
    )
    assert _scoring(dictionary).inputs["c"][:, 0].tolist() == ["a", ""]
    served = _serving([{"x": 1.0, "c": "a"}, {"x": 2.0, "c": None}])
    assert served.inputs["c"][:, 0].tolist() == ["a", ""]
    assert check_row_feed(["x"], ["c"])["c"].tolist() == [[""]]


def test_every_caller_feeds_the_same_dtypes_and_shapes():
    frame = pd.DataFrame({"x": [1, 2], "c": ["a", "b"]})
    batch = pa.RecordBatch.from_pydict({"x": [1, 2], "c": ["a", "b"]})
    served = _serving([{"x": 1, "c": "a"}, {"x": 2, "c": "b"}])
    for feed in (onnx_feed(frame, ["x"], ["c"]), _scoring(batch).inputs, served.inputs):
        assert list(feed) == ["x", "c"]
        assert feed["x"].dtype == np.float32 and feed["x"].shape == (2, 1)
        assert feed["c"].dtype == object and feed["c"].shape == (2, 1)
        assert feed["x"][:, 0].tolist() == [1.0, 2.0] and feed["c"][:, 0].tolist() == ["a", "b"]
    checked = check_row_feed(["x"], ["c"], rows=2)
    assert checked["x"].dtype == np.float32 and np.isnan(checked["x"]).all()


def test_a_numeric_string_is_refused_the_way_each_caller_refuses():
    # Batch scoring (CSV text): the row is rejected with a reason, the others score.
    csv = pa.RecordBatch.from_pydict({"x": ["1.5", "abc", None], "c": ["a", "b", "c"]})
    feed = _scoring(csv)
    assert feed.reasons is not None
    assert feed.reasons.tolist() == ["", "non-numeric value in `x`", ""]
    assert feed.inputs["x"][0, 0] == np.float32(1.5) and np.isnan(feed.inputs["x"][2, 0])
    # The server: a 4xx naming the column and the row; "1" is not coerced to 1.
    with pytest.raises(ProtocolError, match=r"column 'x' row 1: expected a number") as info:
        _serving([{"x": 1.0, "c": "a"}, {"x": "1", "c": "b"}])
    assert info.value.reason == "wrong_type"
    # A frame: text in a numeric column is the caller's bug, and raises.
    with pytest.raises(ValueError):
        onnx_feed(pd.DataFrame({"x": ["abc"], "c": ["a"]}), ["x"], ["c"])
    # Arrow, the shared rule: which rows did not parse.
    column = numeric_from_arrow(pa.array(["2", "nan", "", "x"]))
    assert column.unparsable is not None and column.unparsable.tolist() == [0, 0, 0, 1]


def test_float32_overflow_is_refused():
    big = 1e39  # finite in float64, +inf once cast to the model's float32
    assert not_float32(to_float32([big, -big, 1.0, np.nan])).tolist() == [1, 1, 0, 0]
    assert not not_float32(to_float32([float(np.finfo(np.float32).max)])).any()
    batch = pa.RecordBatch.from_pydict({"x": [1.0, big, float("inf")], "c": ["a", "b", "c"]})
    reasons = _scoring(batch).reasons
    assert reasons is not None
    assert reasons.tolist() == [
        "",
        "non-finite or out-of-float32-range value in `x`",
        "non-finite or out-of-float32-range value in `x`",
    ]
    csv = pa.RecordBatch.from_pydict({"x": ["1e39", "2"], "c": ["a", "b"]})
    assert _scoring(csv).reasons.tolist() == [  # type: ignore[union-attr]
        "non-finite or out-of-float32-range value in `x`",
        "",
    ]
    with pytest.raises(ProtocolError, match=r"column 'x' row 1: 1e\+39 is beyond the float32"):
        _serving([{"x": 1.0, "c": "a"}, {"x": big, "c": "b"}])
    with pytest.raises(ProtocolError, match=r"column 'x' row 0: infinite values") as info:
        _serving([{"x": float("inf"), "c": "a"}])
    assert info.value.reason == "not_finite"
    # Integers cannot leave the float32 range: no mask is computed for them.
    assert numeric_from_arrow(pa.array([1, 2**62])).not_float32 is None


def test_arrow_categories_of_other_types_become_strings():
    assert categorical_from_arrow(pa.array([1, None, 3])).tolist() == ["1", "", "3"]
    assert categorical_from_arrow(pa.array([True, False])).tolist() == ["true", "false"]
    assert category_strings([1, None, "a"]).tolist() == ["1", "", "a"]


def test_inputs_are_named_after_their_columns():
    feed = as_inputs({"a": np.zeros(3, np.float32)}, {"b": np.array(["x"] * 3, dtype=object)})
    assert {k: v.shape for k, v in feed.items()} == {"a": (3, 1), "b": (3, 1)}

    class Input:
        def __init__(self, name: str, type: str) -> None:
            self.name, self.type = name, type

    inputs = [
        Input("a", "tensor(float)"),
        Input("b", "tensor(string)"),
        Input("c", "tensor(float)"),
    ]
    assert split_inputs(inputs) == (["a", "c"], ["b"])


def _module_level_imports(path: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["feed", "session", "folder"])
def test_contract_modules_stand_alone(module):
    """The registered pyfunc loads feed.py and session.py from a version's artifacts, and the
    serving image (no pandas, sklearn, mlflow) imports all three: numpy and the standard
    library only at module level. feed.py and session.py travel alone, so nothing from this
    package; folder.py ships only inside the package and may use its stdlib-only error base."""
    path = Path(contract.__file__).with_name(f"{module}.py")
    external = _module_level_imports(str(path)) - set(sys.stdlib_module_names) - {"__future__"}
    allowed = {"numpy", "airflow_mlops"} if module == "folder" else {"numpy"}
    assert external <= allowed, external
    if module == "folder":
        ours = {m for m in _module_names(ast.parse(path.read_text())) if "airflow_mlops" in m}
        assert ours == {"airflow_mlops.exceptions"}, ours


def _module_names(tree: ast.Module) -> set[str]:
    return {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
