"""Allocation speed: time per call at M = 512 prompts (goal < 1 ms) and the scaling ratio M = 65,536 vs 512
(goal ≤ 150×), for each allocator side by side in one run, in wall and CPU time; two plain numpy operations give
the machine's own scaling for reference (an O(M log M) argsort cannot scale better than ~128·16/9 ≈ 228× once
fixed overheads vanish); plus SuccessHistory update/look-up at DAPO scale.

Weights are realistic: priorities from a random success history (a mix of fresh, mastered, unsolved and mixed
prompts), budget 16·M, bounds [8, 24], ``num_samples`` passed so ``official`` runs its exploration step.

    OMP_NUM_THREADS=1 python benchmarks/bench_allocation.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from dynamo_rl.core.allocation import ALLOCATORS, allocate, priorities
from dynamo_rl.core.history import SuccessHistory


def make_history(m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    total = rng.choice([0, 2, 8, 16, 32, 48], size=m, p=[0.1, 0.05, 0.25, 0.3, 0.2, 0.1]).astype(float)
    p = rng.beta(0.4, 0.4, size=m)
    correct = rng.binomial(total.astype(np.int64), p).astype(float)
    return correct, total


def time_call(fn, repeats: int, stat=min) -> tuple[float, float]:
    """(wall, CPU) seconds per call: ``stat`` (best by default, timeit's advice) over ``repeats`` calls after one
    warm-up. CPU time (``time.process_time``) excludes the time the process is descheduled, which dominates long
    calls on a shared, overloaded machine; both are printed."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return stat(wall), stat(cpu)


def row(name: str, t_small: tuple[float, float], t_large: tuple[float, float]) -> str:
    return (f"{name:<11} {t_small[0] * 1e3:>9.3f} {t_large[0] * 1e3:>10.2f} {t_large[0] / t_small[0]:>7.1f}x   "
            f"{t_small[1] * 1e3:>9.3f} {t_large[1] * 1e3:>10.2f} {t_large[1] / t_small[1]:>7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--small", type=int, default=512)
    parser.add_argument("--large", type=int, default=65_536)
    parser.add_argument("--median", action="store_true", help="report medians instead of best-of-N")
    args = parser.parse_args()
    stat = statistics.median if args.median else min
    rng = np.random.default_rng(0)
    cases = {m: make_history(m, rng) for m in (args.small, args.large)}
    weights = {m: priorities(c, n) for m, (c, n) in cases.items()}
    small, large = args.small, args.large

    print(f"{'median' if args.median else 'best'} of {args.repeats} calls; allocate(): budget 16·M, bounds [8, 24]. "
          f"Goals: < 1 ms at M={small}, ratio M={large}/M={small} ≤ 150x")
    print(f"{'':<11} {'---------- wall time (ms) ----------':>31}   {'---------- CPU time (ms) -----------':>31}")
    print(f"{'method':<11} {'M=' + str(small):>9} {'M=' + str(large):>10} {'ratio':>8}   "
          f"{'M=' + str(small):>9} {'M=' + str(large):>10} {'ratio':>8}")
    for method in ALLOCATORS.names():
        t = {m: time_call(lambda m=m, method=method: allocate(weights[m], 16 * m, 8, 24, method,
                                                              num_samples=cases[m][1]), args.repeats, stat)
             for m in (small, large)}
        print(row(method, t[small], t[large]))

    # priorities() is part of every allocation step; two plain numpy references show this machine's own scaling
    rows = {
        "priorities": lambda c, n: priorities(c, n),
        "ref:argsort": lambda c, n: np.argsort(c / (n + 1)),
        "ref:10 ops": lambda c, n: np.clip((c * 0.5 + n) / (n + 1.0) - 0.3, 0.0, 1.0).astype(np.int64).sum(),
    }
    for name, fn in rows.items():
        t = {m: time_call(lambda c=c, n=n, fn=fn: fn(c, n), args.repeats, stat) for m, (c, n) in cases.items()}
        print(row(name, t[small], t[large]))

    # SuccessHistory at DAPO-Math-17k scale: one step = counts() for the batch, then update()
    ids = [f"dapo-{i}" for i in range(17_500)]
    hist = SuccessHistory(forgetting=0.99)
    for start in range(0, len(ids), 512):
        hist.update(ids[start:start + 512], np.ones(len(ids[start:start + 512])), np.full(len(ids[start:start + 512]), 16))
    batch = [ids[i] for i in rng.choice(len(ids), 512, replace=False)]
    ones, sixteen = np.ones(512), np.full(512, 16.0)
    t_counts = time_call(lambda: hist.counts(batch), args.repeats, stat)[0]
    t_update = time_call(lambda: hist.update(batch, ones, sixteen), args.repeats, stat)[0]
    t_all = time_call(lambda: hist.counts(ids), max(3, args.repeats // 5), stat)[0]
    print(f"SuccessHistory ({len(hist)} prompts, forgetting 0.99), wall: counts(512) {t_counts * 1e3:.3f} ms, "
          f"update(512) {t_update * 1e3:.3f} ms, counts(all) {t_all * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
