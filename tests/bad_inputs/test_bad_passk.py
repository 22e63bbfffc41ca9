"""Bad inputs to the public pass@k API (dynamo_rl.core.passk): one line naming the argument.

Each row of docs/bad_inputs.md ("Datasets, verifier, numerics, plots", area "pass@k") is one case here.
"""

from __future__ import annotations

import pytest

from dynamo_rl.core.passk import avg_at_n, mean_pass_at_k, pass_at_k

CASES = [
    pytest.param(lambda: pass_at_k(["4"], ["1"], 1), TypeError, "num_samples must hold integers, got dtype <U1 (e.g. '4')",
                 id="passk-string-counts"),
    pytest.param(lambda: pass_at_k(None, [1], 1), TypeError,
                 "num_samples must be a sequence of integers (one count per problem), got NoneType", id="passk-none"),
    pytest.param(lambda: pass_at_k([4, True], [1, 1], 1), TypeError, "num_samples[1] must be an integer, got bool True",
                 id="passk-bool-count"),
    pytest.param(lambda: pass_at_k([4], [1], "1"), ValueError, "k must be a positive integer, got '1'",
                 id="passk-k-string"),
    pytest.param(lambda: pass_at_k([4], [1], 0), ValueError, "k must be a positive integer, got 0", id="passk-k-zero"),
    pytest.param(lambda: pass_at_k([[4, 4], [4]], [1, 1], 1), ValueError,
                 "num_samples must be a flat sequence of integers (one count per problem), got a ragged or nested list",
                 id="passk-ragged"),
    pytest.param(lambda: pass_at_k([4], [float("nan")], 1), ValueError,
                 "num_correct must hold integers, got num_correct[0] = nan", id="passk-nan-correct"),
    pytest.param(lambda: pass_at_k([4], [5], 1), ValueError,
                 "row 0: need 0 ≤ num_correct ≤ num_samples and num_samples ≥ 1, got num_samples=4, num_correct=5",
                 id="passk-more-correct-than-samples"),
    pytest.param(lambda: pass_at_k([8, 4], [1, 1], 5), ValueError,
                 "row 1: k=5 exceeds num_samples=4; pass@k needs at least k samples", id="passk-k-above-n"),
    pytest.param(lambda: mean_pass_at_k([4, 4], [1], 1), ValueError,
                 "num_samples and num_correct must be 1-D of equal length, got shapes (2,) and (1,)",
                 id="passk-length-mismatch"),
    pytest.param(lambda: avg_at_n([], []), ValueError, "avg_at_n needs at least one problem, got 0", id="avg-at-n-empty"),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_bad_passk_input(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert message in str(info.value) and "\n" not in str(info.value)
