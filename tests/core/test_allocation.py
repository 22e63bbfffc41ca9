"""Dynamic Rollout Allocation: Eq 5-6, Eq 44, Algorithm 1, App. C-D (method-spec §3, §10 cases 1-2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_allocation import (
    reference_bernoulli_variance,
    reference_official,
    reference_priority,
    reference_water_level,
)

from dynamo_rl.core.allocation import (
    ALLOCATORS,
    allocate,
    allocate_rollouts,
    bernoulli_variance,
    optimal_variance_ratio,
    priorities,
    variance_reduction_ratio,
    water_level,
)
from dynamo_rl.method_config import AllocationConfig

SPEC_WEIGHTS = [0.01, 0.117, 0.229, 0.267, 0.229, 0.01, 0.01, 0.163]
METHODS = ("uniform", "official", "waterfill")


# ------------------------------------------------------------------------------------------ Eq 6: Bernoulli proxy
def test_bernoulli_variance_spec_case_1():
    p = bernoulli_variance([0, 16, 8, 1, 0], [16, 16, 16, 1, 0])
    assert p[0] == 0 and p[1] == 0
    assert p[2] == pytest.approx(8 * 8 / (16 * 15))
    assert p[2] == pytest.approx(0.2667, abs=1e-4)
    assert np.isnan(p[3]) and np.isnan(p[4])  # n < 2: undefined, no division by zero


def test_bernoulli_variance_matches_reference_and_keeps_shape():
    rng = np.random.default_rng(0)
    n = rng.integers(0, 40, size=(3, 50)).astype(float)
    c = np.floor(rng.random((3, 50)) * (n + 1))
    got = bernoulli_variance(c, n)
    assert got.shape == (3, 50)
    ref = np.array([[reference_bernoulli_variance(ci, ni) for ci, ni in zip(cr, nr)] for cr, nr in zip(c, n)])
    np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)


def test_bernoulli_variance_is_unbiased_monte_carlo():
    """E[k(n−k)/(n(n−1))] = p(1−p) for k ~ Binomial(n, p) (spec §2.4: p = 0.3, n = 6 → 0.21)."""
    rng = np.random.default_rng(1234)
    for p, n in ((0.3, 6), (0.8, 3), (0.5, 16)):
        k = rng.binomial(n, p, size=400_000).astype(float)
        est = bernoulli_variance(k, np.full_like(k, n)).mean()
        assert est == pytest.approx(p * (1 - p), abs=3e-3)
        biased = (k / n * (1 - k / n)).mean()  # the plug-in estimator is biased low by (n−1)/n
        assert biased == pytest.approx(p * (1 - p) * (n - 1) / n, abs=3e-3)


def test_priorities_spec_rule():
    c = np.array([0, 16, 8, 17, 3, 1, 2])
    n = np.array([16, 16, 16, 20, 20, 1, 3])
    w = priorities(c, n)
    assert w[0] == 0.01 and w[1] == 0.01  # P = 0 → floor
    assert w[2] == pytest.approx(0.26666667 + 0.5e-6)
    assert w[3] == 0.01  # acc = 0.85 ≥ mastery → floor even though P > 0.01
    assert w[4] == pytest.approx(3 * 17 / (20 * 19) + 0.85e-6)
    assert np.isnan(w[5]) and np.isnan(w[6])  # G < 4: not enough history


def test_priority_options_match_reference():
    rng = np.random.default_rng(2)
    n = rng.integers(0, 30, size=300).astype(float)
    c = np.floor(rng.random(300) * (n + 1))
    for kw in (dict(), dict(proxy_power=0.5), dict(weight_floor=None), dict(mastery_threshold=None),
               dict(tie_breaker=0.0, min_history=2), dict(weight_floor=None, mastery_threshold=0.5)):
        got = priorities(c, n, **kw)
        ref = [reference_priority(ci, ni, **kw) for ci, ni in zip(c, n)]
        np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True, err_msg=str(kw))


def test_paper_pure_priorities_are_the_bernoulli_variance():
    c, n = np.array([0.0, 3, 9]), np.array([10.0, 10, 10])
    w = priorities(c, n, weight_floor=None, mastery_threshold=None, tie_breaker=0)
    np.testing.assert_allclose(w, bernoulli_variance(c, n))
    np.testing.assert_allclose(priorities(c, n, proxy_power=0.5, weight_floor=None, mastery_threshold=None,
                                          tie_breaker=0), np.sqrt(bernoulli_variance(c, n)))


# ------------------------------------------------------------------------------- Alg. 1 / App. D: spec examples
def test_spec_example_official_and_waterfill():
    assert allocate(SPEC_WEIGHTS, 128, 8, 24, "official").tolist() == [9, 15, 22, 24, 22, 9, 9, 18]
    assert allocate(SPEC_WEIGHTS, 128, 8, 24, "waterfill").tolist() == [8, 13, 24, 24, 24, 8, 8, 19]
    assert allocate([0.25, 0.01], 32, 8, 24, "official").tolist() == [23, 9]
    assert allocate([0.25, 0.01], 32, 8, 24, "waterfill").tolist() == [24, 8]
    # A1: the standard-deviation weights of the theory preset (spec §3.2)
    assert allocate(np.sqrt(SPEC_WEIGHTS), 128, 8, 24, "waterfill").tolist() == [8, 16, 23, 24, 22, 8, 8, 19]


@pytest.mark.parametrize("method", METHODS)
def test_fresh_batch_and_equal_priorities_give_uniform(method):
    fresh = allocate_rollouts(np.zeros(32), np.zeros(32), budget=512, allocator=method)
    assert fresh.num_rollouts.tolist() == [16] * 32
    assert np.isnan(fresh.weights).all()
    assert allocate(np.full(10, 0.2), 160, 8, 24, method).tolist() == [16] * 10
    assert allocate(np.zeros(10), 160, 8, 24, method).tolist() == [16] * 10  # all-zero → uniform


def test_official_exploration_step():
    # Two fresh prompts (G = 0) get n_explore = max(n_min, 12) = 12; the rest is shared by weight.
    n = allocate([np.nan, np.nan, 0.2, 0.1], 64, 8, 24, "official", num_samples=[0, 0, 10, 10], n_explore=12)
    assert n.tolist()[:2] == [12, 12] and n.sum() == 64
    assert n.tolist() == reference_official([np.nan, np.nan, 0.2, 0.1], 64, 8, 24, [0, 0, 10, 10], 12)
    # Too much exploration: the authors' scale-down then lower-the-largest branch.
    w = [np.nan] * 5
    got = allocate(w, 50, 4, 24, "official", num_samples=[0, 1, 2, 3, 20], n_explore=20)
    assert got.sum() == 50 and got.min() >= 4
    assert got.tolist() == reference_official(w, 50, 4, 24, [0, 1, 2, 3, 20], 20)


def test_waterfill_nan_gets_uniform_share():
    n = allocate([np.nan, np.nan, 0.3, 0.01, 0.2, 0.0], 96, 8, 24, "waterfill")
    assert n[:2].tolist() == [16, 16]  # budget / M
    assert n.sum() == 96 and n[2] >= n[4] >= n[3] and n[5] == 8


# ----------------------------------------------------------------------------------- A5: infeasible budgets
def test_infeasible_budget_policies():
    low = allocate_rollouts(np.full(4, 5.0), np.full(4, 10.0), budget=20, n_min=8, n_max=24)
    assert low.budget == 32 and low.num_rollouts.tolist() == [8] * 4 and low.notes
    assert low.requested_budget == 20 and low.metrics()["budget_adjusted"] == 1.0
    high = allocate_rollouts(np.full(4, 5.0), np.full(4, 10.0), budget=200, n_min=8, n_max=24)
    assert high.budget == 96 and high.num_rollouts.tolist() == [24] * 4

    scaled = allocate_rollouts(np.full(4, 5.0), np.full(4, 10.0), budget=22, infeasible="scale_min",
                               allocator="waterfill")
    assert (scaled.budget, scaled.n_min) == (22, 5) and scaled.num_rollouts.sum() == 22
    floor2 = allocate_rollouts(np.full(4, 5.0), np.full(4, 10.0), budget=5, infeasible="scale_min")
    assert floor2.n_min == 2 and floor2.budget == 8 and floor2.num_rollouts.tolist() == [2] * 4  # never below 2
    up = allocate_rollouts(np.full(4, 5.0), np.full(4, 10.0), budget=120, infeasible="scale_min")
    assert up.n_max == 30 and up.num_rollouts.sum() == 120
    ok = allocate_rollouts(np.full(4, 5.0), np.full(4, 10.0), budget=64)
    assert ok.notes == () and ok.budget == 64


def test_allocate_rollouts_accepts_config_kwargs():
    for cfg in (AllocationConfig(), AllocationConfig(allocator="waterfill", proxy_power=0.5, weight_floor=None,
                                                     mastery_threshold=None, infeasible="scale_min")):
        res = allocate_rollouts([1, 5, 0, 3], [8, 8, 8, 8], budget=64, **cfg.core_kwargs())
        assert res.num_rollouts.dtype == np.int64 and res.num_rollouts.sum() == 64
        assert res.allocator == cfg.allocator


# ------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(weights=[0.1, -0.2]), r"weights\[1\]"),
    (dict(weights=[0.1, math.inf]), r"weights\[1\]"),
    (dict(weights=[[0.1, 0.2]]), "weights must be a 1-D"),
    (dict(n_min=9, n_max=8), "n_max=8"),
    (dict(n_min=0), "n_min=0"),
    (dict(budget=-1), "budget=-1"),
    (dict(budget=3.5), "budget"),
    (dict(method="greedy"), "method='greedy'.*official"),
    (dict(infeasible="raise"), "infeasible='raise'"),
    (dict(num_samples=[1, 2, 3]), "num_samples has shape"),
    (dict(num_samples=[1, -2]), r"num_samples\[1\]"),
    (dict(n_explore=-1), "n_explore=-1"),
])
def test_allocate_rejects_bad_arguments(kwargs, match):
    args = dict(weights=[0.1, 0.2], budget=32, n_min=8, n_max=24) | kwargs
    with pytest.raises(ValueError, match=match):
        allocate(**args)


def test_count_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"num_correct\[1\]=5.0 exceeds num_samples\[1\]=4.0"):
        priorities([1, 5], [4, 4])
    with pytest.raises(ValueError, match=r"num_correct\[0\]"):
        bernoulli_variance([-1], [4])
    with pytest.raises(ValueError, match="shape"):
        allocate_rollouts([1, 2], [4, 4, 4], budget=48)
    with pytest.raises(ValueError, match="min_history=1"):
        priorities([1], [4], min_history=1)
    with pytest.raises(ValueError, match="proxy_power"):
        priorities([1], [4], proxy_power=0)


def test_registries_hold_every_allocator():
    from dynamo_rl.core.allocation import ALLOCATOR_NAMES, HISTORY_ALLOCATORS
    from dynamo_rl.method_config import allocator_names

    assert ALLOCATORS.names() == ["official", "optimal", "uniform", "waterfill"]
    assert HISTORY_ALLOCATORS.names() == ["knapsack", "variance_matched"]
    assert sorted(ALLOCATOR_NAMES) == sorted(allocator_names()) == sorted(ALLOCATORS.names() + HISTORY_ALLOCATORS.names())


def test_empty_batch():
    assert allocate([], 0, 8, 24).tolist() == []
    res = allocate_rollouts([], [], budget=16)
    assert res.budget == 0 and res.num_rollouts.size == 0


# --------------------------------------------------------------------------- reference oracles (random cases)
def _random_case(rng):
    m = int(rng.integers(1, 40))
    kind = rng.integers(0, 4)
    if kind == 0:
        w = rng.random(m)
    elif kind == 1:
        w = rng.choice([0.0, 0.01, 0.05, 0.2, np.nan], size=m)
    elif kind == 2:
        w = priorities(*(lambda n: (np.floor(rng.random(m) * (n + 1)), n))(rng.integers(0, 30, m).astype(float)))
    else:
        w = np.where(rng.random(m) < 0.3, np.nan, rng.random(m) ** 3)
    lo = int(rng.integers(1, 10))
    hi = lo + int(rng.integers(0, 20))
    budget = int(rng.integers(max(0, m * lo - 20), m * hi + 20))
    ns = rng.integers(0, 12, m).astype(float) if rng.random() < 0.5 else None
    return w, budget, lo, hi, ns, int(rng.integers(0, 16))


def test_official_matches_loop_reference():
    rng = np.random.default_rng(7)
    for _ in range(400):
        w, budget, lo, hi, ns, nx = _random_case(rng)
        got = allocate(w, budget, lo, hi, "official", num_samples=ns, n_explore=nx).tolist()
        assert got == reference_official(w, budget, lo, hi, ns, nx), (w, budget, lo, hi, ns, nx)


def test_water_level_matches_bisection_reference():
    rng = np.random.default_rng(8)
    for _ in range(100):
        m = int(rng.integers(1, 30))
        w = rng.random(m) * (rng.random(m) < 0.8)
        lo, hi = float(rng.integers(1, 8)), float(rng.integers(8, 30))
        budget = float(rng.uniform(m * lo, m * hi))
        x = water_level(w, budget, lo, hi)
        np.testing.assert_allclose(x, reference_water_level(list(w), budget, lo, hi), rtol=1e-9, atol=1e-9)
        assert x.sum() == pytest.approx(budget)
        n = allocate(w, int(budget), int(lo), int(hi), "waterfill")
        x_int = water_level(w, int(budget), lo, hi)
        assert np.all(np.abs(n - x_int) < 1 + 1e-9)  # largest-remainder rounding moves each by < 1


def test_optimal_allocation_variance():
    """n_i ∝ σ_i minimises Σσ²/n_i with value (Σσ)²/N (Eq 5 = Eq 36); the ratio to uniform is Eq 44."""
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.05, 0.5, size=20)
    x = water_level(sigma, 320.0, 1e-9, 1e9)
    np.testing.assert_allclose(x, 320 * sigma / sigma.sum(), rtol=1e-10)
    assert (sigma**2 / x).sum() == pytest.approx(sigma.sum() ** 2 / 320, rel=1e-10)
    assert variance_reduction_ratio(sigma, x) == pytest.approx(optimal_variance_ratio(sigma), rel=1e-10)
    assert optimal_variance_ratio(sigma) == pytest.approx(sigma.sum() ** 2 / (20 * (sigma**2).sum()))
    assert optimal_variance_ratio(sigma) < 1 and optimal_variance_ratio(np.full(5, 0.3)) == pytest.approx(1.0)
    # any other feasible allocation is worse
    for _ in range(20):
        y = rng.dirichlet(np.ones(20)) * 320
        assert variance_reduction_ratio(sigma, y) >= optimal_variance_ratio(sigma) - 1e-12
    # bounded waterfill with σ weights beats uniform and the integer version is close to the continuous one
    n = allocate(sigma, 320, 8, 24, "waterfill")
    cont = water_level(sigma, 320, 8, 24)
    assert variance_reduction_ratio(sigma, n) < 1
    assert variance_reduction_ratio(sigma, n) == pytest.approx(variance_reduction_ratio(sigma, cont), rel=0.02)
    assert variance_reduction_ratio(sigma, np.full(20, 16)) == pytest.approx(1.0)


def test_variance_ratio_errors():
    with pytest.raises(ValueError, match="num_rollouts"):
        variance_reduction_ratio([0.1, 0.2], [4, 0])
    with pytest.raises(ValueError, match="shape"):
        variance_reduction_ratio([0.1, 0.2], [4])


# ------------------------------------------------------------------------------- hypothesis properties
weight_st = st.one_of(st.floats(0, 1, allow_nan=False), st.just(math.nan), st.sampled_from([0.0, 0.01, 0.2]))


@st.composite
def cases(draw, distinct=False):
    m = draw(st.integers(1, 24))
    if distinct:
        w = draw(st.lists(st.floats(1e-6, 1, allow_nan=False), min_size=m, max_size=m, unique=True))
    else:
        w = draw(st.lists(weight_st, min_size=m, max_size=m))
    lo = draw(st.integers(1, 10))
    hi = draw(st.integers(lo, lo + 20))
    budget = draw(st.integers(0, m * hi + 30))
    ns = draw(st.one_of(st.none(), st.lists(st.integers(0, 12), min_size=m, max_size=m)))
    return (np.array(w, dtype=float), budget, lo, hi, None if ns is None else np.array(ns, dtype=float),
            draw(st.sampled_from(METHODS)), draw(st.sampled_from(["clamp_budget", "scale_min"])))


@settings(max_examples=150, deadline=None)
@given(cases())
def test_sum_bounds_determinism(case):
    w, budget, lo, hi, ns, method, policy = case
    n = allocate(w, budget, lo, hi, method, infeasible=policy, num_samples=ns)
    m = w.size
    if policy == "clamp_budget":
        eff, elo, ehi = min(max(budget, m * lo), m * hi), lo, hi
    else:
        elo = max(budget // m, min(lo, 2)) if budget < m * lo else lo
        ehi = -(-budget // m) if budget > m * hi else hi
        eff = max(budget, m * elo)
    assert n.dtype == np.int64 and n.sum() == eff
    assert n.min() >= elo and n.max() <= ehi
    assert (n >= 2).all() or lo < 2
    np.testing.assert_array_equal(n, allocate(w, budget, lo, hi, method, infeasible=policy, num_samples=ns))


@settings(max_examples=150, deadline=None)
@given(cases(distinct=True), st.randoms(use_true_random=False))
def test_permutation_equivariance_distinct_weights(case, rnd):
    w, budget, lo, hi, ns, method, policy = case
    perm = np.array(rnd.sample(range(w.size), w.size))
    n = allocate(w, budget, lo, hi, method, infeasible=policy, num_samples=ns)
    n_perm = allocate(w[perm], budget, lo, hi, method, infeasible=policy,
                      num_samples=None if ns is None else ns[perm])
    np.testing.assert_array_equal(n_perm, n[perm])


@settings(max_examples=100, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_permutation_equivariance_up_to_ties(case, rnd):
    """With tied (weight, num_samples) pairs the counts within each tie class are the same multiset."""
    w, budget, lo, hi, ns, method, policy = case
    perm = np.array(rnd.sample(range(w.size), w.size))
    n = allocate(w, budget, lo, hi, method, infeasible=policy, num_samples=ns)
    n_perm = allocate(w[perm], budget, lo, hi, method, infeasible=policy,
                      num_samples=None if ns is None else ns[perm])
    key = [("nan" if math.isnan(x) else x, None if ns is None else ns[i]) for i, x in enumerate(w)]
    groups: dict = {}
    for i, k in enumerate(key):
        groups.setdefault(k, []).append(i)
    back = np.empty_like(n_perm)
    back[perm] = n_perm
    for idx in groups.values():
        assert sorted(back[idx].tolist()) == sorted(n[idx].tolist())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1e-4, 1, allow_nan=False), min_size=1, max_size=30), st.data())
def test_waterfill_monotone_in_weight(w, data):
    """Larger weight never gets fewer rollouts (waterfill and official)."""
    w = np.array(w)
    m = w.size
    lo = data.draw(st.integers(1, 8))
    hi = data.draw(st.integers(lo, 30))
    budget = data.draw(st.integers(m * lo, m * hi))
    for method in ("waterfill", "official"):
        n = allocate(w, budget, lo, hi, method)
        order = np.argsort(-w, kind="stable")
        assert np.all(np.diff(n[order]) <= 0), method


def test_water_level_validates_and_handles_edge_cases():
    with pytest.raises(ValueError, match="budget=5"):
        water_level(np.array([0.1, 0.2]), 5, 8, 24)
    with pytest.raises(ValueError, match="weights"):
        water_level(np.array([0.1, -0.2]), 32, 8, 24)
    np.testing.assert_allclose(water_level(np.zeros(3), 30.0, 8, 24), [10, 10, 10])  # all zero → uniform
    # zero weights stay at n_min until every positive weight is full, then share the rest equally
    np.testing.assert_allclose(water_level(np.array([1.0, 0.0, 0.0]), 44.0, 8, 24), [24, 10, 10])
    np.testing.assert_allclose(water_level(np.array([1.0, 1e-300]), 32.0, 8, 24), [24, 8])  # no overflow
