from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.config.model import load_config
from airflow_mlops.core.data.io import load_frame
from airflow_mlops.devstack import demo_data
from airflow_mlops.devstack.demo_data import (
    BLOCK_ROWS,
    CATEGORICAL_FEATURES,
    CATEGORIES,
    KEY,
    NUMERIC_FEATURES,
    TARGET,
    generate,
    write_dataset,
)
from tests.conftest import REPO

CONFIG = REPO / "dags" / "configs" / "demo_churn.yaml"


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate(20_000, seed=1)


def test_columns_and_row_count(reference: pd.DataFrame):
    assert list(reference.columns) == [KEY, *NUMERIC_FEATURES, *CATEGORICAL_FEATURES, TARGET]
    assert len(NUMERIC_FEATURES) == 16 and len(CATEGORICAL_FEATURES) == 4
    assert len(reference) == 20_000
    assert len(generate(7, seed=1)) == 7
    assert reference[KEY].is_unique and reference[KEY].min() == 1
    assert set(reference[TARGET]) == {0, 1}
    for name, allowed in CATEGORIES.items():
        assert set(reference[name].dropna()) == set(allowed)


def test_same_seed_same_rows_other_seed_other_rows(reference: pd.DataFrame):
    pd.testing.assert_frame_equal(generate(20_000, seed=1), reference)
    # A shorter request is a prefix of a longer one (rows come from fixed blocks).
    pd.testing.assert_frame_equal(generate(100, seed=1), reference.iloc[:100])
    other = generate(20_000, seed=2)
    assert not np.array_equal(other["monthly_charges"], reference["monthly_charges"])


def test_missing_values(reference: pd.DataFrame):
    null_share = reference.isna().mean()
    missing = null_share[null_share > 0]
    assert set(missing.index) == {
        "satisfaction_score",
        "household_income_k",
        "total_charges",
        "region",
    }
    assert (missing > 0.005).all() and (missing < 0.1).all()
    # The categorical gap is a real None, not the text "nan".
    assert reference["region"].isna().sum() > 0 and "nan" not in set(reference["region"].dropna())


def test_positive_rate(reference: pd.DataFrame):
    assert 0.25 <= reference[TARGET].mean() <= 0.35


def test_shift_moves_distributions_progressively():
    frames = {s: generate(20_000, seed=3, shift=s) for s in (0.0, 0.5, 1.0)}
    charges = [frames[s]["monthly_charges"].mean() for s in (0.0, 0.5, 1.0)]
    m2m = [(frames[s]["contract"] == "month-to-month").mean() for s in (0.0, 0.5, 1.0)]
    calls = [frames[s]["support_calls"].mean() for s in (0.0, 0.5, 1.0)]
    assert charges[0] < charges[1] < charges[2] and charges[2] - charges[0] > 8
    assert m2m[0] < m2m[1] < m2m[2] and m2m[2] - m2m[0] > 0.1
    assert calls[2] > 1.3 * calls[0]
    # Untouched features stay put.
    ages = [frames[s]["age"].mean() for s in (0.0, 1.0)]
    assert abs(ages[1] - ages[0]) < 0.5


def test_reference_samples_with_other_seeds_look_alike(reference: pd.DataFrame):
    other = generate(20_000, seed=99)
    for name in ("monthly_charges", "tenure_months", "support_calls", "age"):
        spread = reference[name].std()
        assert abs(other[name].mean() - reference[name].mean()) < 0.05 * spread, name
    for name in CATEGORICAL_FEATURES:
        share_a = reference[name].value_counts(normalize=True)
        share_b = other[name].value_counts(normalize=True)
        assert (share_a - share_b).abs().max() < 0.02, name
    assert abs(other[TARGET].mean() - reference[TARGET].mean()) < 0.02


def test_write_dataset_single_file_matches_generate(tmp_path: Path):
    rows = BLOCK_ROWS + 1_000
    paths = write_dataset(str(tmp_path / "d.parquet"), rows, seed=4, chunk_rows=10)
    assert paths == [str(tmp_path / "d.parquet")]
    meta = pq.ParquetFile(paths[0]).metadata
    assert meta.num_rows == rows
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [BLOCK_ROWS, 1_000]
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), generate(rows, seed=4))


def test_write_dataset_partitions_do_not_change_rows(tmp_path: Path):
    paths = write_dataset(str(tmp_path / "parts"), 5_000, seed=5, partitions=3)
    assert [Path(p).name for p in paths] == [f"part-{i:05d}.parquet" for i in range(3)]
    loaded = load_frame(str(tmp_path / "parts"))
    pd.testing.assert_frame_equal(loaded, generate(5_000, seed=5))
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [Path(p).name for p in paths]


def test_write_dataset_rejects_bad_sizes(tmp_path: Path):
    with pytest.raises(ValueError, match="must be positive"):
        write_dataset(str(tmp_path / "x.parquet"), 0)


def test_main_writes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "cli.parquet"
    assert demo_data.main([str(out), "--rows", "300", "--seed", "2", "--shift", "0.5"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), generate(300, seed=2, shift=0.5))


def test_a_quick_model_learns_the_label():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    train, test = generate(20_000, seed=10), generate(10_000, seed=11)
    features = list(NUMERIC_FEATURES + CATEGORICAL_FEATURES)

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[features].copy()
        for name in CATEGORICAL_FEATURES:
            out[name] = pd.Categorical(out[name], categories=CATEGORIES[name])
        return out

    model = HistGradientBoostingClassifier(
        max_iter=40, categorical_features="from_dtype", random_state=0
    )
    # One thread: on 20k rows OpenMP threads only add overhead, and on a busy 2-core machine
    # they made this fit 12x slower (6 s instead of 0.5 s).
    with threadpool_limits(1):
        model.fit(encode(train), train[TARGET])
    auc = roc_auc_score(test[TARGET], model.predict_proba(encode(test))[:, 1])
    assert 0.75 < auc < 0.95


def test_demo_config_covers_the_generated_columns(reference: pd.DataFrame):
    config = load_config(CONFIG)
    assert config.name == "demo_churn"
    data = config.data
    assert data.numeric_features == NUMERIC_FEATURES
    assert data.categorical_features == CATEGORICAL_FEATURES
    assert data.key_columns == (KEY,) and data.target == TARGET
    assert data.uri.endswith("/data/demo_churn/train.parquet")
    assert config.training.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"

    columns = config.validation.columns
    assert set(columns) == set(reference.columns)
    assert columns[TARGET].allowed == (0, 1) and columns[TARGET].max_null_fraction == 0
    shifted = generate(20_000, seed=1, shift=2.0)
    for frame in (reference, shifted):
        for name, spec in columns.items():
            values = frame[name]
            assert values.isna().mean() <= spec.max_null_fraction, name
            present = values.dropna()
            if spec.allowed is not None:
                assert set(present) <= set(spec.allowed), name
            if spec.min is not None:
                assert present.min() >= spec.min, name
            if spec.max is not None:
                assert present.max() <= spec.max, name
            if spec.type == "integer":
                assert pd.api.types.is_integer_dtype(values), name
            if spec.type == "string":
                assert pd.api.types.is_object_dtype(values), name
