"""Slow, loop-based reference implementations of the allocation rules (test oracles, plain Python).

They follow method-spec §3.3-3.4 literally, one unit at a time, with the tie rule documented for
``dynamo_rl.core.allocation``: prompts sorted by (weight descending, NaN last; num_samples ascending; index), and
every tie goes to the earliest prompt in that order.
"""

from __future__ import annotations

import math

import numpy as np


def reference_bernoulli_variance(c: float, n: float) -> float:
    if n < 2:
        return math.nan
    p = c / n
    return p * (1 - p) * n / (n - 1)


def reference_priority(c: float, n: float, *, proxy_power=1.0, min_history=4, weight_floor=0.01,
                       mastery_threshold=0.85, tie_breaker=1e-6) -> float:
    if n < min_history:
        return math.nan
    acc = c / n
    if mastery_threshold is not None and acc >= mastery_threshold:
        return weight_floor if weight_floor is not None else 0.0
    w = reference_bernoulli_variance(c, n) ** proxy_power + tie_breaker * (1 - acc)
    return max(w, weight_floor) if weight_floor is not None else w


def canonical_order(weights, num_samples=None) -> list[int]:
    def key(i):
        w = weights[i]
        g = 0.0 if num_samples is None else num_samples[i]
        return (math.isnan(w), 0.0 if math.isnan(w) else -w, g, i)

    return sorted(range(len(weights)), key=key)


def _round_robin(n: list[int], amount: int, can, step: int) -> None:
    """Cycle over positions in order, +step to each that ``can`` take it, until ``amount`` units are moved."""
    while amount > 0:
        moved = False
        for i in range(len(n)):
            if amount == 0:
                break
            if can(i):
                n[i] += step
                amount -= 1
                moved = True
        if not moved:
            raise AssertionError("round robin found no capacity")


def reference_official(weights, budget, n_min, n_max, num_samples=None, n_explore=4) -> list[int]:
    """The authors' get_rollout_n_per_prompt, unit by unit, with the documented bound-keeping deviation."""
    m = len(weights)
    order = canonical_order(weights, num_samples)
    w = [float(weights[i]) for i in order]
    if num_samples is None:
        hist = [0.0 if math.isnan(x) else math.inf for x in w]
    else:
        hist = [float(num_samples[i]) for i in order]
    lo, hi = n_min, n_max
    budget = min(max(budget, m * lo), m * hi)
    nx = max(lo, n_explore)
    explore = [0 if g == math.inf else min(max(0, math.ceil(nx - g)), hi) for g in hist]
    n = [max(e, lo) for e in explore]
    if sum(n) > budget:
        if sum(explore) > budget:
            scale = budget / sum(explore)
            n = [max(math.floor(e * scale), lo) for e in explore]
        while sum(n) > budget:  # decrement the currently largest (earliest on ties)
            cand = [i for i in range(m) if n[i] > lo]
            j = max(cand, key=lambda i: (n[i], -i))
            n[j] -= 1
    rest = budget - sum(n)
    wz = [0.0 if math.isnan(x) or x < 1e-8 else x for x in w]
    while rest > 0:
        elig = [i for i in range(m) if n[i] < hi and wz[i] > 1e-8]
        if not elig:
            _round_robin(n, rest, lambda i: n[i] < hi, +1)
            rest = 0
            break
        total = float(np.sum(np.array([wz[i] for i in elig])))
        ideal = {i: rest * (wz[i] / total) for i in elig}
        add = {i: math.floor(ideal[i]) for i in elig}
        left = rest - sum(add.values())
        by_frac = sorted(elig, key=lambda i: (-(ideal[i] - add[i]), i))
        for i in by_frac[:left]:
            add[i] += 1
        for i in elig:
            a = min(add[i], hi - n[i])
            n[i] += a
            rest -= a
    diff = budget - sum(n)
    if diff > 0:
        _round_robin(n, diff, lambda i: n[i] < hi, +1)
    elif diff < 0:
        _round_robin(n, -diff, lambda i: n[i] > lo, -1)
    out = [0] * m
    for pos, i in enumerate(order):
        out[i] = n[pos]
    return out


def reference_water_level(weights, budget, n_min, n_max, iters=120) -> list[float]:
    """Continuous water-filling by bisection on λ (zero weights stay at n_min unless everything else is full)."""
    pos = [w > 0 for w in weights]
    if not any(pos):
        return [budget / len(weights)] * len(weights)
    full = sum(n_max if p else n_min for p in pos)
    if budget >= full:
        zeros = len(weights) - sum(pos)
        return [n_max if p else n_min + (budget - full) / zeros for p in pos]

    def total(lam):
        return sum(min(max(lam * w, n_min), n_max) if p else n_min for w, p in zip(weights, pos))

    a, b = 0.0, 1.0
    while total(b) < budget:
        b *= 2
    for _ in range(iters):
        mid = (a + b) / 2
        a, b = (mid, b) if total(mid) < budget else (a, mid)
    lam = (a + b) / 2
    return [min(max(lam * w, n_min), n_max) if p else n_min for w, p in zip(weights, pos)]
