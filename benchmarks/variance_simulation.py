"""Does rollout allocation reduce estimator variance as Eq 5 / Eq 44 of DynaMO (arXiv 2602.19208) predict?

Simulation: M prompts with heterogeneous success rates p_i ~ Beta(a, a), per-rollout reward variance
σ_i² = p_i(1 − p_i). The quantity estimated is Σ_i p_i by Σ_i (mean reward of n_i rollouts of prompt i); its
variance is Σ σ_i²/n_i, the objective of Eq 5 (per-prompt gradient estimators behave the same way with σ_i their
gradient standard deviation). Every allocation spends the same budget B = 16·M; the ratio to uniform allocation is
measured by Monte Carlo and compared with the analytic Σσ²/n ratio and the unbounded optimum (Σσ)²/(M·Σσ²).

Allocations compared (``true`` = weights from the true p_i, ``hist`` = from a finite history of ``--history``
rollouts per prompt, as in training):
  uniform, official (variance weights P, authors' rule), waterfill with variance weights P (paper: A1),
  waterfill with σ = √P (theory), each integer in [8, 24]; plus the continuous σ-waterfill in [8, 24] and
  unbounded (analytic only: non-integer n cannot be sampled).

    OMP_NUM_THREADS=1 python benchmarks/variance_simulation.py [--prompts 512 --trials 20000]
"""

from __future__ import annotations

import argparse

import numpy as np

from dynamo_rl.core.allocation import (
    allocate,
    allocate_rollouts,
    optimal_variance_ratio,
    variance_reduction_ratio,
    water_level,
)


def mc_variance(p: np.ndarray, n: np.ndarray, trials: int, rng: np.random.Generator) -> tuple[float, float]:
    """Monte-Carlo variance of Σ_i Binomial(n_i, p_i)/n_i, with its standard error."""
    totals = (rng.binomial(n, p, size=(trials, p.size)) / n).sum(axis=1)
    var = totals.var(ddof=1)
    return float(var), float(var * np.sqrt(2.0 / (trials - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--history", type=int, default=16, help="rollouts per prompt in the simulated history")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    m, budget, lo, hi = args.prompts, 16 * args.prompts, 8, 24

    for a in (0.3, 1.0):
        rng = np.random.default_rng(args.seed)
        p = rng.beta(a, a, size=m)
        sigma = np.sqrt(p * (1 - p))
        hist_n = np.full(m, float(args.history))
        hist_c = rng.binomial(args.history, p).astype(float)
        pure = dict(weight_floor=None, mastery_threshold=None, tie_breaker=0.0)
        allocations = {
            "uniform": np.full(m, budget // m),
            "official / true P": allocate(sigma**2, budget, lo, hi, "official"),
            "official / hist (code rule)": allocate_rollouts(hist_c, hist_n, budget=budget).num_rollouts,
            "waterfill P / true": allocate(sigma**2, budget, lo, hi, "waterfill"),
            "waterfill P / hist": allocate_rollouts(hist_c, hist_n, budget=budget, allocator="waterfill",
                                                    **pure).num_rollouts,
            "waterfill σ / true": allocate(sigma, budget, lo, hi, "waterfill"),
            "waterfill σ / hist": allocate_rollouts(hist_c, hist_n, budget=budget, allocator="waterfill",
                                                    proxy_power=0.5, **pure).num_rollouts,
        }
        base, base_se = mc_variance(p, allocations["uniform"], args.trials, rng)
        print(f"\np_i ~ Beta({a}, {a}), M={m}, B={budget}, bounds [{lo}, {hi}], {args.trials} trials, "
              f"history {args.history} rollouts/prompt")
        print(f"unbounded optimum (Σσ)²/(M·Σσ²) = {optimal_variance_ratio(sigma):.4f}")
        print(f"{'allocation':<30} {'analytic':>9} {'measured':>9} {'± s.e.':>8}")
        for name, n in allocations.items():
            var, se = mc_variance(p, n, args.trials, rng)
            ratio = var / base
            ratio_se = ratio * np.hypot(se / var, base_se / base)
            print(f"{name:<30} {variance_reduction_ratio(sigma, n):>9.4f} {ratio:>9.4f} {ratio_se:>8.4f}")
        cont = water_level(sigma, budget, lo, hi)
        free = water_level(sigma, budget, 1e-9, 1e9)
        print(f"{'waterfill σ continuous [8,24]':<30} {variance_reduction_ratio(sigma, cont):>9.4f} {'-':>9}")
        print(f"{'waterfill σ continuous, free':<30} {variance_reduction_ratio(sigma, free):>9.4f} {'-':>9}")


if __name__ == "__main__":
    main()
