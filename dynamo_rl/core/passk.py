"""Unbiased pass@k (Chen et al. 2021) and avg@n, the evaluation metrics (P@1, P@32) of DynaMO (arXiv 2602.19208).

Per problem i with n_i samples of which c_i are correct::

    pass@k = 1 − C(n−c, k) / C(n, k) = 1 − Π_{j=n−c+1}^{n} (1 − k/j),   and 1 when n − c < k.

The product form avoids huge binomials. Sample counts may differ per problem (ragged n). ``k > n_i`` has no unbiased
estimate: it raises ``ValueError`` naming the problem row (choose n ≥ k; A9 suggests n ≥ 32 for P@32). Every bad
argument raises one line naming it: ``TypeError`` for a wrong element type (strings, None, booleans), ``ValueError``
for a wrong value or shape (non-integral or non-finite counts, nested lists, ``c > n``, ``k < 1``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

_INT64_MAX = np.iinfo(np.int64).max


def _counts(name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as a 1-D int64 array; ``TypeError`` / ``ValueError`` naming ``name`` (and the row) otherwise."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"{name} must be a sequence of integers (one count per problem), got {type(value).__name__}")
    if isinstance(value, (list, tuple)):  # numpy would silently turn [True, 4] into [1, 4]
        flag = next((i for i, item in enumerate(value) if isinstance(item, (bool, np.bool_))), None)
        if flag is not None:
            raise TypeError(f"{name}[{flag}] must be an integer, got bool {value[flag]!r}")
    try:
        arr = np.atleast_1d(np.asarray(value))
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be a flat sequence of integers (one count per problem), got a ragged or "
                         f"nested {type(value).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one count per problem), got shape {arr.shape}")
    if arr.dtype.kind == "O":  # Python ints beyond int64, None, mixed types
        for i, item in enumerate(arr.tolist()):
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
                raise TypeError(f"{name}[{i}] must be an integer, got {type(item).__name__} {item!r:.40}")
            if not -_INT64_MAX <= item <= _INT64_MAX:
                raise ValueError(f"{name}[{i}] = {item} is out of range (at most {_INT64_MAX})")
        return arr.astype(np.int64)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        example = arr[0].item() if arr.size else None
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype} (e.g. {example!r:.40})")
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(arr) | (np.mod(arr, 1) != 0) | (np.abs(arr) > 2.0 ** 62))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} must hold integers, got {name}[{i}] = {float(arr[i])!r}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
        raise ValueError(f"{name} holds a value above {_INT64_MAX}")
    return arr.astype(np.int64)


def _as_counts(num_samples: ArrayLike, num_correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    n = _counts("num_samples", num_samples)
    c = _counts("num_correct", num_correct)
    if c.shape != n.shape:
        raise ValueError(f"num_samples and num_correct must be 1-D of equal length, got shapes {n.shape} and {c.shape}")
    bad = np.flatnonzero((n < 1) | (c < 0) | (c > n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"row {i}: need 0 ≤ num_correct ≤ num_samples and num_samples ≥ 1, "
                         f"got num_samples={int(n[i])}, num_correct={int(c[i])}")
    return n, c


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r:.40}")
    return int(k)


def pass_at_k(num_samples: ArrayLike, num_correct: ArrayLike, k: int) -> np.ndarray:
    """Unbiased pass@k per problem (Chen et al. 2021): float64 array (M,). Ragged ``num_samples`` allowed.

    ``pass@1 = c/n``; ``pass@k = 1`` when ``n − c < k``. Raises ``ValueError`` if ``k < 1`` or ``k > n_i`` for any
    row (the message names the row).
    """
    k = _check_k(k)
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
    values = pass_at_k(num_samples, num_correct, k)
    if values.size == 0:
        raise ValueError("mean_pass_at_k needs at least one problem, got 0")
    return float(np.mean(values))


def avg_at_n(num_samples: ArrayLike, num_correct: ArrayLike) -> float:
    """avg@n: mean over problems of the fraction c_i/n_i of correct samples (equals mean pass@1)."""
    n, c = _as_counts(num_samples, num_correct)
    if n.size == 0:
        raise ValueError("avg_at_n needs at least one problem, got 0")
    return float(np.mean(c / n))
