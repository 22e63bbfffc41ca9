"""Integer rollout allocators for DRA (Algorithm 1 and App. C-D of DynaMO, arXiv 2602.19208) and their helpers.

Each allocator in :data:`ALLOCATORS` is called as ``fn(weights, budget, n_min, n_max, *, num_samples, n_explore)``
on prompts already sorted by :func:`canonical_order`, with a feasible budget (M·n_min ≤ budget ≤ M·n_max), and
returns int64 counts in [n_min, n_max] summing to the budget. Every tie goes to the earliest position, so the
result is deterministic and permutation-equivariant (see :mod:`dynamo_rl.core.allocation`). Use
:func:`dynamo_rl.core.allocation.allocate`, which validates, orders and checks; these functions do not validate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dynamo_rl.core.registry import Registry

__all__ = [
    "ALLOCATORS",
    "RELATIVE_ZERO",
    "ZERO_PRIORITY",
    "canonical_order",
    "knapsack_counts",
    "knapsack_gain",
    "nan_share",
    "optimal_counts",
    "variance_matched_counts",
    "water_level",
]

Allocator = Callable[..., np.ndarray]
ALLOCATORS: Registry[Allocator] = Registry("allocator")
"""Integer allocators. Each is called as ``fn(weights, budget, n_min, n_max, *, num_samples, n_explore)`` on prompts
already in canonical order, with a feasible budget (M·n_min ≤ budget ≤ M·n_max), and returns int64 counts."""

ZERO_PRIORITY = 1e-8
"""Weights below this are treated as zero by the ``official`` allocator (authors' code)."""


def canonical_order(w: np.ndarray, num_samples: np.ndarray | None) -> np.ndarray:
    """Permutation sorting prompts by (weight descending, NaN last; num_samples ascending; index).

    Dense ranks of both keys are packed with the index into one unique int64 and sorted with numpy's fast
    (SIMD) sort; np.lexsort / stable argsort are 3-10x slower at M = 65,536."""
    m = w.size
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    key = np.where(np.isnan(w), np.inf, -w)
    order = np.argsort(key)
    sorted_key = key[order]
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.concatenate(([0], np.cumsum(sorted_key[1:] != sorted_key[:-1])))
    if num_samples is not None:
        levels = np.unique(num_samples)
        rank = rank * levels.size + np.searchsorted(levels, num_samples)
    if (int(rank.max()) + 1) * m >= 2**62:  # cannot pack (M in the millions): slow exact fallback
        return np.lexsort((np.arange(m), rank))
    return np.sort(rank * m + np.arange(m)) % m


# ---------------------------------------------------------------------------------------------- integer helpers
def _spread(cap: np.ndarray, amount: int) -> np.ndarray:
    """Increments 0 ≤ inc ≤ cap with Σ inc = min(amount, Σ cap), as equal as possible (a capacity-aware round robin);
    leftover units go to the earliest positions. Vectorised: O(L log L)."""
    inc = np.zeros_like(cap)
    total = int(cap.sum())
    if amount <= 0 or cap.size == 0:
        return inc
    if amount >= total:
        return cap.copy()
    s = np.sort(cap)
    length = s.size
    below = np.concatenate(([0], np.cumsum(s)[:-1]))  # Σ s[:j]
    at = below + s * (length - np.arange(length))  # Σ min(cap, s[j])
    j = int(np.searchsorted(at, amount, side="right"))
    level = (amount - int(below[j])) // (length - j)
    inc = np.minimum(cap, level)
    left = amount - int(inc.sum())
    if left:
        inc[np.flatnonzero(cap > level)[:left]] += 1
    return inc


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores; ties go to the earliest positions. O(L)."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= score.size:
        return np.arange(score.size)
    kth = np.partition(score, score.size - k)[score.size - k]
    above = np.flatnonzero(score > kth)
    return np.concatenate((above, np.flatnonzero(score == kth)[: k - above.size]))


def _repair(n: np.ndarray, budget: int, lo: int, hi: int) -> np.ndarray:
    """Authors' final repair: round-robin +1 over n < hi or −1 over n > lo until Σ n = budget (capacity-aware)."""
    diff = budget - int(n.sum())
    if diff > 0:
        n = n + _spread(hi - n, diff)
    elif diff < 0:
        n = n - _spread(n - lo, -diff)
    return n


def _round_to_budget(x: np.ndarray, budget: int, lo: int, hi: int) -> np.ndarray:
    """Largest-remainder rounding of a continuous allocation x ∈ [lo, hi] to integers with Σ = budget."""
    n = np.clip(np.floor(x), lo, hi).astype(np.int64)
    short = budget - int(n.sum())
    if short > 0:
        frac = np.where(n < hi, x - n, -1.0)
        n[_top_k(frac, min(short, int((n < hi).sum())))] += 1
    return _repair(n, budget, lo, hi)


def water_level(weights: np.ndarray, budget: float, n_min: float, n_max: float) -> np.ndarray:
    """Continuous water-filling x_i = clip(λ·w_i, n_min, n_max) with Σ x_i = budget (App. C-D of DynaMO,
    arXiv 2602.19208; the minimiser of Σ w_i²/x_i over *real* x under the bounds, so w = σ gives Eq 5 / Eq 36).
    Rounding it (``waterfill``) is not the integer minimiser; ``optimal`` is.

    ``weights`` (M,) finite ≥ 0. λ is found exactly: Σ clip(λ·w, ·) is piecewise linear in λ with breakpoints
    n_min/w_i and n_max/w_i, so it is evaluated at every breakpoint and interpolated on the right segment
    (O(M log M), one sort of the weights at most).
    Zero weights stay at n_min until every positive weight reached n_max; then they share the rest equally.
    All-zero weights give the uniform share. Requires M·n_min ≤ budget ≤ M·n_max.
    """
    w = np.asarray(weights, dtype=np.float64)
    m = w.size
    if w.ndim != 1 or not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"weights must be a 1-D array of finite values ≥ 0, got {w!r}")
    if not (0 < n_min <= n_max and m * n_min <= budget * (1 + 1e-12) and budget <= m * n_max * (1 + 1e-12)):
        raise ValueError(f"budget={budget!r} must lie in [M·n_min, M·n_max] with 0 < n_min={n_min!r} ≤ "
                         f"n_max={n_max!r} (M={m})")
    x = np.full(m, float(n_min))
    if m and w.max() > 0:  # λ is scale-free; ratios below 1e-250 count as zero so n/w cannot overflow
        w = w / w.max()
        w = np.where(w < 1e-250, 0.0, w)
    pos = w > 0
    n_pos, n_zero = int(pos.sum()), m - int(pos.sum())
    if m == 0:
        return x
    if n_pos == 0:
        return np.full(m, budget / m)
    full = n_pos * n_max + n_zero * n_min
    if budget >= full:  # every positive weight at n_max, zero weights share what is left
        x[pos] = n_max
        if n_zero:
            x[~pos] = n_min + (budget - full) / n_zero
        return x
    target = budget - n_zero * n_min
    wp = w[pos]
    ws = wp[::-1] if np.all(wp[1:] <= wp[:-1]) else np.sort(wp)  # canonical order is already descending
    size = ws.size
    csum = np.concatenate(([0.0], np.cumsum(ws)))
    run_start = np.concatenate(([True], ws[1:] != ws[:-1]))
    below = np.maximum.accumulate(np.where(run_start, np.arange(size), 0))  # #{w < ws_j}
    ratio = n_max / n_min

    def total(lam: np.ndarray, n_low: np.ndarray, first_high: np.ndarray) -> np.ndarray:
        first_high = np.maximum(first_high, n_low)
        f = n_low * n_min + (size - first_high) * n_max + lam * (csum[first_high] - csum[n_low])
        return np.maximum.accumulate(f)  # f is non-decreasing in λ; this only removes rounding noise

    # Breakpoints where prompt j leaves n_min (λ = n_min/w_j) and where it reaches n_max (λ = n_max/w_j), each
    # sequence ascending in λ. At λ = n_min/w_j the prompts below w_j sit at n_min and those with w ≥ ratio·w_j at
    # n_max; symmetrically at λ = n_max/w_j. Sorted queries keep searchsorted cheap; no 2M-element sort needed.
    lam_a = (n_min / ws)[::-1]
    f_a = total(lam_a, below[::-1], np.searchsorted(ws, ratio * ws, side="left")[::-1])
    lam_b = (n_max / ws)[::-1]
    f_b = total(lam_b, np.searchsorted(ws, ws / ratio, side="left")[::-1], below[::-1])
    lower, upper = (0.0, -np.inf), (np.inf, np.inf)  # (f, λ) of the last breakpoint ≤ target, first one above
    for lam, f in ((lam_a, f_a), (lam_b, f_b)):
        i = int(np.searchsorted(f, target, side="right"))
        if i > 0 and lam[i - 1] > lower[1]:
            lower = (f[i - 1], lam[i - 1])
        if i < size and lam[i] < upper[1]:
            upper = (f[i], lam[i])
    if lower[1] == -np.inf:  # rounding noise at the very bottom
        lower = (size * n_min, n_min / ws[-1])
    if upper[1] == np.inf or upper[0] <= lower[0]:
        level = lower[1]
    else:
        level = lower[1] + (target - lower[0]) / (upper[0] - lower[0]) * (upper[1] - lower[1])
    x[pos] = np.clip(level * wp, n_min, n_max)
    return x


# --------------------------------------------------------------------------------------------------- allocators
@ALLOCATORS.register("uniform")
def _uniform(weights: np.ndarray, budget: int, lo: int, hi: int, **_: object) -> np.ndarray:
    """GRPO: budget/M each; the budget mod M extra units go to the earliest prompts in canonical order."""
    m = weights.size
    return lo + _spread(np.full(m, hi - lo, dtype=np.int64), budget - m * lo)


@ALLOCATORS.register("waterfill")
def _waterfill(weights: np.ndarray, budget: int, lo: int, hi: int, **_: object) -> np.ndarray:
    """App. D: n_i = clip(λ·w_i, n_min, n_max), largest-remainder rounding. NaN weights are fixed at the uniform
    share budget/M; the other prompts water-fill the rest. The continuous minimiser of Σ w_i²/n_i, rounded: it misses
    the integer minimiser (``optimal``) in a few % of batches (measured: 2 % at M = 8, 11 % at M = 64, 18 % at
    M = 512, bounds [8, 24]), always by < 0.03 % of Σ w²/n."""
    m = weights.size
    nan = np.isnan(weights)
    x = np.full(m, budget / m)
    if not nan.all():
        rest = (m - int(nan.sum())) * budget / m
        x[~nan] = np.clip(water_level(weights[~nan], rest, lo, hi), lo, hi)
    return _round_to_budget(x, budget, lo, hi)


@ALLOCATORS.register("official")
def _official(
    weights: np.ndarray, budget: int, lo: int, hi: int, *, num_samples: np.ndarray | None = None, n_explore: int = 4,
    **_: object,
) -> np.ndarray:
    """The authors' ``get_rollout_n_per_prompt`` (method-spec §3.4, code variant), vectorised.

    0. n_explore ← max(n_min, n_explore). Without ``num_samples``, NaN-weight prompts count as fresh (G = 0) and the
       others as explored.
    1. Exploration e_i = min(max(0, ⌈n_explore − G_i⌉), n_max); if Σ max(e, n_min) ≤ B every prompt gets
       max(e_i, n_min). Otherwise (authors, when Σe > B) n_i = max(⌊e_i·B/Σe⌋, n_min), or (Σe ≤ B < Σ max(e, n_min),
       where the authors' partial top-up would leave n_i < n_min) n_i = max(e_i, n_min); then the largest n_i are
       lowered one by one until Σ n = B.
    2. The remainder R goes proportionally to the weights of prompts below n_max (floor + largest remainder, capped
       at n_max), repeated until R = 0; weights < 1e-8 and NaN get nothing. Each round caps at least one prompt,
       so there are at most M rounds, each O(M).
    3. No eligible prompt left: capacity-aware round robin over prompts below n_max. Final repair to Σ n = B.
    """
    nx = max(lo, n_explore)
    nan = np.isnan(weights)
    hist = np.where(nan, 0.0, np.inf) if num_samples is None else num_samples
    explore = np.minimum(np.maximum(0, np.ceil(nx - hist)), hi).astype(np.int64)
    n = np.maximum(explore, lo)
    if int(n.sum()) > budget:
        total_explore = int(explore.sum())
        if total_explore > budget:
            n = np.maximum(np.floor(explore * (budget / total_explore)).astype(np.int64), lo)
        if int(n.sum()) > budget:  # lower the largest first (a level from the top); ties: earliest first, like argmax
            n = _spread(n[::-1], budget)[::-1].copy()
    rest = budget - int(n.sum())
    w = np.where(nan | (weights < ZERO_PRIORITY), 0.0, weights)
    while rest > 0:
        idx = np.flatnonzero((n < hi) & (w > ZERO_PRIORITY))
        if idx.size == 0:
            n = n + _spread(hi - n, rest)
            break
        we = w[idx]
        ideal = rest * (we / we.sum())
        add = np.floor(ideal).astype(np.int64)
        left = rest - int(add.sum())
        if left > 0:
            add[_top_k(ideal - add, left)] += 1
        elif left < 0:  # floating-point overshoot (never seen): take the excess back
            add = add - _spread(add, -left)
        add = np.minimum(add, hi - n[idx])
        n[idx] += add
        rest -= int(add.sum())
    return _repair(n, budget, lo, hi)


# ------------------------------------------------------------------------------ exact integer (greedy) allocators
# Every objective below is separable with non-increasing marginal gains per prompt, so picking the largest marginal
# gains one unit at a time is exact. The units are ordered by (gain descending, n ascending, position ascending);
# the first k units are the optimum for every k, nested in k. Instead of a heap over units, a threshold T on the gain
# is searched: level(T)_i = n_min + #{n ∈ [n_min, n_max): gain_i(n) > T} takes every unit above T. Two thresholds
# that bracket the answer leave a narrow band of units, which are materialised and sorted exactly (ties included).

RELATIVE_ZERO = 1e-100
"""``optimal``: weights below this fraction of the largest weight count as zero (their squares would underflow)."""

_BAND_CAP = 4096
"""Bracket the threshold until at most this many units lie between the two levels (or the gains tie)."""


def nan_share(num_nan: int, budget: int, m: int) -> np.ndarray:
    """Counts of the ``num_nan`` prompts without history (NaN weight) among ``m`` with total ``budget``: together
    round(num_nan·budget/m) (halves up, exact integer arithmetic), i.e. the uniform share B/M of ``waterfill``, split
    as ⌊·⌋ or ⌈·⌉ with the extra units to the earliest of them (canonical order). When B/M is an integer every one
    gets exactly B/M. Stays within [n_min, n_max] whenever M·n_min ≤ budget ≤ M·n_max."""
    if num_nan == 0:
        return np.zeros(0, dtype=np.int64)
    total = (2 * num_nan * budget + m) // (2 * m)
    q, r = divmod(total, num_nan)
    out = np.full(num_nan, q, dtype=np.int64)
    out[:r] += 1
    return out


def _units(lo_n: np.ndarray, hi_n: np.ndarray, gain: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple:
    """Units (i, n), lo_n[i] ≤ n < hi_n[i], in greedy order (gain desc, n asc, i asc): arrays (i, gain)."""
    k = (hi_n - lo_n).astype(np.int64)
    total = int(k.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx = np.repeat(np.arange(k.size), k)
    start = np.cumsum(k) - k
    nn = lo_n[idx] + (np.arange(total) - start[idx])
    g = gain(idx, nn.astype(np.float64))
    order = np.lexsort((idx, nn, -g))
    return idx[order], g[order]


def _bracket(level: Callable[[float], np.ndarray], enough: Callable[[np.ndarray], bool], t0: float,
             t_top: float, t_bottom: float) -> tuple[np.ndarray, np.ndarray]:
    """Levels (n_a, n_b) with ``enough(n_b)``, not ``enough(n_a)`` (or n_a at the top level) and a narrow band.

    ``level(T)`` is non-increasing in T; ``level(t_top)`` is all n_min, ``level(t_bottom)`` all n_max, and
    ``enough(level(t_bottom))`` must hold. Starts at the guess t0, widens by squaring factors, then bisects
    geometrically until ≤ ``_BAND_CAP`` units lie in the band or the thresholds meet (tied gains)."""
    t0 = min(max(t0, t_bottom), t_top) if math.isfinite(t0) and t0 > 0 else math.sqrt(t_top * t_bottom)
    n0 = level(t0)
    ok0 = enough(n0)
    (ta, na), (tb, nb) = ((None, None), (t0, n0)) if ok0 else ((t0, n0), (None, None))
    factor = 1.25
    while ta is None or tb is None:
        if ta is None:
            t = min(tb * factor, t_top)
            n = level(t)
            if enough(n) and t < t_top:
                tb, nb = t, n
            else:
                ta, na = t, n
        else:
            t = max(ta / factor, t_bottom)
            n = level(t)
            if enough(n) or t <= t_bottom:
                tb, nb = t, n
            else:
                ta, na = t, n
        factor *= factor
    band, stalled = int(nb.sum() - na.sum()), 0
    for _ in range(200):
        if band <= _BAND_CAP or stalled >= 4:  # narrow enough, or only tied gains are left in the band
            break
        t = math.sqrt(ta * tb)
        if not tb < t < ta:
            break
        n = level(t)
        if enough(n):
            tb, nb = t, n
        else:
            ta, na = t, n
        new_band = int(nb.sum() - na.sum())
        stalled = stalled + 1 if new_band == band else 0
        band = new_band
    return na, nb


def _sq_level(s2: np.ndarray, lo: int, hi: int) -> Callable[[float], np.ndarray]:
    """level(T) for gains s2_i/(n(n+1)): the smallest n ∈ [lo, hi] with n = hi or s2/(n(n+1)) ≤ T (float64)."""

    def level(t: float) -> np.ndarray:
        with np.errstate(divide="ignore", over="ignore"):
            n = np.ceil(np.sqrt(s2 / t + 0.25) - 0.5) if t > 0 else np.full(s2.size, float(hi))
        n = np.clip(n, lo, hi)
        for _ in range(8):  # the closed form is off by one at most near ties; make it exact for float64 gains
            up = (n < hi) & (s2 / (n * (n + 1)) > t)
            with np.errstate(divide="ignore"):
                down = (n > lo) & (s2 / ((n - 1) * n) <= t)
            if not (up.any() or down.any()):
                break
            n = n + up - down
        return n

    return level


def _optimal_positive(s: np.ndarray, total: int, lo: int, hi: int) -> np.ndarray:
    """Exact integer argmin Σ s_i²/n_i, Σ n = total, n ∈ [lo, hi]; s > 0 (≤ 1), lo·size ≤ total ≤ hi·size."""
    m = s.size
    if total <= m * lo or lo == hi:
        return np.full(m, lo, dtype=np.int64)
    if total >= m * hi:
        return np.full(m, hi, dtype=np.int64)
    s2 = s * s
    x = water_level(s, total, lo, hi)
    inner = (x > lo * (1 + 1e-12)) & (x < hi * (1 - 1e-12))
    lam = x[inner].sum() / s[inner].sum() if inner.any() else float(np.median(x / s))
    level = _sq_level(s2, lo, hi)
    n_a, n_b = _bracket(level, lambda n: n.sum() >= total, 1.0 / (lam * lam),
                        float(s2.max()) / (lo * (lo + 1.0)) * 2, float(s2.min()) / (hi * (hi - 1.0)) / 2
                        if hi > 1 else 0.0)
    need = total - int(n_a.sum())
    n = n_a.astype(np.int64)
    if need > 0:
        idx, _ = _units(n_a, n_b, lambda i, nn: s2[i] / (nn * (nn + 1)))
        n += np.bincount(idx[:need], minlength=m)
    return n


def optimal_counts(weights: np.ndarray, budget: int, lo: int, hi: int) -> np.ndarray:
    """Exact integer minimiser of Σ w_i²/n_i subject to Σ n_i = budget, n_min ≤ n_i ≤ n_max (weights finite ≥ 0,
    canonical order, feasible budget). Zero weights (and weights < 1e-100 × the largest) stay at n_min until every
    positive weight is at n_max, then share the rest as equally as possible; all-zero weights give uniform."""
    m = weights.size
    n = np.full(m, lo, dtype=np.int64)
    rest = budget - m * lo
    if m == 0 or rest <= 0:
        return n
    top = float(weights.max())
    pos = weights > top * RELATIVE_ZERO if top > 0 else np.zeros(m, dtype=bool)
    n_pos = int(pos.sum())
    if rest >= n_pos * (hi - lo):
        n[pos] = hi
        n[~pos] += _spread(np.full(m - n_pos, hi - lo, dtype=np.int64), rest - n_pos * (hi - lo))
        return n
    n[pos] = _optimal_positive(weights[pos] / top, n_pos * lo + rest, lo, hi)
    return n


@ALLOCATORS.register("optimal")
def _optimal(weights: np.ndarray, budget: int, lo: int, hi: int, **_: object) -> np.ndarray:
    """Exact integer minimiser of Σ w_i²/n_i under the bounds (``waterfill`` rounds the continuous minimiser and
    misses the integer optimum in a few % of cases). NaN weights get the uniform share (:func:`nan_share`); the other
    prompts are optimised over the rest of the budget."""
    m = weights.size
    nan = np.isnan(weights)
    n = np.empty(m, dtype=np.int64)
    n[nan] = nan_share(int(nan.sum()), budget, m)
    n[~nan] = optimal_counts(weights[~nan], budget - int(n[nan].sum()), lo, hi)
    return n


def variance_matched_counts(sigma: np.ndarray, budget_cap: int, lo: int, hi: int,
                            target: float) -> tuple[np.ndarray, bool]:
    """Smallest-budget variance-optimal integer allocation with Σ σ_i²/n_i ≤ target (σ finite ≥ 0, canonical order).

    The optimal allocations of :func:`optimal_counts` are nested in the budget (greedy on marginal gains), so the
    variance falls monotonically unit by unit; the first prefix of the greedy order that reaches the target is the
    smallest budget b ≥ M·n_min and its optimum. Returns (counts, target met). If even ``budget_cap`` misses the
    target, its optimum is returned with False. A relative tolerance of 1e-10 absorbs rounding in the sums."""
    m = sigma.size
    full = optimal_counts(sigma, budget_cap, lo, hi)
    s2 = sigma * sigma
    tol = target * (1 + 1e-10)
    if m == 0:
        return full, True
    if float((s2 / full).sum()) > tol:
        return full, False
    base = float((s2 / lo).sum())
    n = np.full(m, lo, dtype=np.int64)
    if base <= tol:
        return n, True
    top = float(sigma.max())
    pos = sigma > top * RELATIVE_ZERO
    s = sigma[pos] / top
    q2 = s * s
    goal = target / (top * top)
    level = _sq_level(q2, lo, hi)

    def variance(nn: np.ndarray) -> float:
        return float((q2 / nn).sum())

    lam = float(s.sum()) / goal  # unbounded optimum n = λσ reaches Σσ/λ = goal
    n_a, n_b = _bracket(level, lambda nn: variance(nn) <= goal * (1 + 1e-10), 1.0 / (lam * lam),
                        float(q2.max()) / (lo * (lo + 1.0)) * 2, float(q2.min()) / (hi * (hi - 1.0)) / 2
                        if hi > 1 else 0.0)
    idx, g = _units(n_a, n_b, lambda i, nn: q2[i] / (nn * (nn + 1)))
    excess = variance(n_a) - goal * (1 + 1e-10)
    take = min(int(np.searchsorted(np.cumsum(g), excess, side="left")) + 1, idx.size)
    sub = n_a.astype(np.int64) + np.bincount(idx[:take], minlength=s.size)
    while take < idx.size and variance(sub) > goal * (1 + 1e-10):  # cumsum vs direct sum: rounding only
        sub[idx[take]] += 1
        take += 1
    n[pos] = sub
    return n, True


def _fill_levels(n: np.ndarray, hi: int, amount: int) -> np.ndarray:
    """Add ``amount`` units one at a time to the lowest n_i below ``hi`` (ties: earliest position), i.e. raise the
    lowest levels first. Vectorised: binary search on the level L reached by everyone."""
    if amount <= 0:
        return n
    lo_l, hi_l = int(n.min()), hi  # Σ clip(L − n, 0, hi − n) is non-decreasing in L
    while lo_l < hi_l:
        mid = (lo_l + hi_l + 1) // 2
        if int(np.clip(mid - n, 0, hi - n).sum()) <= amount:
            lo_l = mid
        else:
            hi_l = mid - 1
    out = np.maximum(n, np.minimum(lo_l, hi))
    left = amount - int((out - n).sum())
    if left:
        out[np.flatnonzero(out == lo_l)[:left]] += 1  # out == L < hi here whenever units are left
    return out


def knapsack_gain(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Value(n+1, p) − Value(n, p) = p(1−p)²·(pⁿ(1−p) + (1−p)ⁿp) for Knapsack RL's value (Li et al. 2025,
    arXiv 2509.25849): non-increasing in n, so Value is concave in n and a greedy on these gains is exact."""
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        pn = np.where(p > 0, np.exp(n * np.log(np.where(p > 0, p, 1.0))), 0.0)
        qn = np.where(q > 0, np.exp(n * np.log(np.where(q > 0, q, 1.0))), 0.0)
    return p * q * q * (pn * q + qn * p)


_KNAPSACK_MATRIX = 1 << 22
"""``knapsack`` materialises all M·(n_max − n_min) marginal gains up to this many; above, it brackets a threshold."""


def knapsack_counts(p: np.ndarray, budget: int, lo: int, hi: int) -> np.ndarray:
    """Exact integer maximiser of Σ Value(n_i, p_i), Value(n, p) = (1 − pⁿ − (1−p)ⁿ)·p(1−p)² (Knapsack RL, Li et
    al. 2025), subject to Σ n_i = budget, n_i ∈ [lo, hi] (p ∈ [0, 1], canonical order). Value never decreases in n,
    so spending the whole budget is optimal; units of zero gain (p ∈ {0, 1}, or gains that underflow) go round robin,
    lowest n first, earliest prompt first."""
    m = p.size
    rest = budget - m * lo
    n = np.full(m, lo, dtype=np.int64)
    if m == 0 or rest <= 0 or lo == hi:
        return n
    width = hi - lo
    if m * width <= _KNAPSACK_MATRIX:
        values, inverse = np.unique(p, return_inverse=True)  # p̂ = c/n repeats a lot: compute each gain row once
        steps = np.arange(lo, hi, dtype=np.float64)
        flat = knapsack_gain(values[:, None], steps[None, :])[inverse.ravel()].T.ravel()  # n-major: (n asc, i asc)
        where = np.flatnonzero(flat > 0)  # zero-gain units are handled by level filling (many ties slow partition)
        if where.size <= rest:
            n = n + np.bincount(where % m, minlength=m)
            return _fill_levels(n, hi, budget - int(n.sum()))
        vals = flat[where]
        kth = np.partition(vals, vals.size - rest)[vals.size - rest]  # the rest-th largest gain
        above = vals > kth
        chosen = where[above]
        ties = where[vals == kth]  # already in (n asc, i asc) order
        chosen = np.concatenate((chosen, ties[: rest - chosen.size]))
        return n + np.bincount(chosen % m, minlength=m)

    def level(t: float) -> np.ndarray:  # smallest n ∈ [lo, hi] with n = hi or gain(n) ≤ t, by binary search
        a = np.full(m, float(lo))
        b = np.full(m, float(hi))
        while (a < b).any():
            active = a < b
            mid = np.floor((a + b) / 2)
            low = knapsack_gain(p, np.minimum(mid, hi - 1.0)) <= t
            b = np.where(active & low, mid, b)
            a = np.where(active & ~low, mid + 1, a)
        return a

    n_pos = level(0.0)  # every unit of positive gain
    if int(n_pos.sum()) <= budget:
        return _fill_levels(n_pos.astype(np.int64), hi, budget - int(n_pos.sum()))
    last = n_pos > lo
    bottom = float(knapsack_gain(p[last], n_pos[last] - 1.0).min()) / 2  # below the smallest positive gain
    top = float(knapsack_gain(p, np.full(m, float(lo))).max()) * 2
    n_a, n_b = _bracket(level, lambda nn: nn.sum() >= budget, math.sqrt(top * bottom), top, bottom)
    idx, _ = _units(n_a, n_b, lambda i, nn: knapsack_gain(p[i], nn))
    out = n_a.astype(np.int64)
    return out + np.bincount(idx[: budget - int(n_a.sum())], minlength=m)
