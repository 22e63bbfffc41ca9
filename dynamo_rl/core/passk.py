"""Unbiased pass@k (Chen et al. 2021) and avg@n, the evaluation metrics (P@1, P@32) of DynaMO (arXiv 2602.19208).

Per problem i with n_i samples of which c_i are correct::

    pass@k = 1 − C(n−c, k) / C(n, k) = 1 − Π_{j=n−c+1}^{n} (1 − k/j),   and 1 when n − c < k.

The product form avoids huge binomials. Sample counts may differ per problem (ragged n). ``k > n_i`` has no unbiased
estimate: it raises ``ValueError`` naming the problem row (choose n ≥ k; A9 suggests n ≥ 32 for P@32).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _as_counts(num_samples: ArrayLike, num_correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    n = np.atleast_1d(np.asarray(num_samples))
    c = np.atleast_1d(np.asarray(num_correct))
    if n.ndim != 1 or c.shape != n.shape:
        raise ValueError(f"num_samples and num_correct must be 1-D of equal length, got shapes {n.shape} and {c.shape}")
    for name, arr in (("num_samples", n), ("num_correct", c)):
        if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integers, got {arr.tolist()[:10]}")
    n, c = n.astype(np.int64), c.astype(np.int64)
    bad = np.flatnonzero((n < 1) | (c < 0) | (c > n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"row {i}: need 0 ≤ num_correct ≤ num_samples and num_samples ≥ 1, "
                         f"got num_samples={int(n[i])}, num_correct={int(c[i])}")
    return n, c


def pass_at_k(num_samples: ArrayLike, num_correct: ArrayLike, k: int) -> np.ndarray:
    """Unbiased pass@k per problem (Chen et al. 2021): float64 array (M,). Ragged ``num_samples`` allowed.

    ``pass@1 = c/n``; ``pass@k = 1`` when ``n − c < k``. Raises ``ValueError`` if ``k < 1`` or ``k > n_i`` for any
    row (the message names the row).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n, c = _as_counts(num_samples, num_correct)
    too_few = np.flatnonzero(n < k)
    if too_few.size:
        i = int(too_few[0])
        raise ValueError(f"row {i}: k={k} exceeds num_samples={int(n[i])}; pass@k needs at least k samples")
    out = np.ones(n.shape, dtype=np.float64)
    for i in np.flatnonzero(n - c >= k):
        out[i] = 1.0 - np.prod(1.0 - k / np.arange(n[i] - c[i] + 1, n[i] + 1, dtype=np.float64))
    return out


def mean_pass_at_k(num_samples: ArrayLike, num_correct: ArrayLike, k: int) -> float:
    """Mean over problems of :func:`pass_at_k` (the reported P@k). Raises ``ValueError`` for zero problems."""
    if np.asarray(num_samples).size == 0:
        raise ValueError("mean_pass_at_k needs at least one problem, got 0")
    return float(np.mean(pass_at_k(num_samples, num_correct, k)))


def avg_at_n(num_samples: ArrayLike, num_correct: ArrayLike) -> float:
    """avg@n: mean over problems of the fraction c_i/n_i of correct samples (equals mean pass@1)."""
    n, c = _as_counts(num_samples, num_correct)
    if n.size == 0:
        raise ValueError("avg_at_n needs at least one problem, got 0")
    return float(np.mean(c / n))
