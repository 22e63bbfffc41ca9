"""Loss aggregation modes against loop references; normalisers; agreement when all lengths are equal."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.core.aggregation import AGGREGATIONS, aggregate, masked_mean


def _ref(loss, mask, mode, normalizer=None):
    B, T = len(loss), len(loss[0])
    rows = [[loss[i][t] for t in range(T) if mask[i][t]] for i in range(B)]
    nonempty = [r for r in rows if r]
    if mode == "token-mean":
        return sum(sum(r) for r in rows) / max(normalizer or sum(len(r) for r in rows), 1)
    if mode == "seq-mean-token-mean":
        return sum(sum(r) / len(r) for r in nonempty) / max(normalizer or len(nonempty), 1)
    if mode == "seq-mean-token-sum":
        return sum(sum(r) for r in rows) / max(normalizer or len(nonempty), 1)
    if mode == "seq-mean-token-sum-norm":  # Dr. GRPO as verl/TRL: mean over sequences of (token sum / L_max)
        return sum(sum(r) for r in rows) / max(normalizer or T * len(nonempty), 1)
    raise AssertionError(mode)


MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("normalizer", [None, 37.0])
def test_matches_loop_reference(mode, normalizer):
    gen = torch.Generator().manual_seed(0)
    loss = torch.randn(6, 11, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([0, 11, 3, 1, 7, 5])
    mask = torch.arange(11)[None, :] < lengths[:, None]
    out = aggregate(loss, mask, mode, normalizer)
    assert float(out) == pytest.approx(_ref(loss.tolist(), mask.tolist(), mode, normalizer))


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_modes_agree_when_all_lengths_equal(B, L, seed):
    gen = torch.Generator().manual_seed(seed)
    T = L + 3
    loss = torch.randn(B, T, generator=gen, dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, :L] = True
    tm = aggregate(loss, mask, "token-mean")
    torch.testing.assert_close(aggregate(loss, mask, "seq-mean-token-mean"), tm)
    torch.testing.assert_close(aggregate(loss, mask, "seq-mean-token-sum"), L * tm)
    torch.testing.assert_close(aggregate(loss, mask, "seq-mean-token-sum-norm", normalizer=L * B), tm)
    torch.testing.assert_close(aggregate(loss, mask, "seq-mean-token-sum-norm"), L * tm / T)


def test_normalizer_makes_accumulation_exact():
    gen = torch.Generator().manual_seed(1)
    loss = torch.randn(8, 10, generator=gen, dtype=torch.float64)
    mask = torch.rand(8, 10, generator=gen) < 0.6
    full = aggregate(loss, mask, "token-mean")
    total = mask.sum()
    parts = sum(aggregate(loss[i:i + 3], mask[i:i + 3], "token-mean", normalizer=total) for i in range(0, 8, 3))
    torch.testing.assert_close(parts, full)
    nonempty = (mask.sum(-1) > 0).sum()
    full_seq = aggregate(loss, mask, "seq-mean-token-mean")
    parts_seq = sum(aggregate(loss[i:i + 3], mask[i:i + 3], "seq-mean-token-mean", normalizer=nonempty)
                    for i in range(0, 8, 3))
    torch.testing.assert_close(parts_seq, full_seq)


def test_all_masked_gives_zero_and_padding_cannot_leak():
    loss = torch.full((2, 3), float("nan"), requires_grad=True)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for mode in MODES:
        out = aggregate(loss, mask, mode)
        assert float(out.detach()) == 0.0
        out.backward()
        assert bool((loss.grad == 0).all())
        loss.grad = None
    assert float(masked_mean(torch.tensor([1.0, float("nan")]), torch.tensor([True, False]))) == 1.0


def test_gradient_of_token_mean():
    loss = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    aggregate(loss, mask, "token-mean").backward()
    torch.testing.assert_close(loss.grad, mask.to(torch.float64) / 6)


def test_bad_input():
    with pytest.raises(KeyError, match="valid names: seq-mean-token-mean"):
        aggregate(torch.zeros(2, 2), torch.ones(2, 2), "mean")
    with pytest.raises(ValueError, match="loss and mask"):
        aggregate(torch.zeros(2, 2), torch.ones(2, 3), "token-mean")
    with pytest.raises(ValueError, match="normalizer"):
        aggregate(torch.zeros(2, 2), torch.ones(2, 2), "token-mean", normalizer=0)
    assert AGGREGATIONS.names() == sorted(MODES)
