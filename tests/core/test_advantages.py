"""Outcome advantages (Eq 2 and baselines) against loop references over ragged groups."""

from __future__ import annotations

import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.core.advantages import ADVANTAGES, compute_advantages


def _members(rewards, ids, gid):
    return [r for r, g in zip(rewards, ids) if g == gid]


def _ref_grpo(rewards, ids, eps=1e-6):
    out = []
    for r, gid in zip(rewards, ids):
        m = _members(rewards, ids, gid)
        if len(m) == 1:
            out.append(0.0)
            continue
        out.append((r - statistics.fmean(m)) / (statistics.stdev(m) + eps))
    return out


def _ref_rloo(rewards, ids):
    out = []
    for i, (r, gid) in enumerate(zip(rewards, ids)):
        others = [x for j, (x, g) in enumerate(zip(rewards, ids)) if g == gid and j != i]
        out.append(r - statistics.fmean(others) if others else 0.0)
    return out


ragged_batch = st.lists(st.tuples(st.integers(0, 8), st.sampled_from([0.0, 1.0, -1.0, 0.5])), min_size=1,
                        max_size=48)


@settings(max_examples=60, deadline=None)
@given(ragged_batch)
def test_against_loop_references_and_zero_group_mean(rows):
    ids = [r[0] for r in rows]
    rewards = [r[1] for r in rows]
    R = torch.tensor(rewards, dtype=torch.float64)
    G = torch.tensor(ids)
    grpo = compute_advantages("grpo", R, G)
    torch.testing.assert_close(grpo, torch.tensor(_ref_grpo(rewards, ids), dtype=torch.float64), atol=1e-6, rtol=1e-6)
    rloo = compute_advantages("rloo", R, G)
    torch.testing.assert_close(rloo, torch.tensor(_ref_rloo(rewards, ids), dtype=torch.float64), atol=1e-9, rtol=1e-9)
    dr = compute_advantages("dr_grpo", R, G)
    for name, adv in (("grpo", grpo), ("rloo", rloo), ("dr_grpo", dr)):
        for gid in set(ids):
            sel = G == gid
            assert abs(float(adv[sel].sum())) < 1e-6, f"{name}: advantages of group {gid} do not sum to 0"


def test_grpo_hand_worked():
    R = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    G = torch.tensor([0, 0, 0, 0, 1, 1, 2, 3, 3])
    adv = compute_advantages("grpo", R, G)
    std = statistics.stdev([1, 0, 0, 0])  # unbiased: 0.5
    assert std == pytest.approx(0.5)
    expected = [0.75 / (0.5 + 1e-6), -0.25 / (0.5 + 1e-6), -0.25 / (0.5 + 1e-6), -0.25 / (0.5 + 1e-6),
                0.0, 0.0,  # all-equal group
                0.0,  # singleton group: 0 (verl would give A = R = 1)
                -0.5 / (2 ** 0.5 / 2 + 1e-6), 0.5 / (2 ** 0.5 / 2 + 1e-6)]
    torch.testing.assert_close(adv, torch.tensor(expected))


def test_grpo_eps_and_affine_invariance():
    R01 = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    G = torch.tensor([3, 3, 3, 5, 5])
    Rpm = 2 * R01 - 1  # DAPO's ±1 score
    torch.testing.assert_close(compute_advantages("grpo", R01, G, eps=1e-12),
                               compute_advantages("grpo", Rpm, G, eps=1e-12))
    large_eps = compute_advantages("grpo", R01, G, eps=1e3)
    assert large_eps.abs().max() < 1e-3
    with pytest.raises(ValueError, match="eps"):
        compute_advantages("grpo", R01, G, eps=0.0)


def test_dr_grpo_and_rloo_hand_worked():
    R = torch.tensor([1.0, 0.0, 0.0, 2.0])
    G = torch.tensor([0, 0, 0, 1])
    torch.testing.assert_close(compute_advantages("dr_grpo", R, G), torch.tensor([2 / 3, -1 / 3, -1 / 3, 0.0]))
    torch.testing.assert_close(compute_advantages("rloo", R, G), torch.tensor([1.0, -0.5, -0.5, 0.0]))


def test_w_reinforce_mapping():
    for R in (torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([1.0, -1.0, 1.0, -1.0])):
        G = torch.tensor([0, 0, 1, 1])
        torch.testing.assert_close(compute_advantages("w_reinforce", R, G), torch.tensor([0.1, -1.0, 0.1, -1.0]))
        torch.testing.assert_close(compute_advantages("w_reinforce", R, G, lam=0.5),
                                   torch.tensor([0.5, -1.0, 0.5, -1.0]))
    # No group baseline: an all-correct group keeps its positive advantage.
    torch.testing.assert_close(compute_advantages("w_reinforce", torch.ones(3), torch.zeros(3, dtype=torch.long)),
                               torch.full((3,), 0.1))


def test_integer_rewards_are_cast():
    adv = compute_advantages("grpo", torch.tensor([1, 0]), torch.tensor([0, 0]))
    assert adv.dtype == torch.get_default_dtype()
    assert adv[0] > 0 > adv[1]


def test_bad_inputs():
    with pytest.raises(KeyError, match="valid names: dr_grpo, grpo, rloo, w_reinforce"):
        compute_advantages("ppo", torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="rewards must be a 1-D"):
        compute_advantages("grpo", torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="group_ids must be a tensor of shape"):
        compute_advantages("grpo", torch.zeros(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        compute_advantages("grpo", torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"non-finite values at rows \[1\]"):
        compute_advantages("grpo", torch.tensor([0.0, float("nan")]), torch.zeros(2, dtype=torch.long))


def test_registry_is_complete():
    assert set(ADVANTAGES.names()) == {"grpo", "dr_grpo", "w_reinforce", "rloo"}
