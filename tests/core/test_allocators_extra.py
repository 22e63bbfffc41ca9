"""Allocators beyond DynaMO's: exact integer ``optimal`` (Eq 5 / Eq 36 with integer n), ``variance_matched`` (Eq 44
read backwards: the fewest rollouts that match uniform's estimator variance) and ``knapsack`` (Knapsack RL, Li et al.
2025, arXiv 2509.25849), checked against their formulas, brute force and independent references."""

from __future__ import annotations

import heapq
import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.core import allocators as core_allocators
from dynamo_rl.core.allocation import (
    ALLOCATOR_NAMES,
    ALLOCATORS,
    HISTORY_ALLOCATORS,
    allocate,
    allocate_rollouts,
    bernoulli_variance,
    knapsack_value,
    optimal_variance_ratio,
    priorities,
)
from dynamo_rl.core.allocators import (
    knapsack_counts,
    knapsack_gain,
    nan_share,
    optimal_counts,
    variance_matched_counts,
)
from dynamo_rl.method_config import AllocationConfig

SPEC_WEIGHTS = [0.01, 0.117, 0.229, 0.267, 0.229, 0.01, 0.01, 0.163]


# ----------------------------------------------------------------------------------------------- references
def objective(w, n) -> float:
    w = np.asarray(w, dtype=float)
    return float((w * w / np.asarray(n, dtype=float)).sum())


def vectors(m, lo, hi, total):
    """Every integer vector in [lo, hi]^m with the given sum."""
    return [n for n in itertools.product(range(lo, hi + 1), repeat=m) if sum(n) == total]


def brute_min(w, budget, lo, hi) -> float:
    return min(objective(w, n) for n in vectors(len(w), lo, hi, budget))


def heap_greedy(w, budget, lo, hi) -> np.ndarray:
    """Textbook greedy with a heap: repeatedly give one rollout where w²/n − w²/(n+1) is largest."""
    n = [lo] * len(w)
    heap = [(-(wi * wi) / (lo * (lo + 1)), i) for i, wi in enumerate(w) if hi > lo]
    heapq.heapify(heap)
    for _ in range(budget - lo * len(w)):
        _, i = heapq.heappop(heap)
        n[i] += 1
        if n[i] < hi:
            heapq.heappush(heap, (-(w[i] ** 2) / (n[i] * (n[i] + 1)), i))
    return np.array(n)


def value(p, n) -> float:
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    return float(((1 - p**n - (1 - p) ** n) * p * (1 - p) ** 2).sum())


def knapsack_dp(p, budget, lo, hi) -> float:
    """Knapsack RL's dynamic programme: best Σ Value(N_i, p_i) with Σ N_i ≤ budget, N_i ∈ [lo, hi]."""
    best = {0: 0.0}
    for pi in p:
        nxt: dict[int, float] = {}
        for used, v in best.items():
            for n in range(lo, hi + 1):
                if used + n <= budget:
                    cand = v + value([pi], [n])
                    if cand > nxt.get(used + n, -1.0):
                        nxt[used + n] = cand
        best = nxt
    return max(best.values())


# -------------------------------------------------------------------------------------------------- optimal
def test_optimal_beats_waterfill_on_the_issue_example():
    assert allocate([0.36, 0.94], 9, 1, 8, method="waterfill").tolist() == [2, 7]
    assert allocate([0.36, 0.94], 9, 1, 8, method="optimal").tolist() == [3, 6]
    assert objective([0.36, 0.94], [3, 6]) < objective([0.36, 0.94], [2, 7])
    assert objective([0.36, 0.94], [3, 6]) == pytest.approx(brute_min([0.36, 0.94], 9, 1, 8), rel=1e-15)


def test_optimal_matches_brute_force_on_every_small_case():
    """All integer vectors for M ≤ 4 and small budgets: the optimum value is attained (ties may differ)."""
    rng = np.random.default_rng(11)
    cases = 0
    for _ in range(500):
        m = int(rng.integers(1, 5))
        lo = int(rng.integers(1, 4))
        hi = lo + int(rng.integers(0, 6))
        budget = int(rng.integers(m * lo, m * hi + 1))
        kind = int(rng.integers(0, 3))
        w = (rng.random(m), rng.choice([0.0, 0.1, 0.3, 1.0], m), rng.random(m) ** 4)[kind]
        n = allocate(w, budget, lo, hi, "optimal")
        assert n.sum() == budget and n.min() >= lo and n.max() <= hi
        assert objective(w, n) <= brute_min(w, budget, lo, hi) * (1 + 1e-12) + 1e-300, (w, budget, lo, hi, n)
        cases += 1
    assert cases == 500


def test_optimal_matches_heap_greedy_on_larger_cases():
    rng = np.random.default_rng(12)
    for _ in range(60):
        m = int(rng.integers(5, 400))
        lo = int(rng.integers(1, 10))
        hi = lo + int(rng.integers(0, 30))
        budget = int(rng.integers(m * lo, m * hi + 1))
        w = rng.random(m) ** rng.choice([1, 3, 8]) * (rng.random(m) < 0.9)
        got = allocate(w, budget, lo, hi, "optimal")
        ref = heap_greedy(list(w), budget, lo, hi)
        assert objective(w, got) == pytest.approx(objective(w, ref), rel=1e-12, abs=1e-300)
        assert got.sum() == budget


def test_optimal_is_never_worse_than_waterfill_and_sometimes_better():
    rng = np.random.default_rng(13)
    better = 0
    for _ in range(200):
        m = 64
        n_hist = rng.choice([4, 8, 16, 32], size=m).astype(float)
        c = rng.binomial(n_hist.astype(int), rng.beta(0.5, 0.5, m)).astype(float)
        w = np.sqrt(bernoulli_variance(c, n_hist))
        wf, opt = allocate(w, 16 * m, 8, 24, "waterfill"), allocate(w, 16 * m, 8, 24, "optimal")
        assert objective(w, opt) <= objective(w, wf) * (1 + 1e-12)
        assert objective(w, wf) <= objective(w, opt) * (1 + 1e-3)  # waterfill misses by a hair, if at all
        better += objective(w, opt) < objective(w, wf) * (1 - 1e-12)
    assert 0 < better < 200


def test_optimal_spec_weights_and_uniform_cases():
    for w in (SPEC_WEIGHTS, np.sqrt(SPEC_WEIGHTS)):
        n = allocate(w, 128, 8, 24, "optimal")
        assert objective(w, n) == pytest.approx(brute_min_fast(w, 128, 8, 24), rel=1e-12)
    assert allocate(np.full(10, 0.2), 160, 8, 24, "optimal").tolist() == [16] * 10
    assert allocate(np.zeros(10), 160, 8, 24, "optimal").tolist() == [16] * 10
    assert sorted(allocate(np.full(10, 0.2), 165, 8, 24, "optimal").tolist()) == [16] * 5 + [17] * 5
    # zero weights stay at n_min until every positive weight is at n_max, then share the rest equally
    assert allocate([1.0, 0.0, 0.0], 44, 8, 24, "optimal").tolist() == [24, 10, 10]
    assert allocate([1.0, 1e-300], 32, 8, 24, "optimal").tolist() == [24, 8]


def brute_min_fast(w, budget, lo, hi) -> float:
    return objective(w, heap_greedy(list(w), budget, lo, hi))


def test_optimal_nan_weights_get_the_uniform_share_like_waterfill():
    w = [np.nan, np.nan, 0.3, 0.01, 0.2, 0.0]
    n = allocate(w, 96, 8, 24, "optimal")
    assert n[:2].tolist() == allocate(w, 96, 8, 24, "waterfill")[:2].tolist() == [16, 16]
    assert n.sum() == 96 and n[2] >= n[4] >= n[3] >= n[5] == 8
    known = [0.3, 0.01, 0.2, 0.0]
    assert objective(known, n[2:]) == pytest.approx(brute_min_fast(known, 64, 8, 24), rel=1e-12)
    # B/M not an integer: together round(k·B/M), halves up, split ⌊·⌋/⌈·⌉ with the extra to the earliest NaN prompt
    assert allocate([np.nan, 0.5, 0.1], 40, 8, 24, "optimal")[0] == 13  # 40/3 = 13.33
    two = allocate([np.nan, np.nan, 0.5], 40, 8, 24, "optimal")  # 80/3 = 26.67 → 27 = 14 + 13
    assert two[:2].tolist() == [14, 13] and two.sum() == 40
    assert nan_share(3, 50, 4).tolist() == [13, 13, 12]  # 3·50/4 = 37.5 → 38
    assert nan_share(0, 50, 4).size == 0 and nan_share(4, 64, 4).tolist() == [16] * 4


def test_optimal_counts_helper_edge_cases():
    assert optimal_counts(np.array([]), 0, 8, 24).tolist() == []
    assert optimal_counts(np.array([0.5, 0.2]), 16, 8, 24).tolist() == [8, 8]
    assert optimal_counts(np.array([0.5, 0.2]), 48, 8, 24).tolist() == [24, 24]
    assert optimal_counts(np.array([0.5, 0.2]), 30, 15, 15).tolist() == [15, 15]


def test_optimal_is_fast_at_65536_prompts():
    rng = np.random.default_rng(14)
    m = 65_536
    n_hist = rng.choice([0, 2, 8, 16, 32, 48], size=m, p=[0.1, 0.05, 0.25, 0.3, 0.2, 0.1]).astype(float)
    c = rng.binomial(n_hist.astype(np.int64), rng.beta(0.4, 0.4, m)).astype(float)
    w = priorities(c, n_hist, proxy_power=0.5)
    allocate(w, 16 * m, 8, 24, "optimal")
    t0 = time.process_time()
    n = allocate(w, 16 * m, 8, 24, "optimal")
    assert time.process_time() - t0 < 2.0  # ~30 ms on one core; generous for a loaded CI machine
    assert n.sum() == 16 * m and n.min() >= 8 and n.max() <= 24
    known = ~np.isnan(w)
    wf = allocate(w, 16 * m, 8, 24, "waterfill")
    assert objective(w[known], n[known]) <= objective(w[known], wf[known]) * (1 + 1e-12)


@st.composite
def weight_cases(draw, distinct=False):
    m = draw(st.integers(1, 30))
    if distinct:
        w = draw(st.lists(st.floats(1e-6, 1, allow_nan=False), min_size=m, max_size=m, unique=True))
    else:
        w = draw(st.lists(st.one_of(st.floats(0, 1, allow_nan=False), st.just(math.nan), st.sampled_from([0.0, 0.2])),
                          min_size=m, max_size=m))
    lo = draw(st.integers(1, 10))
    hi = draw(st.integers(lo, lo + 20))
    budget = draw(st.integers(m * lo, m * hi))
    return np.array(w, dtype=float), budget, lo, hi


@settings(max_examples=200, deadline=None)
@given(weight_cases())
def test_optimal_properties(case):
    w, budget, lo, hi = case
    n = allocate(w, budget, lo, hi, "optimal")
    assert n.dtype == np.int64 and n.sum() == budget and n.min() >= lo and n.max() <= hi
    nan = np.isnan(w)
    assert n[nan].sum() == (2 * int(nan.sum()) * budget + w.size) // (2 * w.size)
    if not nan.any():
        wf = allocate(w, budget, lo, hi, "waterfill")
        assert objective(w, n) <= objective(w, wf) * (1 + 1e-12) + 1e-300
        assert objective(w, n) <= objective(w, heap_greedy(list(w), budget, lo, hi)) * (1 + 1e-12) + 1e-300


@settings(max_examples=150, deadline=None)
@given(weight_cases(distinct=True), st.randoms(use_true_random=False))
def test_optimal_permutation_equivariant_and_monotone(case, rnd):
    w, budget, lo, hi = case
    perm = np.array(rnd.sample(range(w.size), w.size))
    n = allocate(w, budget, lo, hi, "optimal")
    np.testing.assert_array_equal(allocate(w[perm], budget, lo, hi, "optimal"), n[perm])
    order = np.argsort(-w, kind="stable")
    assert np.all(np.diff(n[order]) <= 0)  # a larger weight never gets fewer rollouts


# ----------------------------------------------------------------------------------------- variance_matched
def test_variance_matched_hand_worked():
    """σ = √P from history; target = Σσ²/n̄ over prompts with history; NaN prompts get n̄, σ = 0 prompts n_min."""
    c, n = [0, 16, 8, 3, 2, 0], [16, 16, 16, 16, 3, 0]
    res = allocate_rollouts(c, n, budget=96, allocator="variance_matched")
    s2 = np.array([8 * 8 / (16 * 15), 3 * 13 / (16 * 15)])  # Eq 6
    assert res.num_rollouts.tolist() == [8, 8, 18, 14, 16, 16]
    assert res.budget == 80 and res.rollouts_saved == 16 and res.requested_budget == 96
    assert res.target_met is True and res.notes == ()
    assert res.uniform_variance == pytest.approx(s2.sum() / 16)
    assert res.estimator_variance == pytest.approx(s2[0] / 18 + s2[1] / 14)
    assert res.estimator_variance <= res.uniform_variance
    for fewer in ([17, 14], [18, 13]):  # one rollout less misses the target either way
        assert (s2 / fewer).sum() > res.uniform_variance
    np.testing.assert_allclose(res.weights[:4], np.sqrt(bernoulli_variance(c[:4], n[:4])))
    assert np.isnan(res.weights[4:]).all()
    m = res.metrics()
    assert m["rollouts_saved"] == 16 and m["target_met"] == 1.0 and m["budget_adjusted"] == 0.0
    assert m["variance_ratio"] == pytest.approx(res.estimator_variance / res.uniform_variance)


def test_variance_matched_brute_force():
    """Smallest budget b ≤ B whose best integer allocation meets ρ·Σσ²/(B/M); all vectors for M ≤ 4."""
    rng = np.random.default_rng(21)
    for _ in range(300):
        m = int(rng.integers(1, 5))
        lo = int(rng.integers(1, 4))
        hi = lo + int(rng.integers(0, 5))
        budget = int(rng.integers(m * lo, m * hi + 1))
        s = rng.random(m) * (rng.random(m) < 0.8)
        rho = float(rng.choice([0.7, 0.9, 1.0, 1.2, 2.0]))
        target = rho * float((s * s).sum()) / (budget / m)
        want = None
        for b in range(m * lo, budget + 1):
            best = min(objective(s, v) for v in vectors(m, lo, hi, b))
            if best <= target * (1 + 1e-10):
                want = (b, best)
                break
        got, met = variance_matched_counts(s, budget, lo, hi, target)
        assert got.min() >= lo and got.max() <= hi
        if want is None:
            assert not met and got.sum() == budget
        else:
            assert met and got.sum() == want[0] and objective(s, got) == pytest.approx(want[1], rel=1e-12, abs=1e-300)


def test_variance_matched_prefix_is_minimal_on_larger_cases():
    rng = np.random.default_rng(22)
    for _ in range(40):
        m = int(rng.integers(5, 300))
        s = rng.random(m) * (rng.random(m) < 0.7)
        target = float(rng.choice([0.8, 1.0, 1.5])) * float((s * s).sum()) / 16
        got, met = variance_matched_counts(s, 16 * m, 8, 24, target)
        b = int(got.sum())
        assert b <= 16 * m
        if met:
            assert objective(s, got) <= target * (1 + 1e-10)
            if b > 8 * m:
                assert objective(s, heap_greedy(list(s), b - 1, 8, 24)) > target * (1 + 1e-10)
        else:
            assert b == 16 * m and objective(s, got) > target


def test_variance_matched_reports_when_the_bounds_bind():
    c, n = [8, 4, 2, 1], [16, 16, 16, 16]
    res = allocate_rollouts(c, n, budget=64, allocator="variance_matched", variance_target_ratio=0.5, n_min=8,
                            n_max=24)
    assert res.target_met is False and res.budget == 64 and res.rollouts_saved == 0
    assert res.estimator_variance > 0.5 * res.uniform_variance
    assert len(res.notes) == 1 and "not met" in res.notes[0] and "full budget" in res.notes[0]
    assert res.metrics()["target_met"] == 0.0


def test_variance_matched_equal_sigmas_save_nothing_and_mastered_prompts_get_n_min():
    eq = allocate_rollouts([8] * 6, [16] * 6, budget=96, allocator="variance_matched")
    assert eq.num_rollouts.tolist() == [16] * 6 and eq.target_met and eq.rollouts_saved == 0
    mixed = allocate_rollouts([8, 8, 0, 16, 0, 16], [16] * 6, budget=96, allocator="variance_matched")
    assert mixed.num_rollouts.tolist() == [16, 16, 8, 8, 8, 8] and mixed.rollouts_saved == 32
    allmastered = allocate_rollouts([16, 0], [16, 16], budget=32, allocator="variance_matched")
    assert allmastered.num_rollouts.tolist() == [8, 8] and allmastered.target_met
    fresh = allocate_rollouts(np.zeros(5), np.zeros(5), budget=80, allocator="variance_matched")
    assert fresh.num_rollouts.tolist() == [16] * 5 and fresh.target_met is None and fresh.rollouts_saved == 0
    assert fresh.estimator_variance is None and fresh.notes


def test_variance_matched_reaches_eq44_fraction_with_loose_bounds():
    """Unbounded Eq 5 optimum: uniform's variance is reached with (Σσ)²/(M·Σσ²) of the rollouts (Eq 44)."""
    rng = np.random.default_rng(23)
    n_hist = np.full(50, 400.0)
    c = rng.binomial(400, rng.uniform(0.05, 0.95, 50)).astype(float)
    sigma = np.sqrt(bernoulli_variance(c, n_hist))
    res = allocate_rollouts(c, n_hist, budget=50 * 2000, allocator="variance_matched", n_min=1, n_max=10**6,
                            min_history=2)
    assert res.target_met
    assert res.budget / (50 * 2000) == pytest.approx(optimal_variance_ratio(sigma), rel=2e-3)
    loose = allocate_rollouts(c, n_hist, budget=50 * 2000, allocator="variance_matched", n_min=1, n_max=10**6,
                              min_history=2, variance_target_ratio=2.0)
    assert loose.budget / (50 * 2000) == pytest.approx(optimal_variance_ratio(sigma) / 2, rel=2e-3)


@st.composite
def history_cases(draw):
    m = draw(st.integers(1, 25))
    n = draw(st.lists(st.sampled_from([0, 1, 3, 4, 8, 16, 33]), min_size=m, max_size=m))
    c = [draw(st.integers(0, k)) for k in n]
    lo = draw(st.integers(1, 8))
    hi = draw(st.integers(lo, lo + 16))
    budget = draw(st.integers(0, m * hi + 20))
    return (np.array(c, float), np.array(n, float), budget, lo, hi, draw(st.sampled_from([0.5, 0.9, 1.0, 1.3, 3.0])),
            draw(st.sampled_from(["clamp_budget", "scale_min"])))


@settings(max_examples=200, deadline=None)
@given(history_cases())
def test_variance_matched_properties(case):
    c, n, budget, lo, hi, rho, policy = case
    res = allocate_rollouts(c, n, budget=budget, allocator="variance_matched", n_min=lo, n_max=hi,
                            variance_target_ratio=rho, infeasible=policy)
    counts = res.num_rollouts
    planned = res.budget + res.rollouts_saved
    assert counts.sum() == res.budget <= planned and res.rollouts_saved >= 0
    assert counts.min() >= res.n_min and counts.max() <= res.n_max
    known = n >= 4
    if known.any():
        s2 = bernoulli_variance(c[known], n[known])
        assert res.uniform_variance == pytest.approx(s2.sum() / (planned / c.size))
        assert res.estimator_variance == pytest.approx((s2 / counts[known]).sum())
        if res.target_met:
            assert res.estimator_variance <= rho * res.uniform_variance * (1 + 1e-9)
        else:
            assert res.rollouts_saved == 0 and res.notes
    if rho >= 1 and (planned % c.size == 0) and known.any():
        assert res.target_met  # uniform itself meets ρ ≥ 1 when B/M is an integer
    larger = allocate_rollouts(c, n, budget=budget, allocator="variance_matched", n_min=lo, n_max=hi,
                               variance_target_ratio=rho * 1.5, infeasible=policy)
    assert larger.budget <= res.budget  # a looser target never costs more


# -------------------------------------------------------------------------------------------------- knapsack
def test_knapsack_value_formula():
    assert knapsack_value(2, 0.5) == pytest.approx((1 - 0.25 - 0.25) * 0.5 * 0.25)
    assert knapsack_value(8, 0.25) == pytest.approx((1 - 0.25**8 - 0.75**8) * 0.25 * 0.75**2)
    np.testing.assert_array_equal(knapsack_value([4, 16], [0.0, 1.0]), [0.0, 0.0])
    p = np.linspace(0, 1, 21)
    for big_n in range(1, 30):  # gains = Value(N+1) − Value(N), non-increasing in N: Value is concave in N
        np.testing.assert_allclose(knapsack_gain(p, np.full(21, float(big_n))),
                                   knapsack_value(big_n + 1, p) - knapsack_value(big_n, p), atol=1e-15)
        assert np.all(knapsack_gain(p, np.full(21, big_n + 1.0)) <= knapsack_gain(p, np.full(21, float(big_n))))
    with pytest.raises(ValueError, match="success_rate"):
        knapsack_value(4, 1.5)


@pytest.mark.parametrize("matrix_limit", [1 << 22, 0])
def test_knapsack_matches_brute_force_and_dp(matrix_limit, monkeypatch):
    """Both code paths (all gains materialised / threshold search) reach the exhaustive and the DP optimum."""
    monkeypatch.setattr(core_allocators, "_KNAPSACK_MATRIX", matrix_limit)
    rng = np.random.default_rng(31)
    for _ in range(250):
        m = int(rng.integers(1, 5))
        lo = int(rng.integers(1, 4))
        hi = lo + int(rng.integers(0, 6))
        budget = int(rng.integers(m * lo, m * hi + 1))
        p = rng.random(m) if rng.random() < 0.7 else rng.choice([0.0, 1.0, 0.5, 0.1], m)
        n = knapsack_counts(p, budget, lo, hi)
        assert n.sum() == budget and n.min() >= lo and n.max() <= hi  # the whole budget is spent
        best = max(value(p, v) for v in vectors(m, lo, hi, budget))
        assert value(p, n) == pytest.approx(best, rel=1e-12, abs=1e-15)
        assert value(p, n) == pytest.approx(knapsack_dp(p, budget, lo, hi), rel=1e-12, abs=1e-15)
    for _ in range(10):  # moderate sizes against the DP
        m, lo, hi = 10, 2, 12
        p = rng.choice([0.0, 0.02, 0.1, 0.3, 0.5, 0.8, 1.0], m)
        budget = int(rng.integers(m * lo, m * hi + 1))
        assert value(p, knapsack_counts(p, budget, lo, hi)) == pytest.approx(knapsack_dp(p, budget, lo, hi),
                                                                              rel=1e-12, abs=1e-15)


def test_knapsack_paths_agree_exactly(monkeypatch):
    rng = np.random.default_rng(32)
    for _ in range(50):
        m = int(rng.integers(1, 200))
        p = rng.choice([0.0, 1.0, 1 / 8, 3 / 8, 0.5, 15 / 16], m) if rng.random() < 0.5 else rng.random(m)
        order = core_allocators.canonical_order(p, None)
        p = p[order]
        lo, hi = 4, 4 + int(rng.integers(0, 20))
        budget = int(rng.integers(m * lo, m * hi + 1))
        a = knapsack_counts(p, budget, lo, hi)
        monkeypatch.setattr(core_allocators, "_KNAPSACK_MATRIX", 0)
        b = knapsack_counts(p, budget, lo, hi)
        monkeypatch.undo()
        np.testing.assert_array_equal(a, b)


def test_knapsack_hand_worked_and_leftover_spread():
    # p̂ = 1/16 and 15/16 take n_max: their gains p(1−p)²·(pᴺ(1−p) + (1−p)ᴺp) decay slowly in N; p̂ = 1/2 has the
    # largest p(1−p)² but its gains 0.125·0.5ᴺ vanish fast; p̂ ∈ {0, 1} have zero value and keep n_min
    n = allocate_rollouts([8, 1, 15, 0, 16], [16, 16, 16, 16, 16], budget=80, allocator="knapsack", n_min=8,
                          n_max=24)
    assert n.num_rollouts.tolist() == [16, 24, 24, 8, 8]
    p = [0.5, 1 / 16, 15 / 16, 0.0, 1.0]
    assert value(p, n.num_rollouts) == pytest.approx(knapsack_dp(p, 80, 8, 24), rel=1e-12)
    assert value(p, [17, 24, 23, 8, 8]) < value(p, n.num_rollouts)
    assert value(p, [15, 24, 24, 8, 9]) < value(p, n.num_rollouts)
    assert n.budget == 80 and n.rollouts_saved is None
    np.testing.assert_allclose(n.weights, [0.5, 1 / 16, 15 / 16, 0, 1])
    # only zero-value prompts: the budget is spread evenly (lowest counts first)
    z = allocate_rollouts([0, 16, 0], [16, 16, 16], budget=50, allocator="knapsack", n_min=8, n_max=24)
    assert sorted(z.num_rollouts.tolist()) == [16, 17, 17]
    # prompts without history get the uniform share, like waterfill
    f = allocate_rollouts([0, 8, 1], [0, 16, 16], budget=48, allocator="knapsack", n_min=8, n_max=24)
    assert f.num_rollouts[0] == 16 and f.num_rollouts.sum() == 48 and np.isnan(f.weights[0])


def test_knapsack_is_fast_at_65536_prompts():
    rng = np.random.default_rng(33)
    m = 65_536
    n_hist = rng.choice([0, 8, 16, 32], size=m).astype(float)
    c = rng.binomial(n_hist.astype(np.int64), rng.beta(0.4, 0.4, m)).astype(float)
    allocate_rollouts(c, n_hist, budget=16 * m, allocator="knapsack")
    t0 = time.process_time()
    res = allocate_rollouts(c, n_hist, budget=16 * m, allocator="knapsack")
    assert time.process_time() - t0 < 3.0
    assert res.num_rollouts.sum() == 16 * m


# --------------------------------------------------------------------------------------------- one entry point
def test_allocator_names_and_single_entry_point():
    assert ALLOCATOR_NAMES == ("knapsack", "official", "optimal", "uniform", "variance_matched", "waterfill")
    assert set(ALLOCATOR_NAMES) == set(ALLOCATORS.names()) | set(HISTORY_ALLOCATORS.names())
    c, n = [1, 5, 0, 3, 1], [8, 8, 8, 8, 1]
    for name in ALLOCATOR_NAMES:
        res = allocate_rollouts(c, n, budget=80, allocator=name)
        assert res.allocator == name and res.num_rollouts.dtype == np.int64
        assert res.num_rollouts.sum() == res.budget <= 80 and res.num_rollouts.min() >= 8
    with pytest.raises(ValueError, match="allocator='greedy'.*knapsack, official, optimal"):
        allocate_rollouts(c, n, budget=80, allocator="greedy")
    with pytest.raises(ValueError, match="variance_target_ratio"):
        allocate_rollouts(c, n, budget=80, allocator="variance_matched", variance_target_ratio=0)
    with pytest.raises(ValueError, match="min_history"):
        allocate_rollouts(c, n, budget=80, allocator="knapsack", min_history=1)
    empty = allocate_rollouts([], [], budget=16, allocator="variance_matched")
    assert empty.budget == 0 and empty.num_rollouts.size == 0


def test_existing_allocators_keep_their_result_fields():
    res = allocate_rollouts([1, 5, 0, 3], [8, 8, 8, 8], budget=64, allocator="waterfill")
    assert res.rollouts_saved is None and res.target_met is None and res.estimator_variance is None
    assert set(res.metrics()) == {"budget", "budget_adjusted", "n_mean", "n_std", "n_min", "n_max", "frac_at_n_min",
                                  "frac_at_n_max", "frac_no_history"}


def test_config_field_reaches_allocate_rollouts():
    cfg = AllocationConfig(allocator="variance_matched", variance_target_ratio=1.5)
    kwargs = cfg.core_kwargs()
    assert kwargs["variance_target_ratio"] == 1.5 and kwargs["allocator"] == "variance_matched"
    res = allocate_rollouts([1, 5, 0, 3, 8], [8, 8, 8, 8, 16], budget=80, **kwargs)
    assert res.target_met and res.estimator_variance <= 1.5 * res.uniform_variance * (1 + 1e-12)
    assert AllocationConfig().variance_target_ratio == 1.0
    for bad in (0.0, -1.0, math.nan, math.inf, 1000.0):
        with pytest.raises(ValueError, match="variance_target_ratio"):
            AllocationConfig(variance_target_ratio=bad)


@settings(max_examples=150, deadline=None)
@given(history_cases(), st.sampled_from(ALLOCATOR_NAMES))
def test_every_allocator_meets_budget_and_bounds(case, name):
    c, n, budget, lo, hi, rho, policy = case
    res = allocate_rollouts(c, n, budget=budget, allocator=name, n_min=lo, n_max=hi, infeasible=policy,
                            variance_target_ratio=rho)
    counts = res.num_rollouts
    assert counts.sum() == res.budget and counts.min() >= res.n_min and counts.max() <= res.n_max
    if name == "variance_matched":
        assert res.budget <= res.budget + res.rollouts_saved
    else:
        assert res.rollouts_saved is None
    again = allocate_rollouts(c, n, budget=budget, allocator=name, n_min=lo, n_max=hi, infeasible=policy,
                              variance_target_ratio=rho)
    np.testing.assert_array_equal(counts, again.num_rollouts)
