"""Multi-round samplers (DAPO dynamic sampling, Reinforce-Ada adaptive early stopping) with a fake, deterministic
Bernoulli ``sample_fn``: budgets respected, counts exact, discarded rollouts counted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.rollout.multiround import (
    SamplingResult,
    adaptive_early_stopping,
    balanced_subset,
    dapo_dynamic_sampling,
)


@dataclass(frozen=True)
class Rollout:
    prompt: int
    k: int
    """Position among all rollouts generated for this prompt."""
    correct: bool


class FakeSampler:
    """Rollout k of prompt i is correct with probability p[i], decided by a generator seeded with (seed, i, k), so
    outcomes do not depend on how the requests are batched into rounds. Records every call."""

    def __init__(self, p: dict[int, float] | list[float], seed: int = 0) -> None:
        self.p = dict(enumerate(p)) if isinstance(p, list) else dict(p)
        self.seed = seed
        self.made: dict[int, int] = {}
        self.calls: list[list[tuple[int, int]]] = []

    def outcome(self, prompt: int, k: int) -> bool:
        return bool(np.random.default_rng([self.seed, prompt, k]).random() < self.p[prompt])

    def __call__(self, requests: list[tuple[int, int]]) -> list[list[Rollout]]:
        self.calls.append(list(requests))
        out = []
        for prompt, count in requests:
            start = self.made.get(prompt, 0)
            out.append([Rollout(prompt, start + j, self.outcome(prompt, start + j)) for j in range(count)])
            self.made[prompt] = start + count
        return out

    @property
    def total(self) -> int:
        return sum(self.made.values())


def check_accounting(res: SamplingResult, fake: FakeSampler) -> None:
    assert res.generated == fake.total == sum(res.num_generated.values())
    assert res.discarded == res.generated - res.num_kept >= 0
    assert res.rounds == len(fake.calls)
    assert res.num_generated == {p: n for p, n in fake.made.items()}
    for p, n in res.num_generated.items():
        assert res.num_correct[p] == sum(fake.outcome(p, k) for k in range(n))
    for p, kept in res.kept.items():
        ks = [r.k for r in kept]
        assert ks == sorted(ks) and all(r.prompt == p for r in kept)  # generation order, right prompt
    if res.budget is not None:
        assert res.generated <= res.budget


# ---------------------------------------------------------------------------------------------------- DAPO
def test_dapo_keeps_only_mixed_groups_and_counts_everything():
    p = [0.0, 1.0, 0.5, 0.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5]
    fake = FakeSampler(p, seed=1)
    res = dapo_dynamic_sampling(fake, range(10), group_size=4, batch_prompts=3, target_prompts=3)
    check_accounting(res, fake)
    for group in res.kept.values():
        assert 0 < sum(r.correct for r in group) < 4 and len(group) == 4
    assert len(res.kept) == 3 and res.stop_reason == "target_reached"
    assert all(len(c) == 3 for c in fake.calls) and all(n == 4 for _, n in sum(fake.calls, []))
    degenerate = sum(1 for q, n in res.num_generated.items() if res.num_correct[q] in (0, n))
    assert res.extra["degenerate_groups"] == degenerate
    assert res.extra["groups_generated"] == len(res.num_generated) == 3 * res.rounds
    assert res.discarded == 4 * (degenerate + res.extra["surplus_groups"])
    m = res.metrics()
    assert m["generated"] == res.generated and m["frac_kept_groups_mixed"] == 1.0
    assert m["frac_discarded"] == pytest.approx(res.discarded / res.generated)


def test_dapo_surplus_groups_are_discarded_and_counted():
    fake = FakeSampler({i: 0.5 for i in range(8)}, seed=3)
    mixed = [i for i in range(8) if 0 < sum(fake.outcome(i, k) for k in range(8)) < 8]
    assert len(mixed) >= 3
    res = dapo_dynamic_sampling(fake, range(8), group_size=8, batch_prompts=8, target_prompts=2)
    assert list(res.kept) == mixed[:2] and res.extra["surplus_groups"] == len(mixed) - 2
    assert res.generated == 64 and res.discarded == 64 - 16 and res.rounds == 1


def test_dapo_budget_max_rounds_and_exhaustion():
    hopeless = FakeSampler([0.0] * 50)
    res = dapo_dynamic_sampling(hopeless, range(50), group_size=4, batch_prompts=5, target_prompts=2, budget=50)
    check_accounting(res, hopeless)
    assert res.stop_reason == "budget" and res.generated == 48 and res.kept == {}  # 12 groups fit in 50
    assert [len(c) for c in hopeless.calls] == [5, 5, 2]  # the last round shrinks to what the budget pays for
    assert res.metrics()["budget_used"] == pytest.approx(48 / 50)

    capped = FakeSampler([0.0] * 50)
    res = dapo_dynamic_sampling(capped, range(50), group_size=4, batch_prompts=5, target_prompts=2, max_rounds=3)
    assert res.stop_reason == "max_rounds" and res.rounds == 3 and res.generated == 60 and res.discarded == 60

    short = FakeSampler([1.0] * 7)
    res = dapo_dynamic_sampling(short, iter(range(7)), group_size=2, batch_prompts=3, target_prompts=5)
    assert res.stop_reason == "prompts_exhausted" and res.generated == 14 and res.kept == {}

    zero = FakeSampler([0.5])
    res = dapo_dynamic_sampling(zero, [0], group_size=2, batch_prompts=1, target_prompts=1, budget=1)
    assert res.stop_reason == "budget" and res.generated == 0 and zero.calls == []


def test_dapo_validates():
    fake = FakeSampler([0.5] * 4)
    rep = dapo_dynamic_sampling(fake, [0, 1, 1, 0, 2], group_size=2, batch_prompts=3, target_prompts=3)
    assert sorted(rep.num_generated) == [0, 1, 2] and rep.extra["skipped_repeats"] == 2 and rep.generated == 6
    with pytest.raises(ValueError, match="group_size=1"):
        dapo_dynamic_sampling(fake, [0], group_size=1, batch_prompts=1, target_prompts=1)
    with pytest.raises(ValueError, match="returned 1 rollouts for prompt 0"):
        dapo_dynamic_sampling(lambda reqs: [[Rollout(p, 0, True)] for p, _ in reqs], [0], group_size=2,
                              batch_prompts=1, target_prompts=1)
    with pytest.raises(ValueError, match="no .correct"):
        dapo_dynamic_sampling(lambda reqs: [[object()] * n for _, n in reqs], [0], group_size=2, batch_prompts=1,
                              target_prompts=1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), min_size=1, max_size=40), st.integers(2, 6),
       st.integers(1, 8), st.integers(1, 10), st.one_of(st.none(), st.integers(0, 200)), st.integers(0, 5))
def test_dapo_properties(p, group_size, batch_prompts, target, budget, seed):
    fake = FakeSampler(p, seed)
    res = dapo_dynamic_sampling(fake, range(len(p)), group_size=group_size, batch_prompts=batch_prompts,
                                target_prompts=target, budget=budget)
    check_accounting(res, fake)
    assert len(res.kept) <= target
    assert res.generated == group_size * len(res.num_generated)
    assert all(0 < sum(r.correct for r in g) < group_size for g in res.kept.values())
    if res.stop_reason != "target_reached":
        assert res.extra["surplus_groups"] == 0


# --------------------------------------------------------------------------------------- adaptive stopping
def test_adaptive_stops_each_prompt_at_its_first_mixed_round_or_cap():
    p = [0.0, 1.0, 0.5, 0.2, 0.9]
    fake = FakeSampler(p, seed=4)
    res = adaptive_early_stopping(fake, range(5), round_size=4, n_max=16)
    check_accounting(res, fake)
    assert res.stop_reason == "all_stopped" and res.discarded == 0
    for i in range(5):
        outcomes = [fake.outcome(i, k) for k in range(16)]
        n = 16
        for r in range(1, 5):  # the first multiple of 4 that shows both outcomes
            if 0 < sum(outcomes[: 4 * r]) < 4 * r:
                n = 4 * r
                break
        assert res.num_generated[i] == n, i
    assert res.num_generated[0] == res.num_generated[1] == 16  # hopeless / mastered: sampled to the cap
    assert res.extra["prompts_capped"] >= 2 and res.extra["prompts_mixed"] == 5 - res.extra["prompts_capped"]
    assert res.rounds == max(res.num_generated.values()) // 4
    # later rounds only ask for the prompts still active
    for call in fake.calls[1:]:
        assert all(res.num_generated[q] > 4 for q, _ in call)


def test_adaptive_budget_is_never_exceeded_and_spread_evenly():
    fake = FakeSampler([0.0] * 6)
    res = adaptive_early_stopping(fake, range(6), round_size=4, n_max=32, budget=37)
    check_accounting(res, fake)
    assert res.generated == 37 and res.stop_reason == "budget"
    assert fake.calls[0] == [(i, 4) for i in range(6)]  # 24
    assert fake.calls[1] == [(0, 3), (1, 2), (2, 2), (3, 2), (4, 2), (5, 2)]  # 13 left: spread, odd unit first
    res0 = adaptive_early_stopping(FakeSampler([0.5]), [0], round_size=4, n_max=8, budget=0)
    assert res0.generated == 0 and res0.stop_reason == "budget" and res0.kept == {}


def test_adaptive_balanced_downsampling_and_official_rule():
    fake = FakeSampler([0.3] * 4, seed=7)
    res = adaptive_early_stopping(fake, range(4), round_size=8, n_max=64, min_correct=2, min_incorrect=2,
                                  group_size=4)
    check_accounting(res, fake)
    for i, kept in res.kept.items():
        pos = sum(r.correct for r in kept)
        assert len(kept) == 4
        if 0 < res.num_correct[i] and res.num_correct[i] < res.num_generated[i]:
            assert pos == min(2, res.num_correct[i]) or len(kept) - pos < 2
    assert res.discarded == res.generated - 16
    assert balanced_subset([Rollout(0, k, c) for k, c in enumerate([1, 1, 1, 0, 1])], 4) == [
        Rollout(0, 0, True), Rollout(0, 1, True), Rollout(0, 2, True), Rollout(0, 3, False)]  # only 1 negative
    assert [r.k for r in balanced_subset([Rollout(0, k, c) for k, c in enumerate([0, 0, 1, 0, 1, 1])], 4)] == \
        [0, 1, 2, 4]


def test_adaptive_stop_rule_hook_and_max_rounds():
    fake = FakeSampler([0.5] * 3, seed=2)
    res = adaptive_early_stopping(fake, range(3), round_size=2, n_max=100, stop_rule=lambda k, n: n >= 6)
    assert res.num_generated == {0: 6, 1: 6, 2: 6} and res.rounds == 3
    capped = adaptive_early_stopping(FakeSampler([0.0] * 3), range(3), round_size=2, n_max=100, max_rounds=2)
    assert capped.stop_reason == "max_rounds" and capped.generated == 12
    with pytest.raises(ValueError, match="distinct"):
        adaptive_early_stopping(fake, [0, 0], round_size=2, n_max=4)
    with pytest.raises(ValueError, match="round_size=0"):
        adaptive_early_stopping(fake, [0], round_size=0, n_max=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]), min_size=1, max_size=30), st.integers(1, 6),
       st.integers(1, 24), st.one_of(st.none(), st.integers(0, 300)), st.one_of(st.none(), st.integers(1, 8)),
       st.integers(0, 5))
def test_adaptive_properties(p, round_size, n_max, budget, group_size, seed):
    fake = FakeSampler(p, seed)
    res = adaptive_early_stopping(fake, range(len(p)), round_size=round_size, n_max=n_max, budget=budget,
                                  group_size=group_size)
    check_accounting(res, fake)
    assert all(n <= n_max for n in res.num_generated.values())
    for i, n in res.num_generated.items():
        k = res.num_correct[i]
        if budget is None:  # the prompt was still active before its last request (rounds of round_size)
            before = (n - 1) // round_size * round_size
            assert not 0 < sum(fake.outcome(i, j) for j in range(before)) < before
        if res.stop_reason == "all_stopped":
            assert n == n_max or 0 < k < n
        if group_size is not None:
            assert len(res.kept[i]) == min(group_size, n)
        else:
            assert len(res.kept[i]) == n
    if res.stop_reason == "all_stopped" and budget is None:
        assert set(res.num_generated) == set(range(len(p)))
