from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config.data import DataSpec
from airflow_mlops.core.data.io import (
    DataError,
    PreparedData,
    StorageUnreachable,
    atomic_output,
    fingerprint,
    load_frame,
    prepare_dataset,
    split_indices,
    write_parquet_atomic,
)
from airflow_mlops.exceptions import MLOpsTransientError


def _frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "color": rng.choice(["red", "blue"], size=rows),
            # 25% positives: a stratified split must keep that share in both parts.
            "y": (np.arange(rows) % 4 == 0).astype(int),
        }
    )


def _spec(uri: str | Path, **overrides: object) -> DataSpec:
    values: dict = {
        "uri": str(uri),
        "target": "y",
        "numeric_features": ("x",),
        "categorical_features": ("color",),
        "key_columns": ("id",),
        "holdout_fraction": 0.2,
        "seed": 7,
    }
    values.update(overrides)
    return DataSpec(**values)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src.parquet"
    _frame().to_parquet(path, index=False)
    return path


@pytest.fixture
def memory_fs():
    """The memory filesystem is process-global: start and end each test with it empty."""
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    yield fs
    fs.store.clear()


def test_prepare_split_is_reproducible_stratified_and_ordered(source: Path, tmp_path: Path):
    first = prepare_dataset(_spec(source), str(tmp_path / "a"))
    second = prepare_dataset(_spec(source), str(tmp_path / "b"))

    train_a, train_b = pd.read_parquet(first.train_uri), pd.read_parquet(second.train_uri)
    hold_a = pd.read_parquet(first.holdout_uri)
    pd.testing.assert_frame_equal(train_a, train_b)
    assert (first.train_rows, first.holdout_rows, first.rows) == (160, 40, 200)
    assert first.class_counts == {"0": 150, "1": 50}
    assert hold_a["y"].mean() == pytest.approx(0.25)
    assert train_a["y"].mean() == pytest.approx(0.25)
    # The parts partition the source and keep its row order.
    assert sorted([*train_a["id"], *hold_a["id"]]) == list(range(200))
    assert train_a["id"].is_monotonic_increasing and hold_a["id"].is_monotonic_increasing
    assert list(train_a.columns) == ["id", "x", "color", "y"]
    assert first.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_prepare_other_seed_gives_other_split(source: Path, tmp_path: Path):
    a = prepare_dataset(_spec(source, seed=1), str(tmp_path / "a"))
    b = prepare_dataset(_spec(source, seed=2), str(tmp_path / "b"))
    assert list(pd.read_parquet(a.holdout_uri)["id"]) != list(pd.read_parquet(b.holdout_uri)["id"])


def test_unstratified_split_does_not_keep_balance_exactly():
    y = np.array([0] * 90 + [1] * 10)
    shares = {y[split_indices(y, 0.5, seed, stratify=False)[1]].mean() for seed in range(20)}
    stratified = {y[split_indices(y, 0.5, seed, stratify=True)[1]].mean() for seed in range(20)}
    assert stratified == {0.1}
    assert len(shares) > 1


@pytest.mark.parametrize(
    ("counts", "fraction"), [((7, 3), 0.25), ((50, 33, 17), 0.3), ((2, 2), 0.5)]
)
def test_split_holdout_size_is_rounded_total(counts: tuple[int, ...], fraction: float):
    y = np.repeat(np.arange(len(counts)), counts)
    train, holdout = split_indices(y, fraction, seed=3)
    assert len(holdout) == round(fraction * len(y))
    assert sorted([*train, *holdout]) == list(range(len(y)))
    assert set(y[train]) == set(y[holdout]) == set(range(len(counts)))


def test_split_keeps_every_class_on_both_sides():
    y = np.repeat([0, 1], 9)
    train, holdout = split_indices(y, 0.05, seed=0)
    # round(0.05 * 18) is 1, but each class must reach the holdout.
    assert list(y[holdout]) == [0, 1]
    assert set(y[train]) == {0, 1}


def test_prepare_to_memory_fs_and_to_dict(source: Path, memory_fs):
    result = prepare_dataset(_spec(source), "memory://prepared/run1")
    assert isinstance(result, PreparedData)
    assert result.train_uri == "memory://prepared/run1/train.parquet"
    assert len(load_frame(result.holdout_uri)) == result.holdout_rows == 40
    assert sorted(memory_fs.ls("/prepared/run1", detail=False)) == [
        "/prepared/run1/holdout.parquet",
        "/prepared/run1/train.parquet",
    ]
    assert json.loads(json.dumps(result.to_dict()))["class_counts"] == {"0": 150, "1": 50}


def test_prepare_names_missing_columns(source: Path, tmp_path: Path):
    spec = _spec(source, numeric_features=("x", "height", "weight"))
    with pytest.raises(DataError) as err:
        prepare_dataset(spec, str(tmp_path / "out"))
    message = str(err.value)
    assert "['height', 'weight']" in message
    assert "columns present: ['id', 'x', 'color', 'y']" in message
    assert str(source) in message


def test_prepare_rejects_null_target(tmp_path: Path):
    frame = _frame().astype({"y": "float"})
    frame.loc[:40, "y"] = np.nan
    path = tmp_path / "nulls.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(DataError, match=f"target column `y` has 41 nulls in {path}"):
        prepare_dataset(_spec(path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_prepare_rejects_single_class(tmp_path: Path):
    path = tmp_path / "one.parquet"
    _frame().assign(y=1).to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"`y` has a single class \(1\).*at least 2"):
        prepare_dataset(_spec(path), str(tmp_path / "out"))


def test_prepare_rejects_lonely_class_when_stratified(tmp_path: Path):
    path = tmp_path / "lonely.parquet"
    frame = _frame().assign(y=0)
    frame.loc[3, "y"] = 1
    frame.to_parquet(path, index=False)
    with pytest.raises(DataError, match="only 1 row of class 1"):
        prepare_dataset(_spec(path), str(tmp_path / "out"))
    # Unstratified, the single positive simply lands in one part.
    result = prepare_dataset(_spec(path, stratify=False), str(tmp_path / "out"))
    assert result.train_rows + result.holdout_rows == 200


def test_load_missing_path_names_path_and_reason(tmp_path: Path):
    missing = tmp_path / "nope" / "data.parquet"
    with pytest.raises(DataError, match=f"cannot read {missing}: No such file or directory"):
        load_frame(str(missing))
    with pytest.raises(DataError, match=r"memory://absent\.parquet: No such file"):
        load_frame("memory://absent.parquet")


def test_load_unknown_protocol_is_a_data_error():
    with pytest.raises(DataError, match="nosuchproto://x"):
        load_frame("nosuchproto://x/y.parquet")


def test_load_empty_file_has_no_rows(tmp_path: Path):
    empty = tmp_path / "empty.parquet"
    empty.touch()
    with pytest.raises(DataError, match=f"{empty} has no rows"):
        load_frame(str(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(DataError, match=f"{header_only} has no rows"):
        load_frame(str(header_only))
    zero_rows = tmp_path / "zero.parquet"
    _frame().iloc[:0].to_parquet(zero_rows, index=False)
    with pytest.raises(DataError, match=f"{zero_rows} has no rows"):
        load_frame(str(zero_rows))


def test_load_corrupt_parquet_names_the_file(tmp_path: Path):
    folder = tmp_path / "ds"
    folder.mkdir()
    _frame(10).to_parquet(folder / "part-0.parquet", index=False)
    (folder / "part-1.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataError, match=r"part-1\.parquet is not a readable Parquet file"):
        load_frame(str(folder))
    with pytest.raises(DataError, match=r"part-1\.parquet is not a readable Parquet file"):
        load_frame(str(folder / "part-1.parquet"))


def test_load_columns_subset_in_requested_order(source: Path):
    frame = load_frame(str(source), columns=["y", "x"])
    assert list(frame.columns) == ["y", "x"]
    with pytest.raises(DataError, match=r"missing column\(s\) \['z'\]"):
        load_frame(str(source), columns=["x", "z"])


def test_load_folder_skips_hidden_and_keeps_file_order(tmp_path: Path):
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = _frame(30)
    for i in range(3):
        frame.iloc[i * 10 : (i + 1) * 10].to_parquet(folder / f"part-{i}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-3.parquet.abc.tmp").write_bytes(b"half written")
    loaded = load_frame(str(folder))
    pd.testing.assert_frame_equal(loaded, frame)


def test_load_hive_partitioned_folder(tmp_path: Path):
    frame = _frame(40)
    frame.to_parquet(tmp_path / "hive", partition_cols=["color"], index=False)
    assert sorted(os.listdir(tmp_path / "hive")) == ["color=blue", "color=red"]
    loaded = load_frame(str(tmp_path / "hive"), columns=["id", "color", "y"])
    loaded = loaded.sort_values("id").reset_index(drop=True)
    assert list(loaded["color"]) == list(frame["color"])
    assert list(loaded["y"]) == list(frame["y"])


def test_load_csv_file_folder_and_gzip(tmp_path: Path):
    frame = _frame(20)
    frame.to_csv(tmp_path / "one.csv", index=False)
    pd.testing.assert_frame_equal(load_frame(str(tmp_path / "one.csv")), frame)
    (tmp_path / "many").mkdir()
    frame.iloc[:5].to_csv(tmp_path / "many" / "a.csv", index=False)
    frame.iloc[5:].to_csv(tmp_path / "many" / "b.csv.gz", index=False)
    loaded = load_frame(f"file://{tmp_path / 'many'}", columns=["id", "y"])
    assert list(loaded["id"]) == list(range(20))
    with pytest.raises(DataError, match=r"a\.csv: missing column\(s\) \['nope'\]"):
        load_frame(str(tmp_path / "many"), columns=["id", "nope"])


def test_load_csv_with_explicit_format(tmp_path: Path):
    path = tmp_path / "data.txt"
    _frame(5).to_csv(path, index=False)
    assert len(load_frame(str(path), format="csv")) == 5
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_frame(str(path))
    with pytest.raises(DataError, match="unknown data format 'json'"):
        load_frame(str(path), format="json")


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path):
    target = tmp_path / "deep" / "out.parquet"
    write_parquet_atomic(_frame(10), str(target))
    write_parquet_atomic(_frame(3), str(target))
    assert len(pd.read_parquet(target)) == 3
    assert os.listdir(target.parent) == ["out.parquet"]


def test_write_atomic_failure_keeps_old_file(tmp_path: Path):
    target = tmp_path / "out.parquet"
    write_parquet_atomic(_frame(10), str(target))
    with pytest.raises(RuntimeError, match="worker died"), atomic_output(str(target)) as sink:
        sink.write(b"half a file")
        assert len(os.listdir(tmp_path)) == 2  # the temporary file sits beside the target
        raise RuntimeError("worker died")
    assert len(pd.read_parquet(target)) == 10
    assert os.listdir(tmp_path) == ["out.parquet"]


def test_write_atomic_on_memory_fs(memory_fs):
    write_parquet_atomic(_frame(10), "memory://w/out.parquet")
    write_parquet_atomic(_frame(4), "memory://w/out.parquet")
    assert memory_fs.ls("/w", detail=False) == ["/w/out.parquet"]
    assert len(load_frame("memory://w/out.parquet")) == 4


def test_fingerprint_file_and_folder(tmp_path: Path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)  # more than one read chunk
    first = fingerprint(str(path))
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fingerprint(f"file://{path}") == first
    path.write_bytes(b"x" * 2_999_999 + b"y")
    assert fingerprint(str(path)) != first

    folder = tmp_path / "d"
    (folder / "k=1").mkdir(parents=True)
    (folder / "a.parquet").write_bytes(b"ab")
    (folder / "k=1" / "b.parquet").write_bytes(b"cd")
    digest = fingerprint(str(folder))
    assert fingerprint(str(folder)) == digest
    (folder / "_SUCCESS").write_text("")  # not data: ignored, like load_frame does
    assert fingerprint(str(folder)) == digest
    # The same bytes moved across the file boundary must not hash alike.
    (folder / "a.parquet").write_bytes(b"abc")
    (folder / "k=1" / "b.parquet").write_bytes(b"d")
    moved = fingerprint(str(folder))
    assert moved != digest
    (folder / "a.parquet").rename(folder / "z.parquet")
    assert fingerprint(str(folder)) != moved


def test_fingerprint_missing_path(tmp_path: Path):
    with pytest.raises(DataError, match="No such file"):
        fingerprint(str(tmp_path / "missing"))


def test_a_killed_writes_temporary_names_its_target_exactly(tmp_path: Path):
    from airflow_mlops.core.data.io import temporary_target

    target = tmp_path / "part-x.parquet"
    writing = atomic_output(str(target))
    writing.__enter__().write(b"half a file")  # then the task is killed: no exit, no cleanup
    (left,) = os.listdir(tmp_path)
    assert left.startswith(".part-x.parquet.") and left.endswith(".tmp")
    assert temporary_target(left) == "part-x.parquet"
    # Another target whose name extends this one is told apart; other dot files are not ours.
    longer = left.replace(".part-x.parquet.", ".part-x.parquet.parquet.")
    assert temporary_target(longer) == "part-x.parquet.parquet"
    for name in ("part-x.parquet", ".part-1.parquet.tmp", "_SUCCESS", ".part-x.parquet.tmp"):
        assert temporary_target(name) is None


def test_missing_object_store_credentials_name_the_uri(no_aws_credentials, tmp_path: Path):
    uri = "s3://landing/churn/2026-12-01.parquet"
    read = re.escape(f"cannot read {uri}: no object-storage credentials")
    with pytest.raises(DataError, match=read):
        load_frame(uri)
    with pytest.raises(DataError, match=read):
        fingerprint(uri)
    out = "s3://landing/out/part.parquet"
    with pytest.raises(DataError, match=re.escape(f"cannot write {out}: no object-storage")):
        write_parquet_atomic(pd.DataFrame({"a": [1]}), out)


def test_an_object_store_that_does_not_answer_is_transient_and_names_the_uri(unreachable_s3):
    uri = "s3://landing/churn/2026-12-01.parquet"
    with pytest.raises(StorageUnreachable, match=r"cannot read s3://landing/churn/2026-12-01") as e:
        load_frame(uri)
    assert isinstance(e.value, MLOpsTransientError)
    assert not isinstance(e.value, DataError)
