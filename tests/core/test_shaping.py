"""Entropy Advantages and Fork Tokens (spec §6.4-6.5, §10 item 8)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.core.shaping import entropy_advantages, fork_token_mask


def test_entropy_advantages_loop_reference():
    gen = torch.Generator().manual_seed(0)
    adv = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    ent = torch.rand(5, 7, generator=gen, dtype=torch.float64) * 4
    out = entropy_advantages(adv, ent, alpha=0.4, kappa=2.0)
    for a, h, o in zip(adv.flatten().tolist(), ent.flatten().tolist(), out.flatten().tolist()):
        assert o == pytest.approx(a + min(0.4 * h, abs(a) / 2.0))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(-100, 100, allow_nan=False), st.floats(0, 20)), min_size=1, max_size=30),
       st.floats(0, 5), st.floats(1.01, 10))
def test_entropy_advantages_never_flip_sign(pairs, alpha, kappa):
    adv = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    ent = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    out = entropy_advantages(adv, ent, alpha=alpha, kappa=kappa)
    assert torch.equal(torch.sign(out), torch.sign(adv))
    assert bool((out >= adv).all())


def test_entropy_advantages_no_gradient_through_entropy():
    ent = torch.rand(2, 3, requires_grad=True)
    adv = torch.randn(2, 3, requires_grad=True)
    out = entropy_advantages(adv, ent, alpha=0.4, kappa=2.0)
    assert not out.requires_grad
    with pytest.raises(ValueError, match="kappa"):
        entropy_advantages(adv, ent, alpha=0.4, kappa=1.0)
    with pytest.raises(ValueError, match="alpha"):
        entropy_advantages(adv, ent, alpha=-1.0, kappa=2.0)


@pytest.mark.parametrize("seed", range(4))
def test_fork_mask_selects_ceil_fraction_of_valid_tokens(seed):
    gen = torch.Generator().manual_seed(seed)
    B, T = 7, 13
    ent = torch.rand(B, T, generator=gen)
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    ent_padded = ent.masked_fill(~mask, 100.0)  # huge entropy on padding must never be selected
    sel = fork_token_mask(ent_padded, mask, 0.2)
    n_valid = int(mask.sum())
    assert int(sel.sum()) == math.ceil(0.2 * n_valid - 1e-9)
    assert not bool((sel & ~mask).any())
    rest = ent[mask & ~sel]
    if sel.any() and rest.numel():
        assert float(ent[sel].min()) >= float(rest.max())


def test_fork_mask_exact_multiples_and_ties():
    mask = torch.ones(3, 5, dtype=torch.bool)  # N = 15: 0.2·15 is 3.0000000000000004 in floating point
    ent = torch.zeros(3, 5)
    sel = fork_token_mask(ent, mask, 0.2)
    assert int(sel.sum()) == 3
    assert sel.flatten().nonzero().flatten().tolist() == [0, 1, 2]  # ties go to the lower flat index
    assert int(fork_token_mask(ent, mask, 1.0).sum()) == 15
    assert int(fork_token_mask(ent, torch.zeros_like(mask), 0.2).sum()) == 0


def test_fork_mask_bad_input():
    with pytest.raises(ValueError, match="top_ratio"):
        fork_token_mask(torch.zeros(2, 2), torch.ones(2, 2), 0.0)
    with pytest.raises(ValueError, match="shape"):
        fork_token_mask(torch.zeros(2, 2), torch.ones(2, 3), 0.2)
