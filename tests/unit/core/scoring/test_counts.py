"""Missing values and unseen categories of the scored rows are counted per column."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.scoring.partition import score_partition
from airflow_mlops.core.scoring.runs import summarize

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def model(onnx_model):
    from airflow_mlops.core.model.reference import resolve_model

    return resolve_model(onnx_model, name="demo_churn")


def _frame(rows: int, seed: int = 1):
    """Demo rows with none of the demo's own missing values, so that counts are exact."""
    from airflow_mlops.devstack.demo_data import generate

    frame = generate(rows, seed=seed)
    for col in ("satisfaction_score", "household_income_k", "total_charges"):
        frame[col] = frame[col].fillna(1.0)
    frame["region"] = frame["region"].fillna("north")
    return frame


def _write(frame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)
    return str(path)


def _score(model, src, out, **kw):
    return score_partition(str(src), str(out), model, key_columns=("customer_id",), **kw)


def test_missing_and_unseen_values_are_counted_per_column_over_scored_rows(model, tmp_path):
    frame = _frame(3_000)
    frame.loc[[10, 11, 12], "satisfaction_score"] = np.nan  # scored as missing (imputed)
    frame.loc[13, "age"] = np.nan
    frame.loc[[20, 21], "region"] = None  # the missing category
    frame.loc[22, "contract"] = ""  # also the missing category
    frame.loc[[30, 31, 32, 1_500], "contract"] = "never-seen"  # unseen: all-zero one-hot
    frame.loc[33, "payment_method"] = "bitcoin"
    # A rejected row is not scored: its missing and unseen values are not counted.
    frame.loc[40, ["monthly_charges", "satisfaction_score", "contract"]] = [np.inf, np.nan, "x"]
    src = _write(frame, tmp_path / "in" / "p.parquet")
    result = _score(model, src, tmp_path / "o.parquet", batch_rows=512)
    assert result.rows_rejected == 1
    assert result.missing_values == {"satisfaction_score": 3, "age": 1, "contract": 1, "region": 2}
    assert result.unseen_categories == {"contract": 4, "payment_method": 1}
    assert result.to_dict()["unseen_categories"] == {"contract": 4, "payment_method": 1}

    csv = tmp_path / "in" / "p.csv"
    frame.to_csv(csv, index=False)  # text columns: the same counts
    again = _score(model, csv, tmp_path / "c.parquet", batch_rows=333)
    # CSV has no "" apart from null: the empty contract reads as missing, the same count.
    assert again.missing_values == result.missing_values
    assert again.unseen_categories == result.unseen_categories

    summary = summarize([result.to_dict(), again.to_dict()], [str(src), str(csv)])
    assert summary["missing_values"]["satisfaction_score"] == 6
    assert summary["unseen_categories"] == {"contract": 8, "payment_method": 2}
    assert summary["per_partition"][0]["unseen_categories"] == {"contract": 4, "payment_method": 1}


def test_clean_input_counts_nothing(model, tmp_path):
    result = _score(model, _write(_frame(800), tmp_path / "p.parquet"), tmp_path / "o.parquet")
    assert result.missing_values == {} and result.unseen_categories == {}


def test_unseen_is_not_available_where_the_model_does_not_say_its_categories(
    model, tmp_path, monkeypatch
):
    from airflow_mlops.core.scoring import categories

    monkeypatch.setattr(
        categories, "known_categories", lambda path, columns: dict.fromkeys(columns)
    )
    frame = _frame(500)
    frame.loc[3, "contract"] = "never-seen"
    result = _score(model, _write(frame, tmp_path / "p.parquet"), tmp_path / "o.parquet")
    assert result.unseen_categories == dict.fromkeys(model.categorical_features)
    summary = summarize([result.to_dict()], [result.input_uri])
    assert summary["unseen_categories"] == dict.fromkeys(model.categorical_features)


def test_known_categories_come_from_the_one_hot_encoders_of_our_converted_models(onnx_model):
    from airflow_mlops.core.scoring.categories import known_categories

    known = known_categories(onnx_model, ["contract", "payment_method", "region", "nope"])
    assert known["contract"] == frozenset({"month-to-month", "one-year", "two-year"})
    assert "electronic-check" in known["payment_method"]
    assert known["nope"] is None  # not a categorical input of the model


def test_known_categories_of_a_one_category_column_model(tmp_path):
    from airflow_mlops.core.config.model import load_config
    from airflow_mlops.core.scoring.categories import known_categories
    from airflow_mlops.core.training.convert import convert_to_onnx
    from airflow_mlops.core.training.pipeline import build_pipeline

    config = load_config(REPO / "dags" / "configs" / "demo_churn.yaml")
    data = replace(config.data, numeric_features=("age",), categorical_features=("region",))
    config = replace(
        config,
        data=data,
        training=replace(
            config.training, estimator="sklearn.linear_model.LogisticRegression", params={}
        ),
    )
    from airflow_mlops.devstack.demo_data import generate

    frame = generate(2_000, seed=0)  # with its missing regions: "" is a trained category
    pipeline = build_pipeline(config).fit(frame[["age", "region"]], frame["churned"])
    path = tmp_path / "one.onnx"
    path.write_bytes(convert_to_onnx(pipeline, config))
    assert known_categories(str(path), ["region"]) == {
        "region": frozenset(str(v) for v in frame["region"].fillna("").unique())
    }


def test_a_model_without_one_hot_encoder_has_no_known_categories(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from airflow_mlops.core.scoring.categories import known_categories

    graph = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["out"])],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.STRING, [None, 1])],
        [helper.make_tensor_value_info("out", TensorProto.STRING, [None, 1])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert known_categories(str(path), ["c"]) == {"c": None}
