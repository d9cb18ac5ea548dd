"""A run of batch scoring loses no row: distinct outputs per input, a summary checked on disk."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.scoring.partition import score_partition
from airflow_mlops.core.scoring.runs import list_partitions, summarize
from airflow_mlops.core.scoring.types import ScoringError, partition_target


@pytest.fixture(scope="module")
def model(onnx_model):
    from airflow_mlops.core.model.reference import resolve_model

    return resolve_model(onnx_model, name="demo_churn")


def _frame(rows: int, seed: int = 1):
    from airflow_mlops.devstack.demo_data import generate

    return generate(rows, seed=seed)


def _parquet(rows: int, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": list(range(rows))}), path)
    return str(path)


def _result(input_uri: str, output_uri: str, rows_out: int, **extra) -> dict:
    return {
        "input_uri": input_uri,
        "output_uri": output_uri,
        "rejects_uri": None,
        "rows_in": rows_out,
        "rows_out": rows_out,
        "rows_rejected": 0,
        "model_name": "m",
        "model_version": "3",
        "rows_per_second": 1.0,
        **extra,
    }


def test_two_inputs_with_one_stem_are_refused_before_scoring_naming_both(tmp_path):
    day = tmp_path / "incoming" / "date=2024-05-01"
    _parquet(10, day / "part-x.parquet")
    _frame(10).to_csv(day / "part-y.csv", index=False)
    _frame(10).to_csv(day / "part-x.csv", index=False)
    with pytest.raises(ScoringError) as err:
        list_partitions(str(tmp_path / "incoming"), "2024-05-01")
    message = str(err.value)
    assert str(day / "part-x.csv") in message and str(day / "part-x.parquet") in message
    assert "part-y" not in message


def test_names_made_equal_by_sanitizing_are_refused_too(tmp_path):
    day = tmp_path / "in" / "date=2024-05-01"
    _parquet(1, day / "a b.parquet")
    _parquet(1, day / "a_b.parquet")
    with pytest.raises(ScoringError, match=r"a b\.parquet.*a_b\.parquet"):
        list_partitions(str(tmp_path / "in"), "2024-05-01")


def test_summary_fails_when_an_output_holds_other_rows_than_its_result(tmp_path):
    out = _parquet(1_000, tmp_path / "out" / "part-x.parquet")
    with pytest.raises(ScoringError, match=r"part-x.*holds 1000 rows.*rows_out 1100"):
        summarize([_result("in/part-x.csv", out, 1_100)], ["in/part-x.csv"])
    missing = str(tmp_path / "out" / "gone.parquet")
    with pytest.raises(ScoringError, match=r"gone.*cannot read"):
        summarize([_result("in/gone.csv", missing, 5)])


def test_summary_checks_the_rejects_file_too(tmp_path):
    out = _parquet(8, tmp_path / "o.parquet")
    rejects = _parquet(1, tmp_path / "_rejects" / "o.parquet")
    result = _result("in/p", out, 8, rejects_uri=rejects, rows_rejected=2, rows_in=10)
    with pytest.raises(ScoringError, match=r"p: rejects .*holds 1 rows.*rows_rejected 2"):
        summarize([result])


def test_summary_fails_when_two_partitions_wrote_one_output(tmp_path):
    out = _parquet(10, tmp_path / "o.parquet")
    results = [_result("in/part-x.csv", out, 10), _result("in/part-x.parquet", out, 10)]
    with pytest.raises(ScoringError, match=r"in/part-x.csv.*in/part-x.parquet.*same output"):
        summarize(results, ["in/part-x.csv", "in/part-x.parquet"])


def test_colliding_partitions_scored_anyway_fail_the_summary(model, tmp_path):
    """The reviewer's case: each mapped task scores its file, the second overwrites the first."""
    day = tmp_path / "in" / "date=2024-05-01"
    day.mkdir(parents=True)
    _frame(1_200, seed=1).to_csv(day / "part-x.csv", index=False)
    pq.write_table(
        pa.Table.from_pandas(_frame(1_000, seed=2), preserve_index=False), day / "part-x.parquet"
    )
    template = str(tmp_path / "out" / "date={date}" / "{partition}.parquet")
    results = []
    for src in (day / "part-x.csv", day / "part-x.parquet"):
        name, _, output = partition_target(str(src), template)
        results.append(
            score_partition(
                str(src), output, model, key_columns=("customer_id",), partition=name
            ).to_dict()
        )
    assert results[0]["output_uri"] == results[1]["output_uri"]
    with pytest.raises(ScoringError, match=r"same output"):
        summarize(results, [str(day / "part-x.csv"), str(day / "part-x.parquet")])


def test_summary_of_a_clean_run_passes_the_disk_check(model, tmp_path):
    src = tmp_path / "in" / "p.parquet"
    src.parent.mkdir()
    frame = _frame(900)
    frame.loc[3, "monthly_charges"] = float("inf")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src)
    result = score_partition(
        str(src), str(tmp_path / "o.parquet"), model, key_columns=("customer_id",)
    )
    summary = summarize([result.to_dict()], [str(src)])
    assert (summary["rows_out"], summary["rows_rejected"]) == (899, 1)
