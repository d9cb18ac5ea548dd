"""Drift statistics computed in one NumPy pass per column, equal to Evidently's on the same rows.

Evidently's ``DataDriftPreset`` spends most of its time on plots, correlations and pandas
copies; the statistics themselves are cheap. These functions compute the same statistics
(same formulas, same binning, same null handling: NaN and ±inf dropped, as Evidently does) so
that a drift *decision* taken here on every row equals the one Evidently would take on the same
rows with the same method and threshold:

- ``wasserstein``: first Wasserstein distance divided by the reference standard deviation
  (floored at 0.001). Integer columns with a small range are counted value by value, which is
  exact. Other columns are histogrammed on a fine uniform grid; the CDFs at the bin edges give
  a guaranteed lower and upper bound of the distance, and only when the threshold falls between
  the two bounds is the exact sort-based distance computed. The decision is therefore exact.
- ``psi`` and ``jensenshannon``: on numeric columns with more than 20 distinct reference values,
  Sturges bins over the combined range (as ``np.histogram_bin_edges(..., "sturges")``);
  otherwise, and for categorical columns, the share of each value seen on either side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

NUMERIC_METHODS = ("wasserstein", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("psi", "jensenshannon")
#: Bins of the grid that bounds the Wasserstein distance (uniform bins: NumPy's fast path).
WASSERSTEIN_BINS = 16_384
# Float noise in sums over 16k bins is far below this; decisions closer than this to the
# threshold are settled by the exact computation.
_MARGIN = 1e-9


@dataclass(frozen=True)
class Statistic:
    """One column's drift statistic.

    :param value: the statistic (for a bounded Wasserstein distance, the middle of the bounds).
    :param drifted: ``value >= threshold`` (Evidently's rule), decided exactly.
    :param exact: the value is the exact statistic, not the middle of bounds.
    :param lower: a guaranteed lower bound of the exact statistic.
    :param upper: a guaranteed upper bound of the exact statistic.
    """

    value: float
    drifted: bool
    exact: bool
    lower: float
    upper: float


def finite_values(values: Any) -> np.ndarray:
    """A numeric column as a NumPy array without NaN/±inf (integers stay integers)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    arr = np.asarray(arr, dtype=np.float64)
    return arr[np.isfinite(arr)]


def numeric_statistic(
    method: str, reference: np.ndarray, current: np.ndarray, threshold: float
) -> Statistic:
    """``method`` on two non-empty numeric arrays (see :func:`finite_values`)."""
    if method == "wasserstein":
        return wasserstein_norm(reference, current, threshold)
    if method in ("psi", "jensenshannon"):
        ref_p, cur_p = _numeric_shares(reference, current, fill_zeros=method == "psi")
        value = _divergence(method, ref_p, cur_p)
        return Statistic(value, value >= threshold, True, value, value)
    raise ValueError(f"unknown numeric drift method {method!r}; use one of {NUMERIC_METHODS}")


def categorical_statistic(
    method: str, reference_counts: dict[Any, int], current_counts: dict[Any, int], threshold: float
) -> Statistic:
    """``method`` on the value counts of a categorical column (nulls already left out)."""
    if method not in CATEGORICAL_METHODS:
        raise ValueError(
            f"unknown categorical drift method {method!r}; use one of {CATEGORICAL_METHODS}"
        )
    keys = list(set(reference_counts) | set(current_counts))
    ref = np.array([reference_counts.get(k, 0) for k in keys], dtype=np.float64)
    cur = np.array([current_counts.get(k, 0) for k in keys], dtype=np.float64)
    ref_p, cur_p = ref / ref.sum(), cur / cur.sum()
    if method == "psi":
        ref_p, cur_p = _fill_zeros(ref_p), _fill_zeros(cur_p)
    value = _divergence(method, ref_p, cur_p)
    return Statistic(value, value >= threshold, True, value, value)


def wasserstein_norm(
    reference: np.ndarray, current: np.ndarray, threshold: float, bins: int = WASSERSTEIN_BINS
) -> Statistic:
    """Wasserstein-1 distance over the reference standard deviation, with an exact decision."""
    norm = max(float(np.std(reference)), 0.001)
    low = min(reference.min(), current.min())
    high = max(reference.max(), current.max())
    if high == low:
        return Statistic(0.0, threshold <= 0.0, True, 0.0, 0.0)
    if reference.dtype.kind == "i" and current.dtype.kind == "i" and high - low < bins:
        # One bin per integer: both CDFs are constant between consecutive integers.
        size = int(high - low) + 1
        cdf_r = np.cumsum(np.bincount(reference - low, minlength=size)) / reference.size
        cdf_c = np.cumsum(np.bincount(current - low, minlength=size)) / current.size
        value = float(np.abs(cdf_r - cdf_c)[:-1].sum()) / norm
        return Statistic(value, value >= threshold, True, value, value)
    edges_range = (float(low), float(high))
    below_r = _cdf_at_edges(reference, bins, edges_range)
    below_c = _cdf_at_edges(current, bins, edges_range)
    width = (edges_range[1] - edges_range[0]) / bins
    # In bin i, F_ref lies in [below_r[i], below_r[i+1]] and F_cur in [below_c[i], below_c[i+1]].
    a = below_r[:-1] - below_c[1:]
    b = below_r[1:] - below_c[:-1]
    upper = float(np.maximum(np.abs(a), np.abs(b)).sum()) * width / norm
    same_sign = (a > 0) | (b < 0)
    lower = float(np.where(same_sign, np.minimum(np.abs(a), np.abs(b)), 0.0).sum()) * width / norm
    if lower >= threshold * (1 + _MARGIN):
        return Statistic((lower + upper) / 2, True, False, lower, upper)
    if upper < threshold * (1 - _MARGIN):
        return Statistic((lower + upper) / 2, False, False, lower, upper)
    from scipy import stats

    value = float(stats.wasserstein_distance(reference, current)) / norm
    return Statistic(value, value >= threshold, True, value, value)


def _cdf_at_edges(values: np.ndarray, bins: int, edges_range: tuple[float, float]) -> np.ndarray:
    """Share of values strictly below each of the ``bins + 1`` uniform edges (1 at the top)."""
    counts, _ = np.histogram(values, bins=bins, range=edges_range)
    out = np.empty(bins + 1)
    out[0] = 0.0
    np.cumsum(counts, out=out[1:])
    out /= values.size
    out[-1] = 1.0
    return out


def _numeric_shares(
    reference: np.ndarray, current: np.ndarray, fill_zeros: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data`` for a numeric column."""
    ref_values = np.unique(reference)
    if ref_values.size > 20:
        combined = np.concatenate([reference, current])
        edges = np.histogram_bin_edges(combined, bins="sturges")
        ref_p = np.histogram(reference, edges)[0] / reference.size
        cur_p = np.histogram(current, edges)[0] / current.size
    else:
        keys = np.union1d(ref_values, np.unique(current))
        ref_p = _value_shares(reference, keys)
        cur_p = _value_shares(current, keys)
    if fill_zeros:
        ref_p, cur_p = _fill_zeros(ref_p), _fill_zeros(cur_p)
    return ref_p, cur_p


def _value_shares(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    index = np.searchsorted(keys, values)
    return np.bincount(index, minlength=keys.size) / values.size


def _fill_zeros(shares: np.ndarray) -> np.ndarray:
    """Evidently's replacement of empty bins (so PSI's logarithm stays finite)."""
    shares = shares.astype(np.float64, copy=True)
    nonzero = shares[shares != 0]
    smallest = nonzero.min() if nonzero.size else 1.0
    shares[shares == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return shares


def _divergence(method: str, ref_p: np.ndarray, cur_p: np.ndarray) -> float:
    if method == "psi":
        return float(np.sum((ref_p - cur_p) * np.log(ref_p / cur_p)))
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref_p, cur_p))
