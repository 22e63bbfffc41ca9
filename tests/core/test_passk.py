"""Unbiased pass@k (spec §7, §10 item 9) against scipy's binomials and hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import comb

from dynamo_rl.core.passk import avg_at_n, mean_pass_at_k, pass_at_k


def _scipy(n, c, k):
    return 1.0 - comb(n - c, k, exact=True) / comb(n, k, exact=True)


def test_matches_scipy_on_ragged_counts():
    rng = np.random.default_rng(0)
    n = rng.integers(32, 300, size=50)
    c = np.array([rng.integers(0, ni + 1) for ni in n])
    for k in (1, 2, 5, 16, 32):
        got = pass_at_k(n, c, k)
        expected = np.array([_scipy(int(ni), int(ci), k) for ni, ci in zip(n, c)])
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        assert mean_pass_at_k(n, c, k) == pytest.approx(float(expected.mean()), rel=1e-10)


def test_pass_at_1_is_c_over_n_and_equals_avg_at_n():
    n = np.array([4, 10, 7, 256])
    c = np.array([1, 0, 7, 100])
    np.testing.assert_allclose(pass_at_k(n, c, 1), c / n)
    assert avg_at_n(n, c) == pytest.approx(float(np.mean(c / n)))
    assert mean_pass_at_k(n, c, 1) == pytest.approx(avg_at_n(n, c))


def test_all_passes_when_fewer_wrong_than_k():
    assert pass_at_k([10, 10, 10], [8, 7, 0], 3).tolist() == [1.0, pytest.approx(1 - comb(3, 3) / comb(10, 3)), 0.0]
    assert pass_at_k([5], [5], 5).tolist() == [1.0]
    assert pass_at_k([32], [1], 32).tolist() == [1.0]  # n − c = 31 < 32: any correct among 32


def test_large_n_is_stable():
    got = pass_at_k([10_000], [3], 1000)[0]
    assert 0 < got < 1 and np.isfinite(got)
    assert got == pytest.approx(_scipy(10_000, 3, 1000), rel=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match=r"row 1: k=5 exceeds num_samples=4"):
        pass_at_k([8, 4], [1, 1], 5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        pass_at_k([8], [1], 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        pass_at_k([8], [1], 1.5)
    with pytest.raises(ValueError, match=r"row 0: need 0 ≤ num_correct ≤ num_samples"):
        pass_at_k([3], [4], 1)
    with pytest.raises(ValueError, match="integers"):
        pass_at_k([3.5], [1], 1)
    with pytest.raises(ValueError, match="equal length"):
        pass_at_k([3, 4], [1], 1)
    with pytest.raises(ValueError, match="at least one problem"):
        mean_pass_at_k([], [], 1)


@pytest.mark.parametrize(
    ("num_samples", "num_correct", "k", "error", "match"),
    [
        (["4"], ["1"], 1, TypeError, r"num_samples must hold integers, got dtype <U1 \(e.g. '4'\)"),
        ([4], ["1"], 1, TypeError, r"num_correct must hold integers, got dtype <U1"),
        (None, [1], 1, TypeError, r"num_samples must be a sequence of integers .* got NoneType"),
        ("44", [1, 1], 1, TypeError, r"num_samples must be a sequence of integers .* got str"),
        ([4, True], [1, 1], 1, TypeError, r"num_samples\[1\] must be an integer, got bool True"),
        (np.array([True]), [1], 1, TypeError, r"num_samples must hold integers, got dtype bool"),
        ([4, None], [1, 1], 1, TypeError, r"num_samples\[1\] must be an integer, got NoneType"),
        ([3 + 1j], [1], 1, TypeError, r"num_samples must hold integers, got dtype complex128"),
        ([float("nan")], [1], 1, ValueError, r"num_samples must hold integers, got num_samples\[0\] = nan"),
        ([4], [float("inf")], 1, ValueError, r"num_correct must hold integers, got num_correct\[0\] = inf"),
        ([10**30], [1], 1, ValueError, r"num_samples\[0\] = 10{30} is out of range"),
        ([[4, 4], [4]], [1, 1], 1, ValueError, r"num_samples must be a flat sequence of integers"),
        ([[4, 4]], [[1, 1]], 1, ValueError, r"num_samples must be 1-D \(one count per problem\), got shape \(1, 2\)"),
        ([4], [1], "1", ValueError, r"k must be a positive integer, got '1'"),
        ([4], [1], True, ValueError, r"k must be a positive integer, got True"),
        ([4], [-1], 1, ValueError, r"row 0: need 0 ≤ num_correct ≤ num_samples"),
    ],
)
def test_every_bad_argument_is_one_line_naming_it(num_samples, num_correct, k, error, match):
    with pytest.raises(error, match=match) as info:
        pass_at_k(num_samples, num_correct, k)
    assert "\n" not in str(info.value)
    with pytest.raises(error, match=match):
        mean_pass_at_k(num_samples, num_correct, k)


def test_scalars_and_numpy_integers_are_accepted():
    assert pass_at_k(5, 2, np.int64(3)).tolist() == [pytest.approx(0.9)]
    assert pass_at_k(np.array([3], dtype=np.uint8), [1], 1).tolist() == [pytest.approx(1 / 3)]
    assert pass_at_k([4.0], [2.0], 2).tolist() == [pytest.approx(1 - 1 / 6)]
