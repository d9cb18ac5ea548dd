from __future__ import annotations

import json
import math

import numpy as np
import pytest

from airflow_mlops.serving import protocol
from airflow_mlops.serving.feed import build_feed
from airflow_mlops.serving.models import ModelMeta
from airflow_mlops.serving.protocol import ProtocolError, mlflow_columns, v2_columns

META = ModelMeta.from_dict(
    {
        "name": "toy",
        "version": "1",
        "numeric_features": ["age", "visits"],
        "categorical_features": ["city"],
        "classes": [0, 1],
        "input_types": {"age": "double", "visits": "long", "city": "string"},
    }
)
ROWS = [{"age": 30.5, "visits": 3, "city": "oslo"}, {"age": None, "visits": 4, "city": None}]


def feed_of(doc: dict, **kw: object):
    return build_feed(mlflow_columns(doc, 100), META, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "doc",
    [
        {"dataframe_records": ROWS},
        {
            "dataframe_split": {
                "columns": ["age", "visits", "city"],
                "data": [[30.5, 3, "oslo"], [None, 4, None]],
            }
        },
        {"instances": ROWS},
        {"inputs": {"age": [30.5, None], "visits": [3, 4], "city": ["oslo", None]}},
        {"inputs": ROWS, "params": {"ignored": True}},
    ],
    ids=["records", "split", "instances", "inputs-columns", "inputs-records"],
)
def test_every_mlflow_format_gives_the_same_feed(doc):
    feed = feed_of(doc)
    assert feed.rows == 2
    assert feed.inputs["age"].dtype == np.float32 and feed.inputs["age"].shape == (2, 1)
    assert feed.inputs["age"][0, 0] == np.float32(30.5) and math.isnan(feed.inputs["age"][1, 0])
    assert feed.inputs["visits"].ravel().tolist() == [3.0, 4.0]
    # Missing categories are fed as "" (the ONNX contract).
    assert feed.inputs["city"].ravel().tolist() == ["oslo", ""]
    assert feed.categorical.tolist() == [["oslo", ""]]


def test_single_row_inputs_as_scalars():
    assert feed_of({"inputs": {"age": 1.0, "visits": 2, "city": "rome"}}).rows == 1


@pytest.mark.parametrize(
    ("doc", "status", "needle"),
    [
        ({"records": ROWS}, 400, "exactly one of the keys"),
        ({"dataframe_records": ROWS, "instances": ROWS}, 400, "exactly one of the keys"),
        ([1, 2], 400, "got a list"),
        ({"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}}, 400, "data[0]"),
        ({"dataframe_records": [{"age": 1, "visits": 1}]}, 400, "missing column(s) ['city']"),
        (
            {"dataframe_records": [{"agee": 1, "visits": 1, "city": "a"}]},
            400,
            "unexpected column(s) ['agee']",
        ),
        (
            {"dataframe_records": [{"age": "12", "visits": 1, "city": "a"}]},
            400,
            "column 'age' row 0: expected a number (or null), got str '12'",
        ),
        ({"dataframe_records": [{"age": True, "visits": 1, "city": "a"}]}, 400, "got bool"),
        (
            {"dataframe_records": [{"age": 1, "visits": 1, "city": 7}]},
            400,
            "column 'city' row 0: expected a string (or null), got int 7",
        ),
        (
            {"dataframe_records": [{"age": 1, "visits": None, "city": "a"}]},
            400,
            "column 'visits' row 0: null/NaN is not allowed in an integer (long) column",
        ),
        (
            {"dataframe_records": [{"age": 1, "visits": 1.5, "city": "a"}]},
            400,
            "column 'visits' row 0: expected an integer",
        ),
        ({"dataframe_records": [{"age": [1], "visits": 1, "city": "a"}]}, 400, "got list"),
        ({"dataframe_records": ROWS * 60}, 413, "too many rows: 120 (limit 100)"),
        ({"dataframe_records": []}, 400, "no rows"),
        (
            {"dataframe_records": [ROWS[0], {"visits": 1, "city": "a"}]},
            400,
            "column 'age' row 1: expected a number (or null), got absent",
        ),
    ],
)
def test_bad_requests_name_the_problem(doc, status, needle):
    with pytest.raises(ProtocolError) as info:
        feed_of(doc)
    assert info.value.status == status
    assert needle in info.value.message


def test_infinity_is_refused_but_nan_is_missing():
    doc = {
        "dataframe_split": {
            "columns": ["age", "visits", "city"],
            "data": [[float("nan"), 1, "a"], [float("inf"), 1, "a"]],
        }
    }
    with pytest.raises(ProtocolError, match="column 'age' row 1: infinite"):
        feed_of(doc)


def test_extra_columns_ignored_or_rejected():
    rows = [{**r, "customer_id": 7} for r in ROWS]
    assert feed_of({"dataframe_records": rows}).rows == 2
    with pytest.raises(ProtocolError, match=r"unexpected column\(s\) \['customer_id'\]"):
        feed_of({"dataframe_records": rows}, extra_columns="reject")


def test_malformed_json_is_a_400():
    with pytest.raises(ProtocolError, match="malformed JSON") as info:
        protocol.loads(b'{"dataframe_records": [')
    assert info.value.status == 400


def v2_doc(**over: object) -> dict:
    inputs = [
        {"name": "age", "shape": [2, 1], "datatype": "FP64", "data": [30.5, None]},
        {"name": "visits", "shape": [2], "datatype": "INT64", "data": [3, 4]},
        {"name": "city", "shape": [2, 1], "datatype": "BYTES", "data": [["oslo"], [None]]},
    ]
    return {"id": "req-1", "inputs": inputs, **over}


def test_v2_request_parses_to_the_same_feed():
    batch = v2_columns(v2_doc(), META, 100)
    assert batch.request_id == "req-1"
    feed = build_feed(batch, META)
    assert feed.inputs["city"].ravel().tolist() == ["oslo", ""]
    assert feed.inputs["visits"].ravel().tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["inputs"][0].update(datatype="BYTES"), "numeric column"),
        (lambda d: d["inputs"][2].update(datatype="FP32"), "categorical column; use BYTES"),
        (lambda d: d["inputs"][0].update(shape=[3]), "shape [3] must be [N] or [N, 1]"),
        (lambda d: d["inputs"][0].update(shape=[1, 2]), "must be [N] or [N, 1]"),
        (lambda d: d["inputs"][1].update(shape=[1], data=[3]), "1 rows, the first input has 2"),
        (lambda d: d.update(outputs=[{"name": "proba"}]), "unknown output(s) ['proba']"),
        (lambda d: d.update(inputs=[]), "'inputs' is empty"),
        # Ambiguity and impossible values are refused, not guessed.
        (lambda d: d["inputs"].append(dict(d["inputs"][0])), "input 'age' is given twice"),
        (lambda d: d["inputs"][0].update(shape=[2.5, 1]), "shape [2.5, 1] must be [N]"),
        (lambda d: d["inputs"][0].update(shape=["2", 1]), "(whole numbers)"),
        (lambda d: d["inputs"][0].update(shape=[None]), "shape [None] must be"),
        (lambda d: d["inputs"][0].update(shape=[{"n": 2}]), "shape [{'n': 2}] must be"),
        (lambda d: d["inputs"][0].update(shape=[True, 1]), "must be [N] or [N, 1]"),
        (lambda d: d["inputs"][0].update(data=[[30.5], 2.0]), "not a mix"),
        (lambda d: d["inputs"][0].update(data=[[[30.5]], [2.0]]), "not a mix"),
        (
            lambda d: d["inputs"][1].update(datatype="UINT8", data=[3, 300]),
            "input 'visits' row 1: 300 is not a UINT8 value (whole numbers 0..255)",
        ),
        (
            lambda d: d["inputs"][1].update(datatype="INT64", data=[3, 2.5]),
            "2.5 is not a INT64 value",
        ),
        (
            lambda d: d["inputs"][0].update(datatype="FP32", data=[1e39, 1.0]),
            "input 'age' row 0: 1e+39 is out of range for FP32",
        ),
    ],
)
def test_v2_bad_requests(mutate, needle):
    doc = v2_doc()
    mutate(doc)
    with pytest.raises(ProtocolError) as info:
        v2_columns(doc, META, 100)
    assert needle in info.value.message


def test_mlflow_response_matches_pyfunc_records():
    labels = np.array([1, 0])
    proba = np.array([[0.25, 0.75], [0.9, 0.1]], dtype=np.float32)
    doc = json.loads(protocol.mlflow_response(labels, proba, [0, 1]))
    assert doc == {
        "predictions": [
            {"label": 1, "probability_0": 0.25, "probability_1": 0.75},
            {
                "label": 0,
                "probability_0": float(np.float32(0.9)),
                "probability_1": float(np.float32(0.1)),
            },
        ]
    }


def test_v2_response_and_requested_outputs():
    batch = v2_columns(v2_doc(outputs=[{"name": "probabilities"}]), META, 100)
    doc = json.loads(
        protocol.v2_response(
            "toy", "3", batch, np.array([1, 0]), np.array([[0.5, 0.5], [1.0, 0.0]]), "long"
        )
    )
    assert doc["model_version"] == "3" and doc["id"] == "req-1"
    assert doc["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 2], "data": [0.5, 0.5, 1.0, 0.0]}
    ]


def test_stdlib_json_fallback(monkeypatch):
    monkeypatch.setattr(protocol, "_orjson", None)
    assert protocol.loads(b'{"a": [1, null]}') == {"a": [1, None]}
    assert protocol.dumps({"a": [1.5, None]}) == b'{"a":[1.5,null]}'
    with pytest.raises(ProtocolError, match="malformed JSON"):
        protocol.loads(b"{")


def test_duplicate_dataframe_split_columns_are_refused():
    doc = {
        "dataframe_split": {"columns": ["age", "visits", "age", "city"], "data": [[1, 2, 3, "a"]]}
    }
    with pytest.raises(ProtocolError, match=r"dataframe_split.columns: \['age'\] given more"):
        mlflow_columns(doc, 100)


def test_v2_whole_floats_and_nulls_are_integers_enough():
    doc = v2_doc()
    doc["inputs"][1].update(datatype="UINT8", data=[3.0, None])
    assert v2_columns(doc, META, 100).columns["visits"] == [3.0, None]
