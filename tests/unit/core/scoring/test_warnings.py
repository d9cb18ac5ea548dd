"""Values that are rejected with a reason make no warning noise in the task log."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.scoring.partition import score_partition


@pytest.fixture(scope="module")
def model(onnx_model):
    from airflow_mlops.core.model.reference import resolve_model

    return resolve_model(onnx_model, name="demo_churn")


def _score(model, src, out, **kw):
    return score_partition(str(src), str(out), model, key_columns=("customer_id",), **kw)


def _frame(rows: int):
    from airflow_mlops.devstack.demo_data import generate

    return generate(rows, seed=1).fillna({"total_charges": 1.0})


def test_out_of_range_values_are_rejected_without_an_overflow_warning(model, tmp_path):
    frame = _frame(600)
    frame["total_charges"] = frame["total_charges"].astype(object)
    frame.loc[4, "total_charges"] = "1e39"  # beyond float32: rejected with its reason
    frame.loc[5, "total_charges"] = "-3.5e38"
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # raised in the reader thread too
        result = _score(model, path, tmp_path / "o.parquet", batch_rows=250)
    assert (result.rows_out, result.rows_rejected) == (598, 2)
    rejects = pq.read_table(result.rejects_uri).to_pandas()
    assert rejects["total_charges"].tolist() == ["1e39", "-3.5e38"]
    assert (
        rejects["reject_reason"].str.contains("out-of-float32-range value in `total_charges`").all()
    )


def test_decimal_beyond_float32_is_rejected_without_an_overflow_warning():
    import decimal

    from airflow_mlops.core.scoring.arrow_feed import build_feed

    column = pa.array([decimal.Decimal("1e39"), decimal.Decimal("2")], pa.decimal256(40, 0))
    batch = pa.RecordBatch.from_arrays([column], names=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        feed = build_feed(batch, ["x"], [], [])
    assert feed.reasons is not None and list(feed.reasons != "") == [True, False]
