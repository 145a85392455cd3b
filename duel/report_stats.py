"""The statistics of `duel report`, as pure functions of NumPy arrays.

A *curve* is one seed's eval points: `(queries, values)`, sorted by queries, `values` being the
report's metric (win rate, expected win rate, ...). The tests check every function here against
an independent NumPy transcription (tests/duel/test_report.py).

  t_interval            mean and 95% Student-t interval over samples
  queries_to_target     first crossing of a target, interpolated between eval points
  auc                   area under the eval points / budget
  on_grid, band         seeds interpolated onto common query counts; mean and t-band per count
  seed_mean_curve       the mean over seeds, piecewise linear with a knot at every seed's evals
  ratio                 queries / passive's queries, with "not reached" = infinity
  bootstrap_ratio       percentile interval of the queries-to-target ratio, seeds resampled
  paired_difference     same-seed differences: t-interval and bootstrap interval of the mean
  derived_targets       levels evenly between a start and an end value
  collapses             drops between consecutive evals larger than the eval's half-width
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000  # bootstrap resamples
BOOT_SEED = 0  # the bootstrap's RNG seed: a report is reproducible
TOL = 1e-9  # a value this close below a target reaches it

Curve = tuple[np.ndarray, np.ndarray]  # (queries, values) of one seed


def t_interval(x: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval over samples; lo/hi are NaN with fewer than 2."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    from scipy import stats  # here, not at the top: `duel sweep --help` imports this module

    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def queries_to_target(queries: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """First crossing of `target`, interpolated between the eval points around it (the first
    point's queries if it is already at/above); NaN points are skipped; None: not reached.
    A value within TOL below the target counts as reaching it (a seed mean computed in another
    order than the target itself must still reach it)."""
    q, v = np.asarray(queries, float), np.asarray(values, float)
    keep = ~np.isnan(v)
    q, v = q[keep], v[keep]
    above = np.nonzero(v >= target - TOL)[0]
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return float(q[0])
    x = q[i - 1] + (target - v[i - 1]) * (q[i] - q[i - 1]) / (v[i] - v[i - 1])
    return float(min(x, q[i]))  # x > q[i] only when v[i] is within TOL below the target


def auc(queries: np.ndarray, values: np.ndarray, budget: float) -> float:
    """Trapezoid area under the eval points within [0, budget], divided by the budget."""
    queries, values = np.asarray(queries, float), np.asarray(values, float)
    keep = (queries >= 0) & (queries <= budget) & ~np.isnan(values)
    q, w = queries[keep], values[keep]
    if q.size < 2:
        return math.nan
    return float(np.sum((q[1:] - q[:-1]) * (w[1:] + w[:-1]) / 2) / budget)


def on_grid(curves: Sequence[Curve], grid: np.ndarray) -> np.ndarray:
    """[seeds, grid]: each seed linearly interpolated at the grid's query counts; NaN outside
    the seed's first..last eval (never extrapolated)."""
    out = np.full((len(curves), len(grid)), np.nan)
    for k, (q, v) in enumerate(curves):
        q, v = np.asarray(q, float), np.asarray(v, float)
        keep = ~np.isnan(v)
        q, v = q[keep], v[keep]
        if q.size:
            inside = (grid >= q[0]) & (grid <= q[-1])
            out[k, inside] = np.interp(grid[inside], q, v)
    return out


def band(values: np.ndarray, level: float = LEVEL) -> dict[str, np.ndarray]:
    """Mean, t-interval and seed count per column of `on_grid`'s matrix (over covering seeds)."""
    out = {"mean": [], "lo": [], "hi": [], "n": []}
    for col in np.asarray(values, float).T:
        mean, lo, hi = t_interval(col[~np.isnan(col)], level)
        for key, x in zip(out, (mean, lo, hi, int((~np.isnan(col)).sum()))):
            out[key].append(x)
    return {k: np.asarray(x) for k, x in out.items()}


def union_queries(curves: Sequence[Curve]) -> np.ndarray:
    """Every query count at which some seed evaluated, sorted."""
    qs = [np.asarray(q, float) for q, _ in curves]
    return np.unique(np.concatenate(qs)) if qs else np.zeros(0)


def _nanmean_rows(m: np.ndarray) -> np.ndarray:
    """Mean over axis -2 ignoring NaN (NaN where every entry is NaN), without warnings."""
    n = (~np.isnan(m)).sum(-2)
    s = np.where(np.isnan(m), 0.0, m).sum(-2)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def seed_mean_curve(curves: Sequence[Curve]) -> Curve:
    """(queries, mean): the mean over seeds of their linear interpolations, at every query
    count where some seed evaluated (so exact between them); a point averages the seeds whose
    evals cover it."""
    grid = union_queries(curves)
    return grid, _nanmean_rows(on_grid(curves, grid))


def ratio(q: float | None, q_passive: float | None) -> float:
    """q / q_passive with not reached (None) = infinity: inf when only the strategy misses,
    0 when only passive misses, NaN when both miss; both at 0 queries is 1."""
    a = math.inf if q is None else q
    b = math.inf if q_passive is None else q_passive
    if math.isinf(a) and math.isinf(b):
        return math.nan
    if b == 0:
        return 1.0 if a == 0 else math.inf
    return a / b


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap samples: the k-th smallest and the k-th largest of the
    B samples, k = round(B (1 - level) / 2) (at least 1; 50 of 2000 at 95%). Infinity sorts
    last; NaN samples are left out."""
    x = np.sort(np.asarray(samples, float))
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    k = max(1, round(x.size * (1 - level) / 2))
    return float(x[k - 1]), float(x[x.size - k])


def bootstrap_ratio(curves: Sequence[Curve], passive: Sequence[Curve], target: float | None,
                    paired: bool, resamples: int = RESAMPLES, seed: int = BOOT_SEED,
                    level: float = LEVEL) -> dict:
    """Percentile interval of ratio(queries to target on the seed-mean curve, passive's).

    Resample: the strategy's seeds with replacement (`rng.integers(0, n, (resamples, n))` from
    `np.random.default_rng(seed)`); passive's with the same indices when `paired` (same seeds,
    same order), else from a second draw of the same RNG. `target=None` means passive's final
    seed-mean (the mean of its seeds' last values), recomputed in every resample.
    Returns {"lo", "hi", "resamples", "paired", "reached" (share of resamples where the
    strategy reached), "undefined" (share where neither reached)}; NaN with under 2 seeds."""
    if paired and len(curves) != len(passive):
        raise ValueError("paired bootstrap needs the same seeds in both groups")
    if len(curves) < 2 or len(passive) < 2:  # one seed: every resample is the same
        return {"lo": math.nan, "hi": math.nan, "resamples": 0, "paired": paired,
                "reached": math.nan, "undefined": math.nan}
    rng = np.random.default_rng(seed)
    n, n_p = len(curves), len(passive)
    idx = rng.integers(0, n, (resamples, n))
    idx_p = idx if paired else rng.integers(0, n_p, (resamples, n_p))
    grid, grid_p = union_queries(curves), union_queries(passive)
    m, m_p = on_grid(curves, grid), on_grid(passive, grid_p)
    finals_p = np.array([np.asarray(v, float)[~np.isnan(v)][-1] for _, v in passive])
    means, means_p = _nanmean_rows(m[idx]), _nanmean_rows(m_p[idx_p])
    out = np.empty(resamples)
    reached = 0
    for b in range(resamples):
        t = finals_p[idx_p[b]].mean() if target is None else target
        q = queries_to_target(grid, means[b], t)
        reached += q is not None
        out[b] = ratio(q, queries_to_target(grid_p, means_p[b], t))
    lo, hi = percentile_interval(out, level)
    return {"lo": lo, "hi": hi, "resamples": resamples, "paired": paired,
            "reached": reached / resamples, "undefined": float(np.isnan(out).mean())}


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL,
                      resamples: int = RESAMPLES, seed: int = BOOT_SEED) -> dict:
    """Same-seed differences d = a - b: mean, t-interval, and the percentile interval of the
    mean over `resamples` resamples of d (`default_rng(seed).integers(0, n, (resamples, n))`).
    Intervals are NaN with fewer than 2 pairs."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[~np.isnan(d)]
    mean, lo, hi = t_interval(d, level)
    boot_lo = boot_hi = math.nan
    if d.size >= 2:
        idx = np.random.default_rng(seed).integers(0, d.size, (resamples, d.size))
        boot_lo, boot_hi = percentile_interval(d[idx].mean(1), level)
    return {"mean": mean, "lo": lo, "hi": hi, "boot_lo": boot_lo, "boot_hi": boot_hi,
            "n": int(d.size), "per_seed": d.tolist()}


def derived_targets(start: float, end: float, levels: int = 3) -> list[float]:
    """`levels` values evenly between start and end, both excluded (k/(levels+1) of the way)."""
    return [start + (end - start) * k / (levels + 1) for k in range(1, levels + 1)]


def collapses(queries: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              after: float) -> tuple[list[dict], int]:
    """Drops between consecutive evals that both lie at/after `after` queries and fall by more
    than the later eval's half-width (hi - lo) / 2. Returns (drops, pairs checked); a pair
    whose later eval has no interval is not checked."""
    q, v, lo, hi = (np.asarray(x, float) for x in (queries, values, lo, hi))
    drops, checked = [], 0
    for i in range(1, q.size):
        if q[i - 1] < after or np.isnan(v[i - 1]) or np.isnan(v[i]):
            continue
        half = (hi[i] - lo[i]) / 2
        if np.isnan(half):
            continue
        checked += 1
        if v[i - 1] - v[i] > half:
            drops.append({"from_queries": float(q[i - 1]), "to_queries": float(q[i]),
                          "drop": float(v[i - 1] - v[i]), "half_width": float(half)})
    return drops, checked
