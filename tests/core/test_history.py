"""Success history (Sec. 4.2.2 / Algorithm 1 bookkeeping): counts, forgetting, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynamo_rl.core.allocation import allocate_rollouts
from dynamo_rl.core.history import SuccessHistory


def test_cumulative_counts_and_unseen_zeros():
    h = SuccessHistory()
    h.update(["a", "b"], [1, 0], [4, 4])
    h.update(["b", "c"], [3, 2], [8, 2])
    c, n = h.counts(["a", "b", "c", "zzz"])
    assert c.tolist() == [1, 3, 2, 0] and n.tolist() == [4, 12, 2, 0]
    assert c.dtype == np.float64 and len(h) == 3 and "b" in h and "zzz" not in h
    assert h.num_updates == 2 and h.ids() == ["a", "b", "c"]


def test_repeated_ids_in_one_update_are_summed():
    h = SuccessHistory()
    h.update(["x", "y", "x", "x"], [1, 0, 2, 0], [2, 3, 4, 1])
    c, n = h.counts(["x", "y"])
    assert c.tolist() == [3, 0] and n.tolist() == [7, 3]


def test_matches_a_dict_reference_with_forgetting():
    rng = np.random.default_rng(0)
    gamma = 0.9
    h, ref = SuccessHistory(forgetting=gamma), {}
    for _ in range(30):
        ids = [f"p{int(i)}" for i in rng.integers(0, 50, size=16)]
        n = rng.integers(1, 9, size=16)
        c = rng.integers(0, n + 1)
        for key in ref:
            ref[key] = (ref[key][0] * gamma, ref[key][1] * gamma)
        for pid, ci, ni in zip(ids, c, n):
            old = ref.get(pid, (0.0, 0.0))
            ref[pid] = (old[0] + ci, old[1] + ni)
        h.update(ids, c, n)
    keys = sorted(ref)
    c, n = h.counts(keys)
    np.testing.assert_allclose(c, [ref[k][0] for k in keys], rtol=1e-12)
    np.testing.assert_allclose(n, [ref[k][1] for k in keys], rtol=1e-12)
    assert n.max() < 8 * 16 / (1 - gamma)  # bounded effective history


def test_forgetting_one_equals_no_forgetting():
    a, b = SuccessHistory(), SuccessHistory(forgetting=1.0)
    for h in (a, b):
        h.update(["p", "q"], [1, 2], [3, 4])
        h.update(["p"], [2], [2])
    np.testing.assert_array_equal(a.counts(["p", "q"])[1], b.counts(["p", "q"])[1])


def test_state_dict_round_trip_through_json_gives_identical_allocations():
    rng = np.random.default_rng(1)
    h = SuccessHistory(forgetting=0.97)
    ids = [f"prompt-{i}" for i in range(300)]
    for _ in range(5):
        batch = [ids[i] for i in rng.choice(300, size=64, replace=False)]
        n = np.full(64, 8)
        h.update(batch, rng.binomial(8, rng.random(64)), n)
    state = json.loads(json.dumps(h.state_dict()))
    resumed = SuccessHistory.from_state_dict(state)
    assert resumed.forgetting == 0.97 and len(resumed) == len(h) and resumed.num_updates == 5
    query = ids[:128]
    for got, want in zip(resumed.counts(query), h.counts(query)):
        np.testing.assert_array_equal(got, want)
    a = allocate_rollouts(*h.counts(query), budget=16 * 128)
    b = allocate_rollouts(*resumed.counts(query), budget=16 * 128)
    np.testing.assert_array_equal(a.num_rollouts, b.num_rollouts)
    # and both keep evolving identically
    for hist in (h, resumed):
        hist.update(query[:10], [1] * 10, [4] * 10)
    np.testing.assert_array_equal(h.counts(query)[0], resumed.counts(query)[0])


def test_load_state_dict_warns_on_forgetting_mismatch_and_validates():
    h = SuccessHistory()
    h.update(["a"], [1], [2])
    other = SuccessHistory(forgetting=0.5)
    with pytest.warns(UserWarning, match="forgetting"):
        other.load_state_dict(h.state_dict())
    assert other.forgetting == 0.5 and other.counts(["a"])[1].tolist() == [2]
    bad = h.state_dict() | {"correct": [3.0]}
    with pytest.raises(ValueError, match=r"state\['correct'\]\[0\]=3.0 exceeds"):
        SuccessHistory().load_state_dict(bad)
    with pytest.raises(ValueError, match="missing keys"):
        SuccessHistory().load_state_dict({"version": 1})
    with pytest.raises(ValueError, match="duplicate"):
        SuccessHistory().load_state_dict(h.state_dict() | {"ids": ["a", "a"], "correct": [0, 0], "total": [1, 1]})


@pytest.mark.parametrize(("args", "match"), [
    ((["a", "b"], [1], [2, 2]), r"num_correct has shape \(1,\)"),
    ((["a"], [-1], [2]), r"num_correct\[0\]=-1.0"),
    ((["a"], [3], [2]), r"num_correct\[0\]=3.0 exceeds num_samples\[0\]=2.0 \(prompt 'a'\)"),
    ((["a", 7], [0, 0], [1, 1]), r"prompt_ids\[1\]=7 must be a str"),
    ((["a"], [0], [np.nan]), r"num_samples\[0\]=nan"),
])
def test_update_validation_names_the_argument_and_leaves_state_intact(args, match):
    h = SuccessHistory()
    h.update(["a"], [1], [2])
    with pytest.raises(ValueError, match=match):
        h.update(*args)
    assert h.counts(["a"])[1].tolist() == [2] and len(h) == 1 and h.num_updates == 1


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, True])
def test_forgetting_must_be_in_unit_interval(bad):
    with pytest.raises(ValueError, match="forgetting"):
        SuccessHistory(forgetting=bad)


def test_scales_to_dapo_sized_datasets():
    """17k prompts, many updates: correctness of the growth path (the speed is a benchmark, not a test)."""
    ids = [f"dapo-{i}" for i in range(17_500)]
    h = SuccessHistory()
    for start in range(0, 17_500, 512):
        batch = ids[start:start + 512]
        h.update(batch, np.ones(len(batch)), np.full(len(batch), 16))
    c, n = h.counts(ids)
    assert len(h) == 17_500 and (c == 1).all() and (n == 16).all()
