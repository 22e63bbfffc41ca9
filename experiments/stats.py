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
