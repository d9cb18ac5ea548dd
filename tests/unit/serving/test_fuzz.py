"""Property-based fuzzing of both protocols against the real ASGI app: a client mistake is a 4xx
with a message, never a 5xx, and the server still answers afterwards.

Requests are built from the served model's own signature and then damaged: wrong types in
``shape``, ragged ``data``, duplicate names, values out of range for float32 or for the declared
datatype, missing and extra keys. Each protocol gets at least 2,000 generated requests.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from airflow_mlops.serving.app import create_app
from airflow_mlops.serving.config import ServingConfig
from airflow_mlops.serving.metrics import metric_sum, parse_prometheus

from .conftest import CATEGORICAL, NUMERIC

FEATURES = NUMERIC + CATEGORICAL
EXAMPLES = 2_000
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any JSON value, small: what a confused or hostile client may put anywhere.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e308, -1e308, 3.5e38, 1e39, 2.5, -0.0, 255, 256, 300, -1])
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
good_numbers = st.one_of(st.none(), st.integers(0, 90), st.floats(-1e6, 1e6))
good_strings = st.one_of(st.none(), st.sampled_from(["paris", "rome", "oslo", "free", "pro"]))
names = st.sampled_from(FEATURES) | st.text(max_size=6)
DATATYPES = ["FP32", "FP64", "FP16", "INT64", "INT32", "INT8", "UINT8", "UINT64", "BYTES", "BOOL"]


def _cell(name: str) -> st.SearchStrategy[Any]:
    good = good_strings if name in CATEGORICAL else good_numbers
    return st.one_of(good, good, good, json_values)


@st.composite
def v2_tensor(draw: st.DrawFn, name: str, rows: int) -> dict[str, Any]:
    data = draw(
        st.one_of(
            st.lists(_cell(name), min_size=rows, max_size=rows),
            st.lists(st.lists(_cell(name), min_size=1, max_size=2), min_size=1, max_size=rows),
            json_values,
        )
    )
    shape = draw(
        st.one_of(
            st.just([rows]),
            st.just([rows, 1]),
            st.lists(
                st.one_of(st.integers(-2, 4), st.floats(0, 3), st.text(max_size=2), json_values),
                max_size=3,
            ),
            json_values,
        )
    )
    tensor: dict[str, Any] = {
        "name": name,
        "shape": shape,
        "datatype": draw(
            st.sampled_from(["BYTES"] if name in CATEGORICAL else ["FP64", "INT64"])
            | st.sampled_from(DATATYPES)
            | st.text(max_size=4)
        ),
        "data": data,
    }
    for key in draw(st.sets(st.sampled_from(["name", "shape", "datatype", "data"]), max_size=1)):
        tensor.pop(key)
    return tensor


def _valid_cell(name: str) -> st.SearchStrategy[Any]:
    if name in CATEGORICAL:
        return good_strings
    return st.integers(0, 40) if name == "visits" else good_numbers


@st.composite
def v2_valid_tensor(draw: st.DrawFn, name: str, rows: int) -> dict[str, Any]:
    cells = _valid_cell(name)
    return {
        "name": name,
        "shape": draw(st.sampled_from([[rows], [rows, 1]])),
        "datatype": "BYTES" if name in CATEGORICAL else draw(st.sampled_from(["FP64", "FP32"])),
        "data": draw(st.lists(cells, min_size=rows, max_size=rows)),
    }


@st.composite
def v2_request(draw: st.DrawFn) -> Any:
    rows = draw(st.integers(1, 3))
    # A third of the requests start from every feature, well formed, then get at most one
    # damaged tensor: the fuzz must reach the model, not only the first check.
    if draw(st.integers(0, 2)) == 0:
        tensors = [draw(v2_valid_tensor(name, rows)) for name in FEATURES]
        if draw(st.booleans()):
            at = draw(st.integers(0, len(tensors) - 1))
            tensors[at] = draw(v2_tensor(tensors[at]["name"], rows))
        return {"inputs": tensors}
    tensors = [draw(v2_tensor(name, rows)) for name in draw(st.lists(names, max_size=7))]
    doc: dict[str, Any] = {"inputs": tensors}
    if draw(st.booleans()):
        doc["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries({"name": st.sampled_from(["label", "probabilities", "x"])})
                | json_values,
                max_size=2,
            )
        )
    if draw(st.booleans()):
        doc["id"] = draw(json_values)
    return draw(st.one_of(st.just(doc), st.just(doc), json_values))


@st.composite
def mlflow_request(draw: st.DrawFn) -> Any:
    rows = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["split", "records", "instances", "inputs", "raw"]))
    if draw(st.integers(0, 2)) == 0:
        # Every feature, well formed, at most one damaged cell: the fuzz must reach the model.
        records = [{c: draw(_valid_cell(c)) for c in FEATURES} for _ in range(rows)]
        if draw(st.booleans()):
            records[0][draw(st.sampled_from(FEATURES))] = draw(json_values)
        return {"dataframe_records": records}
    columns = draw(st.lists(names, max_size=7))
    if kind == "split":
        data = draw(
            st.lists(
                st.lists(json_values | good_numbers, min_size=len(columns), max_size=len(columns))
                | json_values,
                min_size=rows,
                max_size=rows,
            )
        )
        doc: Any = {"dataframe_split": {"columns": columns, "data": data}}
        if draw(st.booleans()):
            doc["dataframe_split"]["index"] = draw(json_values)
    elif kind in ("records", "instances"):
        record = st.fixed_dictionaries({c: _cell(c) for c in columns}) | json_values
        key = "dataframe_records" if kind == "records" else "instances"
        doc = {key: draw(st.lists(record, min_size=1, max_size=rows))}
    elif kind == "inputs":
        doc = {
            "inputs": {
                c: draw(st.lists(_cell(c), min_size=rows, max_size=rows) | json_values)
                for c in columns
            }
        }
    else:
        doc = draw(json_values)
    if isinstance(doc, dict) and draw(st.booleans()):
        doc["params"] = draw(json_values)
    return doc


@pytest.fixture(scope="module")
def client(model_folders):
    raw = {
        "model": "toy",
        "versions": {v: str(p) for v, p in model_folders.items()},
        "routes": {"1": 1},
        "capture": {"dir": ""},
    }
    with TestClient(create_app(ServingConfig.from_dict(raw), seed=0)) as test_client:
        yield test_client


STATUSES: dict[str, Counter] = {"v2": Counter(), "mlflow": Counter()}


def _check(resp, field: str) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        body = resp.json()
        message = body.get(field)
        assert isinstance(message, str) and message, body
        assert "Traceback" not in message


@FUZZ
@given(doc=v2_request())
def test_v2_fuzz_never_answers_5xx(client, doc):
    resp = client.post(
        "/v2/models/toy/infer",
        content=json.dumps(doc),
        headers={"content-type": "application/json"},
    )
    STATUSES["v2"][resp.status_code] += 1
    _check(resp, "error")


@FUZZ
@given(doc=mlflow_request())
def test_mlflow_fuzz_never_answers_5xx(client, doc):
    resp = client.post(
        "/invocations", content=json.dumps(doc), headers={"content-type": "application/json"}
    )
    STATUSES["mlflow"][resp.status_code] += 1
    _check(resp, "message")


def test_after_the_fuzz_the_server_is_healthy_and_counted_no_internal_error(client):
    """Runs after both fuzz tests (file order): every request was answered and none was an
    internal error in the server's own metrics (a canary's 5xx gate reads them)."""
    for proto, seen in STATUSES.items():
        assert sum(seen.values()) >= EXAMPLES, (proto, seen)
        assert not [s for s in seen if s >= 500], (proto, seen)
        # Both kinds of answer were generated: the fuzz reached the model, and refused input.
        assert seen[200] > 0 and sum(n for s, n in seen.items() if 400 <= s < 500) > 0, seen
    assert client.get("/health").status_code == 200
    families = parse_prometheus(client.get("/metrics").text)
    assert metric_sum(families, "mlops_request_errors_total", reason="internal") == 0
