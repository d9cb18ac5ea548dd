"""Batch scoring invariants on small data with a real ONNX model and ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.config.parse import ConfigError
from airflow_mlops.core.scoring.partition import ScoringOptions, score_partition
from airflow_mlops.core.scoring.runs import list_partitions, summarize
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.scoring.types import ScoringError


@pytest.fixture(scope="module")
def model(onnx_model):
    from airflow_mlops.core.model.reference import resolve_model

    return resolve_model(onnx_model, name="demo_churn")


def _frame(rows: int, seed: int = 1):
    from airflow_mlops.devstack.demo_data import generate

    return generate(rows, seed=seed)


def _write(frame, path: Path, row_group_size: int = 1_000) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2_000)
    return str(path)


def _score(model, src, out, **kw):
    kw.setdefault("key_columns", ["customer_id"])
    return score_partition(str(src), str(out), model, progress_seconds=0.001, **kw)


def test_predictions_match_onnx_runtime_in_memory(model, tmp_path):
    from airflow_mlops.core.model.session import load_session
    from airflow_mlops.core.training.parity import predict_proba_onnx

    frame = _frame(5_000)
    src = _write(frame, tmp_path / "in" / "part-0.parquet")
    result = _score(model, src, tmp_path / "out.parquet", batch_rows=700)
    out = pq.read_table(result.output_uri).to_pandas()
    expected = predict_proba_onnx(
        load_session(model.onnx_path), frame, model.numeric_features, model.categorical_features
    )
    assert result.rows_in == result.rows_out == 5_000 and result.rows_rejected == 0
    assert out["customer_id"].tolist() == frame["customer_id"].tolist()
    assert np.array_equal(out[["probability_0", "probability_1"]].to_numpy(), expected)
    assert set(out["prediction"]) <= {0, 1}
    assert (out["prediction"] == expected.argmax(axis=1)).all()


def test_version_and_name_are_recorded_on_every_row(model, tmp_path):
    src = _write(_frame(1_500), tmp_path / "p.parquet")
    result = _score(model, src, tmp_path / "o.parquet")
    out = pq.read_table(result.output_uri)
    assert set(out.column("model_version").to_pylist()) == {model.version}
    assert set(out.column("model_name").to_pylist()) == {"demo_churn"}
    assert out.column("scored_at").null_count == 0
    assert result.model_version == model.version
    assert result.to_dict()["output_uri"] == str(tmp_path / "o.parquet")


def test_bad_rows_are_rejected_with_reason_and_counts_add_up(model, tmp_path):
    frame = _frame(3_000)
    frame["customer_id"] = frame["customer_id"].astype("Int64")
    frame.loc[5, "customer_id"] = None
    frame.loc[10, "monthly_charges"] = np.inf
    frame.loc[11, "total_charges"] = 1e300  # beyond float32
    frame.loc[12, "satisfaction_score"] = np.nan  # imputed: scores
    frame.loc[13, "contract"] = "never-seen"  # unknown category: scores (all-zero one-hot)
    frame.loc[14, "region"] = None  # missing category: scores
    src = _write(frame, tmp_path / "p.parquet")
    result = _score(model, src, tmp_path / "out" / "p.parquet", batch_rows=1_000)
    assert result.rows_rejected == 3
    assert result.rows_out + result.rows_rejected == result.rows_in == 3_000
    rejects = pq.read_table(result.rejects_uri).to_pandas()
    assert result.rejects_uri == str(tmp_path / "out" / "_rejects" / "p.parquet")
    reasons = dict(zip(rejects.index, rejects["reject_reason"], strict=True))
    assert any("missing key `customer_id`" in r for r in reasons.values())
    assert any("`monthly_charges`" in r for r in reasons.values())
    assert any("`total_charges`" in r for r in reasons.values())
    assert "inf" in rejects["monthly_charges"].str.lower().tolist()
    out = pq.read_table(result.output_uri).to_pandas()
    assert len(out) == 2_997
    assert {int(frame.loc[i, "customer_id"]) for i in (12, 13, 14)} <= set(out["customer_id"])


def test_csv_non_numeric_text_is_rejected_with_raw_value(model, tmp_path):
    frame = _frame(800)
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "forty"
    frame.loc[4, "age"] = None  # empty field: missing, imputed
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    result = _score(model, path, tmp_path / "o.parquet", batch_rows=300)
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (800, 799, 1)
    rejects = pq.read_table(result.rejects_uri).to_pandas()
    assert rejects["age"].tolist() == ["forty"]
    assert "non-numeric value in `age`" in rejects["reject_reason"][0]


def test_rerun_replaces_outputs_and_removes_stale_rejects(model, tmp_path):
    bad = _frame(1_000)
    bad.loc[0, "monthly_charges"] = np.inf
    src = tmp_path / "p.parquet"
    _write(bad, src)
    first = _score(model, src, tmp_path / "o.parquet")
    assert first.rows_rejected == 1 and Path(first.rejects_uri).exists()
    _write(_frame(1_200), src)  # the partition was fixed upstream
    second = _score(model, src, tmp_path / "o.parquet")
    assert second.rejects_uri is None and not Path(first.rejects_uri).exists()
    assert pq.read_metadata(second.output_uri).num_rows == 1_200
    again = _score(model, src, tmp_path / "o.parquet")
    a = pq.read_table(second.output_uri).drop_columns(["scored_at"])
    b = pq.read_table(again.output_uri).drop_columns(["scored_at"])
    assert a.equals(b)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


class _FailingSession:
    """Real ONNX Runtime session that raises on the third batch (a crash mid-partition)."""

    def __init__(self, path: str) -> None:
        from airflow_mlops.core.model.session import load_session

        self.inner = load_session(path)
        self.calls = 0

    def get_outputs(self):
        return self.inner.get_outputs()

    def run(self, names, feed):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("worker lost")
        return self.inner.run(names, feed)


def test_failure_mid_partition_leaves_previous_output_untouched(model, tmp_path):
    src = _write(_frame(5_000), tmp_path / "p.parquet")
    out = tmp_path / "o.parquet"
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="worker lost"):
        _score(model, src, out, batch_rows=500, session=_FailingSession(model.onnx_path))
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet", "p.parquet"]


def test_sample_is_bounded_seeded_independent_of_batch_size_and_in_monitoring_layout(
    model, tmp_path
):
    src = _write(_frame(4_000), tmp_path / "part-7.parquet")
    mon = tmp_path / "mon"
    kw = {"monitoring_dir": str(mon), "sample_rows": 150, "sample_date": "2024-05-01"}
    small = _score(model, src, tmp_path / "a.parquet", batch_rows=333, **kw)
    big = _score(model, src, tmp_path / "b.parquet", batch_rows=100_000, **kw)
    assert (
        small.sample_uri
        == big.sample_uri
        == str(
            mon
            / "model=demo_churn"
            / "source=batch"
            / f"version={model.version}"
            / "date=2024-05-01"
            / "part-7.parquet"
        )
    )
    sample = pq.read_table(big.sample_uri).to_pandas()
    assert len(sample) == 150
    assert {"prediction", "probability_1", "contract", "age", "customer_id"} <= set(sample)
    _score(model, src, tmp_path / "a.parquet", batch_rows=333, **kw)
    again = pq.read_table(small.sample_uri).to_pandas()
    assert again["customer_id"].tolist() == sample["customer_id"].tolist()
    none = _score(model, src, tmp_path / "c.parquet", sample_rows=0)
    assert none.sample_uri is None


def test_hive_partitioned_folder_supplies_partition_columns(model, tmp_path):
    frame = _frame(2_000)
    north, south = frame.iloc[:1_000], frame.iloc[1_000:]
    _write(north.drop(columns=["region"]), tmp_path / "ds" / "region=north" / "part-0.parquet")
    _write(south.drop(columns=["region"]), tmp_path / "ds" / "region=south" / "part-0.parquet")
    (tmp_path / "ds" / "_SUCCESS").write_text("")
    result = _score(model, tmp_path / "ds", tmp_path / "o.parquet", batch_rows=512)
    assert result.rows_out == 2_000
    out = pq.read_table(result.output_uri).to_pandas()
    assert out["customer_id"].tolist() == frame["customer_id"].tolist()


def test_missing_column_names_partition_and_column_and_writes_nothing(model, tmp_path):
    src = _write(_frame(500).drop(columns=["tenure_months"]), tmp_path / "part-3.parquet")
    with pytest.raises(ScoringError, match=r"partition part-3.*missing column.*tenure_months"):
        _score(model, src, tmp_path / "out" / "o.parquet")
    assert not (tmp_path / "out").exists()


def test_wrong_type_column_names_partition_and_column(model, tmp_path):
    frame = _frame(500)
    frame["monthly_charges"] = frame["monthly_charges"].astype(str)
    src = _write(frame, tmp_path / "part-4.parquet")
    with pytest.raises(ScoringError, match=r"part-4.*`monthly_charges` is string.*number"):
        _score(model, src, tmp_path / "o.parquet")
    frame = _frame(500)
    frame["contract"] = 1.5
    src = _write(frame, tmp_path / "part-5.parquet")
    with pytest.raises(ScoringError, match=r"part-5.*`contract` is double.*category"):
        _score(model, src, tmp_path / "o.parquet")


def test_corrupt_file_in_a_folder_is_named_and_nothing_is_written(model, tmp_path):
    _write(_frame(500), tmp_path / "in" / "a.parquet")
    (tmp_path / "in" / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ScoringError, match=r"b\.parquet is not a readable Parquet file"):
        _score(model, tmp_path / "in", tmp_path / "out" / "o.parquet")
    assert not (tmp_path / "out").exists()


def test_empty_partition_gives_zero_rows_and_an_empty_output(model, tmp_path):
    src = _write(_frame(10).iloc[:0], tmp_path / "empty.parquet")
    result = _score(model, src, tmp_path / "o.parquet", monitoring_dir=str(tmp_path / "m"))
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (0, 0, 0)
    table = pq.read_table(result.output_uri)
    assert table.num_rows == 0 and "probability_1" in table.column_names
    assert result.sample_uri is None


def test_list_partitions_of_a_day(tmp_path):
    day = tmp_path / "incoming" / "date=2024-05-01"
    _write(_frame(10), day / "part-0.parquet")
    _write(_frame(10), day / "region=x" / "part-0.parquet")
    (day / "_SUCCESS").write_text("")
    (day / ".part-1.parquet.tmp").write_text("")
    found = list_partitions(str(tmp_path / "incoming"), "2024-05-01")
    assert found == [str(day / "part-0.parquet"), str(day / "region=x")]
    assert list_partitions(str(tmp_path / "incoming"), "2024-05-02") == []


def _result(uri: str, version: str, rows: int = 10, rejected: int = 0, folder=None) -> dict:
    # The summary checks each result against its files: write them, as scoring would have.
    out = rejects = None
    if folder is not None:
        out = str(folder / f"{uri}.parquet")
        pq.write_table(pa.table({"x": list(range(rows - rejected))}), out)
        if rejected:
            rejects = str(folder / f"{uri}.rejects.parquet")
            pq.write_table(pa.table({"x": list(range(rejected))}), rejects)
    return {
        "input_uri": uri,
        "output_uri": out,
        "rejects_uri": rejects,
        "rows_in": rows,
        "rows_out": rows - rejected,
        "rows_rejected": rejected,
        "model_name": "m",
        "model_version": version,
        "rows_per_second": 1.0,
    }


def test_summary_totals_and_version_checks(tmp_path):
    summary = summarize(
        [_result("a", "3", folder=tmp_path), _result("b", "3", 10, 2, folder=tmp_path)], ["a", "b"]
    )
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (20, 18, 2)
    assert summary["model_versions"] == ["m v3"]
    with pytest.raises(ScoringError, match=r"different model versions.*m v3.*m v4"):
        summarize([_result("a", "3"), _result("b", "4")])
    with pytest.raises(ScoringError, match=r"1 of 2 partition\(s\) were not scored.*'b'"):
        summarize([_result("a", "3")], ["a", "b"])


def test_scoring_spec_defaults_and_errors():
    spec = ScoringSpec.from_dict({})
    assert spec.model == "champion" and spec.batch_rows == 65_536 and spec.key_columns is None
    assert spec.input_base("m").endswith("data/m/incoming")
    spec = ScoringSpec.from_dict({"key_columns": ["id"], "threads": 2})
    assert spec.key_columns == ("id",)
    with pytest.raises(ConfigError, match=r"scoring: unknown key\(s\) \['batch'\]"):
        ScoringSpec.from_dict({"batch": 1}, "x.yaml")
    with pytest.raises(ConfigError, match=r"scoring.batch_rows must be an integer >= 1"):
        ScoringSpec.from_dict({"batch_rows": 0})


def test_prefetch_raises_the_reader_error_in_the_consumer_and_stops_early():
    from airflow_mlops.core.scoring.io import Prefetch

    def items():
        yield 1
        yield 2
        raise ScoringError("row group 2 is corrupt")

    with Prefetch(items()) as it:
        assert next(it) == 1
        assert next(it) == 2
        with pytest.raises(ScoringError, match="row group 2"):
            next(it)
    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    with Prefetch(endless(), depth=2) as it:
        assert next(it) == 0
    assert len(produced) < 10  # the reader stopped instead of running ahead


def test_background_writer_surfaces_a_write_error(tmp_path):
    from airflow_mlops.core.scoring.output import BackgroundWriter

    schema = pa.schema([("x", pa.int64())])
    bad = pa.RecordBatch.from_arrays([pa.array(["a"])], names=["x"])  # wrong type
    writer = pq.ParquetWriter(str(tmp_path / "o.parquet"), schema)
    with pytest.raises(Exception, match=r"(?i)schema|type"), BackgroundWriter(writer) as w:
        w.write_batch(bad)


def test_peak_rss_is_the_partitions_own_not_an_earlier_peak_of_the_process(model, tmp_path):
    from airflow_mlops.core.scoring.partition import peak_rss_mb

    src = _write(_frame(2_000), tmp_path / "in.parquet")
    big = np.ones(400 * 2**20 // 8)  # an earlier 400 MB peak of the host process (dag.test())
    big[::512] = 2.0  # touch every page
    del big
    before = peak_rss_mb()
    result = _score(model, src, str(tmp_path / "out.parquet"))
    assert before - result.peak_rss_mb > 300, (before, result.peak_rss_mb)


def test_options_object_and_keywords_score_alike_and_a_misspelt_keyword_is_refused(model, tmp_path):
    src = _write(_frame(1_200), tmp_path / "p.parquet")
    options = ScoringOptions(key_columns=("customer_id", "customer_id"), batch_rows=500)
    by_options = score_partition(str(src), str(tmp_path / "a.parquet"), model, options)
    by_keywords = _score(model, src, tmp_path / "b.parquet", batch_rows=500)
    assert by_options.rows_out == by_keywords.rows_out == 1_200
    a, b = pq.read_table(by_options.output_uri), pq.read_table(by_keywords.output_uri)
    assert a.column_names == b.column_names  # the repeated key is written once
    assert a.drop(["scored_at"]).equals(b.drop(["scored_at"]))
    merged = ScoringOptions.merge(options, {"batch_rows": 7})
    assert (merged.batch_rows, merged.key_columns) == (7, ("customer_id",))
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['batch_row'\]"):
        score_partition(str(src), str(tmp_path / "c.parquet"), model, batch_row=5)
    assert not (tmp_path / "c.parquet").exists()
