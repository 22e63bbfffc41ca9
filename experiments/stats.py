"""Statistics of the study: t confidence intervals over seeds, seed-mean curves and rollouts-to-target.

Pure numpy (scipy only for the t quantile, with a table fallback), so the helpers are unit-tested with hand-computed
values in ``tests/test_study_quick.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two-sided 95 % quantiles t_{0.975, df} for df = 1..30 (fallback when scipy is missing).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(confidence: float, df: int) -> float:
    """Two-sided Student-t quantile ``t_{(1+confidence)/2, df}``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df!r}")
    try:
        from scipy import stats

        return float(stats.t.ppf((1 + confidence) / 2, df))
    except ImportError:
        if abs(confidence - 0.95) > 1e-12:
            raise ImportError("t quantiles other than 95 % need scipy") from None
        return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values and its two-sided t confidence interval (``half_width`` is NaN when n < 2)."""

    mean: float
    low: float
    high: float
    half_width: float
    n: int

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """``"41.2 ± 3.1"`` (values × ``scale``); ``"41.2"`` without an interval; ``"–"`` for no values."""
        if self.n == 0:
            return "–"
        if math.isnan(self.half_width):
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.half_width * scale:.{digits}f}"

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {"mean": clean(self.mean), "low": clean(self.low), "high": clean(self.high),
                "half_width": clean(self.half_width), "n": self.n}


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean ± t_{(1+c)/2, n−1} · s/√n over the finite ``values`` (s: sample standard deviation, ddof = 1)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, float("nan"), float("nan"), float("nan"), 1)
    half = t_quantile(confidence, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, half, n)


def paired_difference(a: dict[int, float], b: dict[int, float], confidence: float = 0.95) -> Interval:
    """t interval of ``a[s] − b[s]`` over the seeds ``s`` present in both (runs of one seed share their problems)."""
    seeds = sorted(set(a) & set(b))
    return t_interval([a[s] - b[s] for s in seeds], confidence)


def mean_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Seed-mean of curves ``(x, y)`` on the x values that every curve has (NaN/None y values are skipped)."""
    if not curves:
        return np.zeros(0), np.zeros(0)
    common = set(curves[0][0])
    for x, _ in curves[1:]:
        common &= set(x)
    xs = np.array(sorted(common), dtype=np.float64)
    ys = []
    for x0 in xs:
        vals = [float(y[list(x).index(x0)]) for x, y in curves]
        vals = [v for v in vals if math.isfinite(v)]
        ys.append(float(np.mean(vals)) if vals else float("nan"))
    return xs, np.asarray(ys, dtype=np.float64)


def rollouts_to_target(rollouts: Sequence[float], accuracy: Sequence[float], target: float) -> float | None:
    """Rollouts at which the curve first reaches ``target``, linearly interpolated between evaluation points.

    ``rollouts`` must be increasing. Returns ``rollouts[0]`` when the first point already reaches the target and
    None when the curve never does (the method needs more than the budget).
    """
    x = np.asarray(rollouts, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"rollouts and accuracy must be 1-D of equal length, got {x.shape} and {y.shape}")
    if x.size and np.any(np.diff(x) <= 0):
        raise ValueError(f"rollouts must be strictly increasing, got {x.tolist()}")
    for i in range(x.size):
        if y[i] >= target:
            if i == 0:
                return float(x[0])
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + frac * (x[i] - x[i - 1]))
    return None


# ------------------------------------------------------------------------------------ power and paired tests
Z_POWER_80 = 0.8416
"""Standard-normal quantile of 0.8 (fallback for the power term without scipy)."""


def minimum_detectable_effect(differences: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired t-test at level ``alpha`` detects with probability ``power``,
    given the spread of the observed paired differences: (t_{1−α/2, n−1} + t_{power, n−1}) · s_d / √n.

    NaN with fewer than 2 finite differences. (A standard planning formula; it treats s_d as known.)
    """
    x = np.asarray([v for v in differences if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n < 2:
        return float("nan")
    df = n - 1
    t_alpha = t_quantile(1 - alpha, df)
    try:
        from scipy import stats

        t_power = float(stats.t.ppf(power, df))
    except ImportError:
        if abs(power - 0.8) > 1e-12:
            raise ImportError("power other than 0.8 needs scipy") from None
        t_power = Z_POWER_80
    return (t_alpha + t_power) * float(x.std(ddof=1)) / math.sqrt(n)


def paired_t_pvalue(differences: Sequence[float]) -> float | None:
    """Two-sided p-value of the one-sample t-test of ``differences`` against 0 (None without scipy or n < 2)."""
    x = np.asarray([v for v in differences if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size < 2:
        return None
    sd = float(x.std(ddof=1))
    if sd == 0:
        return 0.0 if float(x.mean()) != 0 else 1.0
    try:
        from scipy import stats
    except ImportError:
        return None
    t = float(x.mean()) / (sd / math.sqrt(x.size))
    return float(2 * stats.t.sf(abs(t), x.size - 1))


def paired_differences(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """``a[s] − b[s]`` for the seeds present in both, in seed order."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


# ------------------------------------------------------------------------------------ sample efficiency
Curve = tuple[Sequence[float], Sequence[float]]


def curve_value_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """The curve linearly interpolated at ``x`` (clamped to its ends)."""
    return float(np.interp(x, np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)))


@dataclass(frozen=True)
class Efficiency:
    """Rollouts a method needs to reach a target that the reference (GRPO) reaches mid-run — ``gain_fraction`` of
    the reference's gain from its first to its final accuracy — from seed-mean curves, with a percentile bootstrap
    over seeds (paired: one seed draw resamples both methods' runs of that seed; the target is recomputed)."""

    target: float
    """start + gain_fraction × (final − start) of the reference's seed-mean curve (final: mean of its last
    ``final_points`` evaluations)."""
    reference_rollouts: float | None
    rollouts: float | None
    """First crossing of the method's seed-mean curve (None: never reached within its budget)."""
    ratio: float | None
    """rollouts / reference_rollouts."""
    ratio_low: float
    ratio_high: float
    """95 % bootstrap interval of the ratio (inf: more than the budget in ≥ 2.5 % of the resamples)."""
    reached_share: float
    """Share of bootstrap resamples in which the method reaches the target."""
    n: int
    reference_budget: float = float("nan")
    """The reference's total rollouts (so its crossing can be read as a fraction of its budget)."""

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else (x if math.isfinite(x) else None)

        return {"target": self.target, "reference_rollouts": self.reference_rollouts, "rollouts": self.rollouts,
                "ratio": clean(self.ratio), "ratio_low": clean(self.ratio_low), "ratio_high": clean(self.ratio_high),
                "ratio_high_infinite": math.isinf(self.ratio_high), "reached_share": self.reached_share, "n": self.n,
                "reference_budget": clean(self.reference_budget)}


def _efficiency_once(method: list[Curve], reference: list[Curve], gain_fraction: float,
                     final_points: int) -> tuple[float, float | None, float | None, float]:
    rx, ry = mean_curve(reference)
    final = float(np.mean(ry[-final_points:]))
    target = float(ry[0]) + gain_fraction * (final - float(ry[0]))
    mx, my = mean_curve(method)
    return target, rollouts_to_target(rx, ry, target), rollouts_to_target(mx, my, target), float(rx[-1])


def sample_efficiency(method: dict[int, Curve], reference: dict[int, Curve], gain_fraction: float = 0.5,
                      final_points: int = 3, n_boot: int = 2000, seed: int = 0) -> Efficiency | None:
    """:class:`Efficiency` of ``method`` against ``reference`` (curves ``(rollouts, accuracy)`` by seed). None without
    common seeds. A reference that does not improve gives a target at (or below) its start: rollouts 0, ratio None."""
    seeds = sorted(set(method) & set(reference))
    if not seeds:
        return None
    target, ref_x, x, budget = _efficiency_once([method[s] for s in seeds], [reference[s] for s in seeds],
                                                gain_fraction, final_points)
    ratio = x / ref_x if x is not None and ref_x else None
    rng = np.random.default_rng(seed)
    ratios = []
    reached = 0
    for _ in range(n_boot):
        draw = [seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]
        _, r_ref, r_m, _ = _efficiency_once([method[s] for s in draw], [reference[s] for s in draw], gain_fraction,
                                            final_points)
        if r_m is None or not r_ref:
            ratios.append(math.inf)
        else:
            reached += 1
            ratios.append(r_m / r_ref)
    low, high = (float(np.quantile(ratios, q, method="inverted_cdf")) for q in (0.025, 0.975))  # inf-safe
    return Efficiency(target, ref_x, x, ratio, low, high, reached / n_boot, len(seeds), budget)


def seeds_for_mde(sd: float, target: float, alpha: float = 0.05, power: float = 0.8, max_seeds: int = 1000) -> int | None:
    """Fewest seeds n ≥ 2 whose paired MDE (t_{1−α/2, n−1} + t_{power, n−1}) · sd / √n is ≤ ``target``, for a
    paired-difference standard deviation ``sd`` (None if more than ``max_seeds`` would be needed)."""
    if not (math.isfinite(sd) and sd >= 0 and target > 0):
        raise ValueError(f"need a finite sd >= 0 and target > 0, got sd={sd!r}, target={target!r}")
    for n in range(2, max_seeds + 1):
        if minimum_detectable_effect([sd * v for v in _unit_sd_sample(n)], alpha, power) <= target:
            return n
    return None


def _unit_sd_sample(n: int) -> list[float]:
    """n values with sample standard deviation exactly 1 (so the MDE formula sees s_d = 1)."""
    x = np.linspace(-1.0, 1.0, n)
    return list(x / x.std(ddof=1))
