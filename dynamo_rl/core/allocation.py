"""Dynamic Rollout Allocation (DRA): Eq 5-6, Algorithm 1 and App. C-D of DynaMO, arXiv 2602.19208.

Three steps, each a pure numpy function:

1. :func:`bernoulli_variance` / :func:`priorities` turn cumulative success counts into weights (Eq 6 plus the
   authors' heuristics, each an explicit option; NaN = not enough history).
2. :func:`allocate` splits an integer budget into per-prompt rollout counts n_i ∈ [n_min, n_max] with Σ n_i = budget,
   by one of the registered weight-based :data:`ALLOCATORS` (``uniform``, ``official``, ``waterfill``, ``optimal``).
   :func:`allocate_rollouts` is the one entry point for every name in :data:`ALLOCATOR_NAMES`: it also runs the
   history-based :data:`HISTORY_ALLOCATORS` (``variance_matched``: the smallest budget whose variance-optimal
   allocation matches uniform's estimator variance; ``knapsack``: Knapsack RL, Li et al. 2025, arXiv 2509.25849).
3. :func:`variance_reduction_ratio` / :func:`optimal_variance_ratio` measure the gain (Eq 44).

Determinism and permutation equivariance: every allocator runs on the prompts sorted into a *canonical order*
(larger weight first, NaN last; then fewer historical samples when ``num_samples`` is given; then lower index), and
every tie (equal fractional parts, round-robin units, decrements) goes to the prompt earliest in that order. Permuting
the input therefore permutes the output exactly whenever the (weight, num_samples) pairs are distinct; among prompts
with identical pairs the extra units go by input position, so the output is equivariant up to a permutation within
each tie class (equivariant in distribution over a random input order). See docs/implementation_details.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dynamo_rl.core.allocators import (
    ALLOCATORS,
    canonical_order,
    knapsack_counts,
    nan_share,
    variance_matched_counts,
    water_level,
)
from dynamo_rl.core.registry import Registry

__all__ = [
    "ALLOCATORS",
    "ALLOCATOR_NAMES",
    "HISTORY_ALLOCATORS",
    "AllocationResult",
    "allocate",
    "allocate_rollouts",
    "bernoulli_variance",
    "knapsack_value",
    "optimal_variance_ratio",
    "priorities",
    "variance_reduction_ratio",
    "water_level",
]


# ----------------------------------------------------------------------------------------------------- validation
def _counts(name: str, value: object, ndim1: bool = True) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if ndim1 and arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}[{', '.join(map(str, pos))}]={float(arr[pos])!r} must be a finite count ≥ 0")
    return arr


def _count_pair(num_correct: object, num_samples: object, ndim1: bool = True) -> tuple[np.ndarray, np.ndarray]:
    c, n = _counts("num_correct", num_correct, ndim1), _counts("num_samples", num_samples, ndim1)
    if c.shape != n.shape:
        raise ValueError(f"num_correct has shape {c.shape} but num_samples has shape {n.shape}")
    over = c > n
    if over.any():
        pos = tuple(int(i) for i in np.argwhere(over)[0])
        raise ValueError(f"num_correct{list(pos)}={float(c[pos])!r} exceeds num_samples{list(pos)}={float(n[pos])!r}")
    return c, n


def _integer(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be ≥ {minimum}")
    return int(value)


# ------------------------------------------------------------------------------------------------------ weights
def bernoulli_variance(num_correct: object, num_samples: object) -> np.ndarray:
    """Unbiased Bernoulli variance P = c(n − c)/(n(n − 1)) (Eq 6 = Eq 43 of DynaMO, arXiv 2602.19208).

    ``num_correct`` c and ``num_samples`` n: float arrays of any equal shape (fractional counts allowed, e.g. after
    forgetting). Returns float64 of the same shape; NaN where n < 2 (the estimator is undefined there).
    """
    c, n = _count_pair(num_correct, num_samples, ndim1=False)
    out = np.full(c.shape, np.nan)
    ok = n >= 2
    out[ok] = c[ok] * (n[ok] - c[ok]) / (n[ok] * (n[ok] - 1.0))
    return out


def priorities(
    num_correct: object,
    num_samples: object,
    *,
    proxy_power: float = 1.0,
    min_history: int | None = 4,
    weight_floor: float | None = 0.01,
    mastery_threshold: float | None = 0.85,
    tie_breaker: float | None = 1e-6,
) -> np.ndarray:
    """Allocation weights from success history (Eq 6 of DynaMO, arXiv 2602.19208; authors' rule, method-spec §3.3).

    For each prompt with n ≥ ``min_history`` samples and accuracy a = c/n::

        w = max(P ** proxy_power + tie_breaker·(1 − a), weight_floor)    if a < mastery_threshold
        w = weight_floor                                                  otherwise

    ``proxy_power`` 1.0 uses the variance (paper/code), 0.5 the standard deviation Eq 5 calls for (A1).
    ``weight_floor=None`` disables the floor (mastered prompts then get 0), ``mastery_threshold=None`` the mastery
    cut (A3), ``tie_breaker=0``/``None`` the tie-breaker, ``min_history=None`` means 2 (the smallest n where P is
    defined). Prompts with too little history get NaN (the code's −1 sentinel). Shapes: (M,) → (M,) float64.
    """
    if not (isinstance(proxy_power, (int, float)) and math.isfinite(proxy_power) and proxy_power > 0):
        raise ValueError(f"proxy_power={proxy_power!r} must be a finite number > 0")
    min_history = 2 if min_history is None else _integer("min_history", min_history, 2)
    if weight_floor is not None and not (math.isfinite(weight_floor) and weight_floor >= 0):
        raise ValueError(f"weight_floor={weight_floor!r} must be a finite number ≥ 0 or None")
    if mastery_threshold is not None and not 0 < mastery_threshold <= 1:
        raise ValueError(f"mastery_threshold={mastery_threshold!r} must be in (0, 1] or None")
    tie_breaker = 0.0 if tie_breaker is None else tie_breaker
    if not (math.isfinite(tie_breaker) and tie_breaker >= 0):
        raise ValueError(f"tie_breaker={tie_breaker!r} must be a finite number ≥ 0 or None")

    c, n = _count_pair(num_correct, num_samples)
    out = np.full(c.shape, np.nan)
    known = n >= min_history
    ck, nk = c[known], n[known]
    acc = ck / nk
    w = (ck * (nk - ck) / (nk * (nk - 1.0))) ** proxy_power + tie_breaker * (1.0 - acc)
    if mastery_threshold is not None:
        w = np.where(acc >= mastery_threshold, 0.0 if weight_floor is None else weight_floor, w)
    if weight_floor is not None:
        w = np.maximum(w, weight_floor)
    out[known] = w
    return out


# ------------------------------------------------------------------------------------------------------ allocate
@dataclass(frozen=True)
class _Plan:
    budget: int
    n_min: int
    n_max: int
    notes: tuple[str, ...]


def _plan(m: int, budget: int, n_min: int, n_max: int, infeasible: str) -> _Plan:
    """Apply the infeasible-budget policy (A5): the effective (budget, n_min, n_max) and a note when they changed."""
    if infeasible not in ("clamp_budget", "scale_min"):
        raise ValueError(f"infeasible={infeasible!r} must be 'clamp_budget' or 'scale_min'")
    if m == 0:
        return _Plan(0, n_min, n_max, (f"no prompts: budget {budget} → 0",) if budget else ())
    if m * n_min <= budget <= m * n_max:
        return _Plan(budget, n_min, n_max, ())
    if infeasible == "clamp_budget":
        eff = min(max(budget, m * n_min), m * n_max)
        return _Plan(eff, n_min, n_max, (f"budget {budget} clamped to {eff} (M={m}, bounds [{n_min}, {n_max}])",))
    if budget > m * n_max:
        hi = -(-budget // m)
        return _Plan(budget, n_min, hi, (f"n_max raised from {n_max} to {hi} to fit budget {budget} (M={m})",))
    lo = max(budget // m, min(n_min, 2))
    notes = [f"n_min scaled from {n_min} to {lo} to fit budget {budget} (M={m})"]
    eff = max(budget, m * lo)
    if eff != budget:
        notes.append(f"budget {budget} raised to {eff}: never fewer than {lo} rollouts per prompt")
    return _Plan(eff, lo, n_max, tuple(notes))


def _prepare(weights: object, budget: object, n_min: object, n_max: object, num_samples: object) -> tuple:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"weights must be a 1-D array, got shape {w.shape}")
    bad = ~np.isnan(w) & ~((w >= 0) & np.isfinite(w))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"weights[{i}]={float(w[i])!r} must be finite and ≥ 0 (NaN marks a prompt without history)")
    budget = _integer("budget", budget, 0)
    n_min = _integer("n_min", n_min, 1)
    n_max = _integer("n_max", n_max, 1)
    if n_max < n_min:
        raise ValueError(f"n_max={n_max} must be ≥ n_min={n_min}")
    if num_samples is not None:
        num_samples = _counts("num_samples", num_samples)
        if num_samples.shape != w.shape:
            raise ValueError(f"num_samples has shape {num_samples.shape} but weights has shape {w.shape}")
    return w, budget, n_min, n_max, num_samples


def _allocate(w: np.ndarray, plan: _Plan, method: str, num_samples: np.ndarray | None, n_explore: int) -> np.ndarray:
    try:
        fn = ALLOCATORS.get(method)
    except KeyError as err:
        hint = (" (it needs the success counts: use allocate_rollouts)" if method in HISTORY_ALLOCATORS else "")
        raise ValueError(f"method={method!r}: {err.args[0]}{hint}") from None
    m = w.size
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    order = canonical_order(w, num_samples)
    ns = None if num_samples is None else num_samples[order]
    out = np.asarray(fn(w[order], plan.budget, plan.n_min, plan.n_max, num_samples=ns, n_explore=n_explore))
    n = np.empty(m, dtype=np.int64)
    n[order] = out
    if int(n.sum()) != plan.budget or n.min() < plan.n_min or n.max() > plan.n_max:
        raise RuntimeError(f"allocator {method!r} broke its contract: sum {int(n.sum())} != {plan.budget} or "
                           f"counts outside [{plan.n_min}, {plan.n_max}]")
    return n


def allocate(
    weights: object,
    budget: int,
    n_min: int,
    n_max: int,
    method: str = "official",
    *,
    infeasible: str = "clamp_budget",
    num_samples: object = None,
    n_explore: int = 4,
) -> np.ndarray:
    """Integer rollout counts (Algorithm 1 / App. D of DynaMO, arXiv 2602.19208).

    ``weights`` (M,) finite ≥ 0, NaN = no history. Returns int64 (M,) with Σ n_i = budget and n_min ≤ n_i ≤ n_max,
    after the infeasible-budget policy (A5): ``clamp_budget`` moves the budget into [M·n_min, M·n_max] (authors'
    code); ``scale_min`` lowers n_min to ⌊budget/M⌋ (never below 2, unless n_min < 2 was asked; the budget is raised
    if even that does not fit) or raises n_max to ⌈budget/M⌉ (App. D). ``num_samples`` (M,) historical rollout
    counts, used by ``official`` for its exploration step; ``n_explore`` the authors' ``initial_budget``.
    Use :func:`allocate_rollouts` to see the effective budget and bounds.
    """
    w, budget, n_min, n_max, ns = _prepare(weights, budget, n_min, n_max, num_samples)
    n_explore = _integer("n_explore", n_explore, 0)
    return _allocate(w, _plan(w.size, budget, n_min, n_max, infeasible), method, ns, n_explore)


@dataclass(frozen=True)
class AllocationResult:
    """Output of :func:`allocate_rollouts`."""

    num_rollouts: np.ndarray
    """int64 (M,): rollouts per prompt, Σ = ``budget``."""
    weights: np.ndarray
    """float64 (M,): the priorities used; NaN = not enough history. ``variance_matched``: σ_i = √P_i;
    ``knapsack``: the success rate p̂_i = c_i/n_i."""
    budget: int
    """Rollouts actually allocated (Σ ``num_rollouts``): the effective budget after the infeasible-budget policy,
    less ``rollouts_saved`` (only ``variance_matched`` saves any)."""
    requested_budget: int
    n_min: int
    """Effective lower bound (differs from the requested one only under ``scale_min``)."""
    n_max: int
    allocator: str
    notes: tuple[str, ...] = ()
    """Human-readable notes, e.g. that the budget was clamped; empty when nothing was adjusted."""
    rollouts_saved: int | None = None
    """``variance_matched``: effective budget − rollouts allocated (≥ 0); None for allocators that spend it all."""
    target_met: bool | None = None
    """``variance_matched``: whether Σσ²/n ≤ ``variance_target_ratio`` × uniform's variance was reached within the
    budget (False: even the full budget misses it, so all of it is used; see ``notes``). None: not applicable
    (other allocators, or no prompt has history)."""
    estimator_variance: float | None = None
    """``variance_matched``: Σ σ_i²/n_i over the prompts with history (σ_i = √P_i, Eq 6)."""
    uniform_variance: float | None = None
    """``variance_matched``: Σ σ_i²/n̄ over the same prompts, n̄ = effective budget / M (uniform allocation)."""

    def metrics(self) -> dict[str, float]:
        """Scalars for logging (prefix them with e.g. ``allocation/``)."""
        n = self.num_rollouts
        if n.size == 0:
            return {"budget": float(self.budget)}
        out = {
            "budget": float(self.budget),
            "budget_adjusted": float(self.budget + (self.rollouts_saved or 0) != self.requested_budget),
            "n_mean": float(n.mean()),
            "n_std": float(n.std()),
            "n_min": float(n.min()),
            "n_max": float(n.max()),
            "frac_at_n_min": float((n == self.n_min).mean()),
            "frac_at_n_max": float((n == self.n_max).mean()),
            "frac_no_history": float(np.isnan(self.weights).mean()),
        }
        if self.rollouts_saved is not None:
            out["rollouts_saved"] = float(self.rollouts_saved)
        if self.target_met is not None:
            out["target_met"] = float(self.target_met)
        if self.estimator_variance is not None and self.uniform_variance is not None:
            out["estimator_variance"] = self.estimator_variance
            out["uniform_variance"] = self.uniform_variance
            out["variance_ratio"] = (self.estimator_variance / self.uniform_variance if self.uniform_variance > 0
                                     else 1.0)
        return out


# ------------------------------------------------------------------------------------- history-based allocators
@dataclass(frozen=True)
class _Outcome:
    counts: np.ndarray
    weights: np.ndarray
    notes: tuple[str, ...] = ()
    rollouts_saved: int | None = None
    target_met: bool | None = None
    estimator_variance: float | None = None
    uniform_variance: float | None = None


HistoryAllocator = Callable[..., _Outcome]
HISTORY_ALLOCATORS: Registry[HistoryAllocator] = Registry("history-based allocator")
"""Allocators that need the success counts themselves, not priorities. Each is called as
``fn(num_correct, num_samples, plan, *, min_history, variance_target_ratio)`` with validated (M,) counts and a
feasible plan, and returns an outcome with counts in input order (Σ ≤ plan budget, bounds met)."""


def _with_history(num_samples: np.ndarray, min_history: int | None) -> np.ndarray:
    return num_samples >= (2 if min_history is None else min_history)


def _in_order(values: np.ndarray, num_samples: np.ndarray, fill: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run ``fill`` on the prompts in canonical order (by ``values``) and return its counts in input order."""
    order = canonical_order(values, num_samples)
    out = np.empty(values.size, dtype=np.int64)
    out[order] = fill(order)
    return out


@HISTORY_ALLOCATORS.register("variance_matched")
def _variance_matched(c: np.ndarray, n: np.ndarray, plan: _Plan, *, min_history: int | None,
                      variance_target_ratio: float, **_: object) -> _Outcome:
    """Smallest budget B' ≤ B whose variance-optimal integer allocation (``optimal`` with σ_i = √P_i) has
    Σ σ_i²/n_i ≤ ρ·Σ σ_i²/n̄ (uniform at n̄ = B/M), over the prompts with history. Prompts without history get the
    uniform share (``nan_share``) and are left out of both sums; σ = 0 prompts get n_min."""
    m = c.size
    known = _with_history(n, min_history)
    sigma = np.full(m, np.nan)
    sigma[known] = np.sqrt(np.clip(bernoulli_variance(c[known], n[known]), 0.0, None))
    k_nan = m - int(known.sum())
    nan_total = int(nan_share(k_nan, plan.budget, m).sum())
    mean = plan.budget / m
    s2 = sigma[known] ** 2
    uniform = float(s2.sum() / mean) if known.any() else None
    state: dict[str, bool] = {}

    def fill(order: np.ndarray) -> np.ndarray:
        w = sigma[order]
        nan = np.isnan(w)
        out = np.empty(m, dtype=np.int64)
        out[nan] = nan_share(k_nan, plan.budget, m)
        counts, met = variance_matched_counts(w[~nan], plan.budget - nan_total, plan.n_min, plan.n_max,
                                              variance_target_ratio * (uniform or 0.0))
        out[~nan] = counts
        state["met"] = met
        return out

    counts = _in_order(sigma, n, fill)
    spent = int(counts.sum())
    if uniform is None:
        return _Outcome(counts, sigma, ("no prompt has enough history: uniform share, no variance target",),
                        rollouts_saved=plan.budget - spent)
    variance = float((s2 / counts[known]).sum())
    notes: tuple[str, ...] = ()
    if not state["met"]:
        notes = (f"variance target not met: Σσ²/n = {variance:.6g} > {variance_target_ratio:g} × uniform "
                 f"{uniform:.6g} even with the full budget {plan.budget} (bounds [{plan.n_min}, {plan.n_max}] bind); "
                 f"the full budget is used",)
    return _Outcome(counts, sigma, notes, rollouts_saved=plan.budget - spent, target_met=state["met"],
                    estimator_variance=variance, uniform_variance=uniform)


@HISTORY_ALLOCATORS.register("knapsack")
def _knapsack(c: np.ndarray, n: np.ndarray, plan: _Plan, *, min_history: int | None, **_: object) -> _Outcome:
    """Knapsack RL (Li et al. 2025): maximise Σ Value(n_i, p̂_i), p̂_i = c_i/n_i from history, spending the whole
    budget (exact greedy, Value is concave in n). Prompts without history get the uniform share (``nan_share``)."""
    m = c.size
    known = _with_history(n, min_history)
    p = np.full(m, np.nan)
    p[known] = c[known] / n[known]
    k_nan = m - int(known.sum())

    def fill(order: np.ndarray) -> np.ndarray:
        w = p[order]
        nan = np.isnan(w)
        out = np.empty(m, dtype=np.int64)
        out[nan] = nan_share(k_nan, plan.budget, m)
        out[~nan] = knapsack_counts(w[~nan], plan.budget - int(out[nan].sum()), plan.n_min, plan.n_max)
        return out

    return _Outcome(_in_order(p, n, fill), p)


ALLOCATOR_NAMES: tuple[str, ...] = tuple(sorted(set(ALLOCATORS.names()) | set(HISTORY_ALLOCATORS.names())))
"""Every allocator name :func:`allocate_rollouts` accepts (weight-based and history-based), sorted."""


def knapsack_value(num_rollouts: object, success_rate: object) -> np.ndarray:
    """Value(N, p) = (1 − p^N − (1 − p)^N)·p(1 − p)² of Knapsack RL (Li et al. 2025, arXiv 2509.25849): the
    probability that a group of N rollouts has a non-zero GRPO gradient times the information gain p(1 − p)².
    Arrays of any broadcastable shapes; p ∈ [0, 1], N ≥ 0."""
    big_n = np.asarray(num_rollouts, dtype=np.float64)
    p = np.asarray(success_rate, dtype=np.float64)
    if not (np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
        raise ValueError("success_rate must lie in [0, 1]")
    if not (np.isfinite(big_n).all() and (big_n >= 0).all()):
        raise ValueError("num_rollouts must be finite and ≥ 0")
    q = 1.0 - p
    return (1.0 - p**big_n - q**big_n) * p * q * q


def allocate_rollouts(
    num_correct: object,
    num_samples: object,
    *,
    budget: int,
    allocator: str = "official",
    n_min: int = 8,
    n_max: int = 24,
    proxy_power: float = 1.0,
    min_history: int | None = 4,
    weight_floor: float | None = 0.01,
    mastery_threshold: float | None = 0.85,
    tie_breaker: float | None = 1e-6,
    n_explore: int = 4,
    infeasible: str = "clamp_budget",
    variance_target_ratio: float = 1.0,
) -> AllocationResult:
    """History counts → integer allocation, for every name in :data:`ALLOCATOR_NAMES` (Eq 5-6 and Algorithm 1 of
    DynaMO, arXiv 2602.19208; ``knapsack``: Li et al. 2025, arXiv 2509.25849).

    ``num_correct``, ``num_samples``: (M,) cumulative counts of the prompts in the batch (e.g. from
    ``SuccessHistory.counts``). The keyword names are exactly ``AllocationConfig.core_kwargs()``.

    Weight-based allocators (:data:`ALLOCATORS`: ``uniform``, ``official``, ``waterfill``, ``optimal``) split the
    budget by the priorities of :func:`priorities`. History-based ones (:data:`HISTORY_ALLOCATORS`) read the counts
    directly and ignore the priority options (``proxy_power``, ``weight_floor``, ``mastery_threshold``,
    ``tie_breaker``, ``n_explore``); prompts with fewer than ``min_history`` samples get the uniform share:

    * ``variance_matched``: the smallest budget B' ≤ B whose exact variance-optimal allocation (σ_i = √P_i) has
      estimator variance Σσ_i²/n_i ≤ ``variance_target_ratio`` × Σσ_i²/n̄ (uniform at n̄ = B/M); ρ > 1 saves more
      rollouts, ρ < 1 buys a lower variance. ``budget`` of the result is then B' ≤ B.
    * ``knapsack``: maximises Σ (1 − p̂^n − (1 − p̂)^n)·p̂(1 − p̂)², p̂ = c/n, spending the whole budget.
    """
    c, n = _count_pair(num_correct, num_samples)
    if not (isinstance(variance_target_ratio, (int, float)) and not isinstance(variance_target_ratio, bool)
            and math.isfinite(variance_target_ratio) and variance_target_ratio > 0):
        raise ValueError(f"variance_target_ratio={variance_target_ratio!r} must be a finite number > 0")
    if allocator not in ALLOCATORS and allocator not in HISTORY_ALLOCATORS:
        raise ValueError(f"allocator={allocator!r}: unknown; valid names: {', '.join(ALLOCATOR_NAMES)}")
    if allocator in HISTORY_ALLOCATORS:
        if min_history is not None:
            _integer("min_history", min_history, 2)
        _, requested, lo, hi, n = _prepare(np.zeros(c.size), budget, n_min, n_max, n)
        _integer("n_explore", n_explore, 0)
        plan = _plan(c.size, requested, lo, hi, infeasible)
        if c.size == 0:
            return AllocationResult(num_rollouts=np.zeros(0, dtype=np.int64), weights=np.zeros(0), budget=0,
                                    requested_budget=requested, n_min=plan.n_min, n_max=plan.n_max,
                                    allocator=allocator, notes=plan.notes)
        out = HISTORY_ALLOCATORS.get(allocator)(c, n, plan, min_history=min_history,
                                                variance_target_ratio=float(variance_target_ratio))
        counts = out.counts
        spent = int(counts.sum())
        if spent > plan.budget or counts.min() < plan.n_min or counts.max() > plan.n_max or (
                out.rollouts_saved is None and spent != plan.budget):
            raise RuntimeError(f"allocator {allocator!r} broke its contract: sum {spent} vs budget {plan.budget}, "
                               f"counts in [{int(counts.min())}, {int(counts.max())}] vs [{plan.n_min}, {plan.n_max}]")
        return AllocationResult(num_rollouts=counts, weights=out.weights, budget=spent, requested_budget=requested,
                                n_min=plan.n_min, n_max=plan.n_max, allocator=allocator,
                                notes=plan.notes + out.notes, rollouts_saved=out.rollouts_saved,
                                target_met=out.target_met, estimator_variance=out.estimator_variance,
                                uniform_variance=out.uniform_variance)
    w = priorities(c, n, proxy_power=proxy_power, min_history=min_history, weight_floor=weight_floor,
                   mastery_threshold=mastery_threshold, tie_breaker=tie_breaker)
    w, requested, n_min, n_max, n = _prepare(w, budget, n_min, n_max, n)
    n_explore = _integer("n_explore", n_explore, 0)
    plan = _plan(w.size, requested, n_min, n_max, infeasible)
    counts = _allocate(w, plan, allocator, n, n_explore)
    return AllocationResult(num_rollouts=counts, weights=w, budget=plan.budget, requested_budget=requested,
                            n_min=plan.n_min, n_max=plan.n_max, allocator=allocator, notes=plan.notes)


# --------------------------------------------------------------------------------------------- variance ratios
def variance_reduction_ratio(sigmas: object, num_rollouts: object) -> float:
    """Var(allocation)/Var(uniform) = (Σ σ_i²/n_i) / (Σ σ_i²/(B/M)), B = Σ n_i (Eq 44 of DynaMO, arXiv 2602.19208,
    generalised to any allocation). ``sigmas`` (M,) ≥ 0 per-rollout standard deviations, ``num_rollouts`` (M,) > 0
    (integer or continuous). All-zero σ gives 1.0 (both variances vanish)."""
    s = _counts("sigmas", sigmas)
    n = np.asarray(num_rollouts, dtype=np.float64)
    if n.shape != s.shape:
        raise ValueError(f"num_rollouts has shape {n.shape} but sigmas has shape {s.shape}")
    if s.size == 0 or not (np.isfinite(n).all() and (n > 0).all()):
        raise ValueError(f"num_rollouts must be a non-empty array of finite values > 0, got {n!r}")
    s2 = s * s
    uniform = s2.sum() * s.size / n.sum()
    return 1.0 if uniform == 0 else float((s2 / n).sum() / uniform)


def optimal_variance_ratio(sigmas: object) -> float:
    """(Σσ)²/(M·Σσ²) ≤ 1: the variance ratio of the unbounded optimum n_i ∝ σ_i (Eq 44 of DynaMO,
    arXiv 2602.19208; Cauchy-Schwarz, equality iff all σ_i are equal). All-zero σ gives 1.0."""
    s = _counts("sigmas", sigmas)
    if s.size == 0:
        raise ValueError("sigmas must be non-empty")
    s2 = float((s * s).sum())
    return 1.0 if s2 == 0 else float(s.sum() ** 2 / (s.size * s2))
