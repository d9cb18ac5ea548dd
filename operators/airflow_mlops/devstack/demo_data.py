"""A synthetic customer-churn dataset for the demo, the tests and the benchmarks.

Rows are generated in fixed blocks of :data:`BLOCK_ROWS`, each from its own seed derived from
``(seed, block number)``: the same seed gives the same rows whatever the chunk size or the
number of partitions, and millions of rows are written with memory bounded by one chunk.

``shift`` is the drift knob. It moves the feature distributions (higher prices, more
month-to-month contracts, more support calls, longer absences, more data usage) while the label
stays the same function of the features, so a model retrained on shifted data is valid.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

KEY = "customer_id"
TARGET = "churned"
NUMERIC_FEATURES: tuple[str, ...] = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "age",
    "support_calls",
    "num_services",
    "data_usage_gb",
    "avg_call_minutes",
    "late_payments",
    "satisfaction_score",
    "days_since_last_login",
    "discount_pct",
    "dependents",
    "household_income_k",
    "outage_minutes",
    "referrals",
)
CATEGORIES: dict[str, tuple[str, ...]] = {
    "contract": ("month-to-month", "one-year", "two-year"),
    "payment_method": ("electronic-check", "mailed-check", "bank-transfer", "credit-card"),
    "internet_service": ("fiber", "dsl", "none"),
    "region": ("north", "south", "east", "west"),
}
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(CATEGORIES)
#: Rows per generated block; also the Parquet row-group size of written files.
BLOCK_ROWS = 65_536

# Shares of missing values: unanswered surveys, undisclosed incomes, billing not yet run, and
# customers whose region was never recorded.
_MISSING = {
    "satisfaction_score": 0.06,
    "household_income_k": 0.04,
    "total_charges": 0.015,
    "region": 0.02,
}
# Chosen so that about 30% of reference customers churn.
_INTERCEPT = -2.3


def generate(rows: int, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Generate ``rows`` customers as a DataFrame (see the module docstring).

    :param rows: number of rows.
    :param seed: the same seed gives the same rows (and ``generate(n)`` is the first ``n`` rows
        of ``generate(m)`` for any ``m > n``).
    :param shift: 0 for the reference distribution; 1 is a clearly visible drift.
    """
    return _generate_range(0, rows, seed, shift).to_pandas()


def write_dataset(
    uri_or_path: str,
    rows: int,
    seed: int = 0,
    shift: float = 0.0,
    chunk_rows: int = 500_000,
    partitions: int = 1,
) -> list[str]:
    """Write the dataset as Parquet, chunk by chunk, and return the written file URIs.

    With one partition and a target ending in ``.parquet`` a single file is written there;
    otherwise ``uri_or_path`` is a folder that receives ``part-00000.parquet`` ... with
    consecutive row ranges. Each file is written under a temporary name and renamed.

    :param uri_or_path: local path or fsspec URI.
    :param rows: total number of rows.
    :param seed: see :func:`generate`; the rows do not depend on ``chunk_rows`` or ``partitions``.
    :param shift: see :func:`generate`.
    :param chunk_rows: rows held in memory at once (rounded up to whole blocks).
    :param partitions: number of files.
    """
    from airflow_mlops.core.data.io import atomic_output

    if rows < 1 or partitions < 1 or chunk_rows < 1:
        raise ValueError(
            f"rows, partitions and chunk_rows must be positive, got {rows}, {partitions}, "
            f"{chunk_rows}"
        )
    chunk = -(-chunk_rows // BLOCK_ROWS) * BLOCK_ROWS
    target = uri_or_path.rstrip("/")
    if partitions == 1 and target.endswith(".parquet"):
        uris = [target]
    else:
        uris = [f"{target}/part-{p:05d}.parquet" for p in range(partitions)]
    bounds = np.linspace(0, rows, partitions + 1).astype(np.int64)
    schema = _schema()
    for uri, start, stop in zip(uris, bounds[:-1], bounds[1:], strict=True):
        with atomic_output(uri) as sink, pq.ParquetWriter(sink, schema) as writer:
            # Cut chunks on the block grid so every block is generated exactly once.
            edge = int(start)
            while edge < stop:
                end = min((edge // chunk + 1) * chunk, int(stop))
                table = _generate_range(edge, end, seed, shift)
                writer.write_table(table, row_group_size=BLOCK_ROWS)
                edge = end
    return uris


def _schema() -> pa.Schema:
    fields = [pa.field(KEY, pa.int64(), nullable=False)]
    fields += [pa.field(name, _NUMERIC_TYPES[name]) for name in NUMERIC_FEATURES]
    fields += [pa.field(name, pa.string()) for name in CATEGORICAL_FEATURES]
    fields.append(pa.field(TARGET, pa.int64(), nullable=False))
    return pa.schema(fields)


_INT_COLUMNS = {
    "tenure_months",
    "age",
    "support_calls",
    "num_services",
    "late_payments",
    "dependents",
    "referrals",
}
_NUMERIC_TYPES = {n: pa.int64() if n in _INT_COLUMNS else pa.float64() for n in NUMERIC_FEATURES}


def _generate_range(start: int, stop: int, seed: int, shift: float) -> pa.Table:
    """Rows ``start`` to ``stop`` (exclusive), built from whole blocks and sliced."""
    first, last = start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)
    tables = [_block(b, seed, shift) for b in range(first, last)]
    table = pa.concat_tables(tables) if len(tables) != 1 else tables[0]
    return table.slice(start - first * BLOCK_ROWS, stop - start).combine_chunks()


def _block(index: int, seed: int, shift: float) -> pa.Table:
    """One block of :data:`BLOCK_ROWS` customers, drawn from the generator ``(seed, index)``.

    The draws happen in one fixed order (categories, numbers, label, missing values): a block
    is the same for the same ``(seed, index, shift)`` whatever else is generated.
    """
    rng = np.random.default_rng([seed, index])
    n = BLOCK_ROWS
    s = float(shift)
    codes = _draw_codes(rng, n, s)
    raw = _draw_numbers(rng, n, s, codes)
    churned = _churn(rng, n, codes, raw)
    return _table(rng, index, n, codes, raw, churned)


def _draw_codes(rng: np.random.Generator, n: int, s: float) -> dict[str, np.ndarray]:
    """Category codes of the four categorical features."""
    # Shift pushes customers toward month-to-month; the rest keep their 55:45 one/two-year mix.
    p_m2m = min(0.5 + 0.15 * s, 0.92)
    return {
        "contract": _pick(rng, n, (p_m2m, (1 - p_m2m) * 0.55, (1 - p_m2m) * 0.45)),
        "internet_service": _pick(rng, n, (0.44, 0.34, 0.22)),
        "payment_method": _pick(rng, n, (0.34, 0.2, 0.23, 0.23)),
        "region": _pick(rng, n, (0.3, 0.25, 0.25, 0.2)),
    }


def _draw_numbers(
    rng: np.random.Generator, n: int, s: float, codes: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The numeric features, unrounded where the label uses the exact value."""
    m2m, two_year = codes["contract"] == 0, codes["contract"] == 2
    fiber, no_internet = codes["internet_service"] == 0, codes["internet_service"] == 2
    # Long contracts come with long customer histories.
    tenure_scale = np.where(m2m, 14.0, np.where(two_year, 45.0, 30.0))
    tenure = np.minimum(np.floor(rng.exponential(tenure_scale)), 72).astype(np.int64)
    age = np.clip(np.round(rng.normal(46, 15, n)), 18, 90).astype(np.int64)
    num_services = np.clip(rng.poisson(np.where(no_internet, 1.0, 3.2)) + 1, 1, 8)
    base_price = np.where(fiber, 72.0, np.where(no_internet, 22.0, 48.0))
    monthly = np.maximum(
        base_price + 6.0 * (num_services - 1) + rng.normal(0, 8, n) + 12.0 * s, 18.0
    )
    total = np.round(monthly * tenure * rng.normal(1.0, 0.04, n), 2)
    monthly = np.round(monthly, 2)
    support_calls = rng.poisson(np.where(fiber, 1.6, 1.1) * (1 + 0.5 * s))
    usage = np.where(no_internet, 0.0, rng.lognormal(np.log(120) + 0.18 * s, 0.7, n))
    call_minutes = rng.gamma(2.0, 45.0, n)
    late_payments = rng.poisson(np.where(codes["payment_method"] == 1, 0.9, 0.4))
    outages = rng.gamma(0.6, 60.0 * (1 + 0.3 * fiber), n)
    satisfaction = np.clip(
        np.round(7.2 - 0.55 * support_calls - 0.004 * outages + rng.normal(0, 1.6, n)), 1, 10
    )
    login_days = np.minimum(rng.exponential(12 * (1 + 0.4 * s), n), 365.0)
    discount = np.round(np.where(rng.random(n) < 0.3, rng.uniform(5, 30, n), 0.0), 1)
    dependents = np.minimum(rng.poisson(0.9, n), 6)
    income = np.round(rng.lognormal(np.log(62), 0.5, n), 1)
    referrals = rng.poisson(0.25 + 0.015 * tenure)
    return {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "age": age,
        "support_calls": support_calls,
        "num_services": num_services,
        "data_usage_gb": usage,
        "avg_call_minutes": call_minutes,
        "late_payments": late_payments,
        "satisfaction_score": satisfaction,
        "days_since_last_login": login_days,
        "discount_pct": discount,
        "dependents": dependents,
        "household_income_k": income,
        "outage_minutes": outages,
        "referrals": referrals,
    }


def _churn(
    rng: np.random.Generator, n: int, codes: dict[str, np.ndarray], raw: dict[str, np.ndarray]
) -> np.ndarray:
    """The label, drawn from a logistic model of the true (not yet hidden) values."""
    m2m, two_year = codes["contract"] == 0, codes["contract"] == 2
    fiber = codes["internet_service"] == 0
    monthly, support_calls = raw["monthly_charges"], raw["support_calls"]
    logit = (
        _INTERCEPT
        + 1.0 * m2m
        - 0.9 * two_year
        - 1.8 * np.tanh(raw["tenure_months"] / 12.0)
        + 0.025 * (monthly - 65.0)
        + 1.2 * m2m * (monthly > 85.0)
        + 0.25 * np.minimum(support_calls, 5)
        + 0.8 * fiber * (support_calls >= 3)
        + 0.3 * fiber
        + 0.5 * (codes["payment_method"] == 0)
        - 0.22 * (raw["satisfaction_score"] - 6.0)
        + 0.9 * (raw["days_since_last_login"] > 30.0)
        + 0.3 * raw["late_payments"]
        + 0.0025 * (raw["age"] - 45.0) ** 2
        + 0.7 * (raw["data_usage_gb"] > 300.0)
        - 0.3 * np.minimum(raw["referrals"], 3)
        + 0.35 * np.log1p(raw["outage_minutes"] / 30.0)
        - 0.03 * raw["discount_pct"]
        + rng.normal(0, 1.0, n)
    )
    return (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)


# Shown with fewer decimals than drawn (the label saw the exact values).
_DECIMALS = {
    "data_usage_gb": 2,
    "avg_call_minutes": 1,
    "days_since_last_login": 1,
    "outage_minutes": 1,
}


def _table(
    rng: np.random.Generator,
    index: int,
    n: int,
    codes: dict[str, np.ndarray],
    raw: dict[str, np.ndarray],
    churned: np.ndarray,
) -> pa.Table:
    """The block as Arrow, with some values hidden as missing, as in real data."""
    columns: dict[str, Any] = {KEY: np.arange(index * n, (index + 1) * n, dtype=np.int64) + 1}
    for name, values in raw.items():
        if name in _DECIMALS:
            values = np.round(values, _DECIMALS[name])
        share = _MISSING.get(name)
        if share:
            values = np.where(rng.random(n) < share, np.nan, values)
        columns[name] = pa.array(values, type=_NUMERIC_TYPES[name])
    for name in ("contract", "payment_method", "internet_service", "region"):
        share = _MISSING.get(name)
        mask = rng.random(n) < share if share else None
        # take() with a null index yields a null string: no per-row Python objects.
        indices = pa.array(codes[name].astype(np.int32), mask=mask)
        columns[name] = pa.array(CATEGORIES[name]).take(indices)
    columns[TARGET] = churned
    return pa.Table.from_pydict(columns, schema=_schema())


def _pick(rng: np.random.Generator, n: int, probs: tuple[float, ...]) -> np.ndarray:
    """Category codes 0..k-1 with the given probabilities (inverse CDF, no object arrays)."""
    cdf = np.cumsum(probs)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(probs) - 1)


def main(argv: list[str] | None = None) -> int:
    """``python -m airflow_mlops.core.demo_data OUT --rows N --seed S --shift X``."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops.core.demo_data", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", help="a .parquet file, or a folder for several partitions")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=float, default=0.0, help="0: reference; 1: clear drift")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    paths = write_dataset(
        args.out,
        args.rows,
        seed=args.seed,
        shift=args.shift,
        chunk_rows=args.chunk_rows,
        partitions=args.partitions,
    )
    took = time.perf_counter() - began
    for path in paths:
        print(path)
    print(f"wrote {args.rows:,} rows in {took:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
