"""Integer rollout allocators for DRA (Algorithm 1 and App. C-D of DynaMO, arXiv 2602.19208) and their helpers.

Each allocator in :data:`ALLOCATORS` is called as ``fn(weights, budget, n_min, n_max, *, num_samples, n_explore)``
on prompts already sorted by :func:`canonical_order`, with a feasible budget (M·n_min ≤ budget ≤ M·n_max), and
returns int64 counts in [n_min, n_max] summing to the budget. Every tie goes to the earliest position, so the
result is deterministic and permutation-equivariant (see :mod:`dynamo_rl.core.allocation`). Use
:func:`dynamo_rl.core.allocation.allocate`, which validates, orders and checks; these functions do not validate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dynamo_rl.core.registry import Registry

__all__ = ["ALLOCATORS", "ZERO_PRIORITY", "canonical_order", "water_level"]

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
    arXiv 2602.19208; the minimiser of Σ w_i²/x_i under the bounds, so w = σ gives Eq 5 / Eq 36).

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
    share budget/M; the other prompts water-fill the rest."""
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
