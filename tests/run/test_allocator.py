"""The one stateful rollout allocator every engine uses: allocation from history, the live Eq 44 ratio, metrics in
one namespace, and a versioned state file that round-trips exactly and reads the formats of earlier releases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynamo_rl.core.allocation import allocate_rollouts, bernoulli_variance, variance_reduction_ratio
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig
from dynamo_rl.run import metric_names as K
from dynamo_rl.run.allocator import (
    STATE_FILE,
    AllocatorStateError,
    RolloutAllocator,
    live_variance_ratio,
    per_prompt_counts,
)

CONFIG = AllocationConfig(mean_rollouts=4, n_min=2, n_max=8, min_history=2)
IDS = ["a", "b", "c", "d"]


def _trained() -> RolloutAllocator:
    allocator = RolloutAllocator(CONFIG)
    allocator.update(IDS, [4, 2, 1, 0], [4, 4, 4, 4])
    allocator.update(["a", "b"], [3, 1], [4, 4])
    return allocator


def test_allocation_is_the_core_allocation_of_the_history():
    allocator = _trained()
    got = allocator.allocate(IDS)
    correct, total = allocator.history.counts(IDS)
    want = allocate_rollouts(correct, total, budget=16, **CONFIG.core_kwargs()).num_rollouts
    assert got.counts() == want.tolist() and got.budget == 16
    assert len(set(got.counts())) > 1  # the history makes it non-uniform
    assert got.has_history.tolist() == [True] * 4


def test_allocate_has_no_side_effects():
    allocator = _trained()
    before = allocator.state_dict()
    allocator.allocate(IDS + ["new"])
    assert allocator.state_dict() == before


def test_live_ratio_is_eq44_over_prompts_with_history():
    allocator = RolloutAllocator(CONFIG)
    assert allocator.allocate(IDS).variance_ratio is None  # no history yet
    allocator.update(["a", "b"], [1, 2], [4, 4])
    allocation = allocator.allocate(IDS)
    correct, total = allocator.history.counts(["a", "b"])
    sigmas = np.sqrt(bernoulli_variance(correct, total))
    assert allocation.variance_ratio == pytest.approx(variance_reduction_ratio(sigmas, allocation.num_rollouts[:2]))
    assert live_variance_ratio(np.array([0.0, 4.0]), np.array([4.0, 4.0]), np.array([4, 4]), 2) == 1.0  # σ = 0


def test_metrics_use_the_shared_names():
    allocator = _trained()
    allocation = allocator.allocate(IDS)
    metrics = allocator.metrics(allocation, levels=[1, 1, 2, 2])
    assert metrics[K.ALLOC_NUM_ROLLOUTS] == allocation.counts()
    assert metrics[K.ALLOC_BUDGET] == metrics[K.ALLOC_BUDGET_REQUESTED] == 16 and metrics[K.ALLOC_ROLLOUTS_SAVED] == 0
    assert metrics[K.HISTORY_PROMPTS] == 4 and metrics[K.ALLOC_VARIANCE_RATIO] == allocation.variance_ratio
    assert metrics[K.LEVEL_ROLLOUTS.format(1)] + metrics[K.LEVEL_ROLLOUTS.format(2)] == 16
    scalars = allocator.metrics(allocation, scalars_only=True)
    assert K.ALLOC_HISTOGRAM not in scalars and K.ALLOC_NUM_ROLLOUTS not in scalars
    assert all(k.startswith(("alloc/", "history/")) for k in scalars)


def test_per_prompt_counts_aggregates_rollouts_in_first_appearance_order():
    ids, correct, scored = per_prompt_counts(["b", "a", "b", "b", "a"], [1, 0, 1, 0, 1],
                                             [True, True, True, False, True])
    assert ids == ["b", "a"] and correct.tolist() == [2, 1] and scored.tolist() == [2, 2]
    with pytest.raises(ValueError, match="one entry per rollout"):
        per_prompt_counts(["a"], [1, 0])


def test_state_file_round_trips_exactly_and_is_versioned(tmp_path):
    allocator = _trained()
    path = allocator.save(tmp_path)
    assert path.name == STATE_FILE
    data = json.loads(path.read_text())
    assert data["format"] == "dynamo-rl/allocator" and data["version"] == 2 and data["num_updates"] == 2
    restored = RolloutAllocator(CONFIG)
    assert restored.load(tmp_path)
    assert restored.state_dict() == allocator.state_dict()
    assert restored.allocate(IDS).counts() == allocator.allocate(IDS).counts()
    assert not RolloutAllocator(CONFIG).load(tmp_path / "empty")


@pytest.mark.parametrize("layout", ["trl_v1", "verl_v1", "builtin_history"])
def test_files_of_earlier_releases_load(tmp_path, layout):
    history = SuccessHistory()
    history.update(IDS, [4, 2, 1, 0], [4, 4, 4, 4])
    name, payload = {
        "trl_v1": ("dynamo_allocator_state.json", {"version": 1, "num_updates": 7, "history": history.state_dict()}),
        "verl_v1": ("dynamo_history.json", {"version": 1, "global_step": 9, "history": history.state_dict()}),
        "builtin_history": ("history.json", history.state_dict()),
    }[layout]
    (tmp_path / name).write_text(json.dumps(payload))
    allocator = RolloutAllocator(CONFIG)
    assert allocator.load(tmp_path)
    assert allocator.history.counts(IDS)[0].tolist() == [4, 2, 1, 0]
    assert allocator.num_updates == (7 if layout == "trl_v1" else 1)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable allocator state file"),
    ('{"format": "dynamo-rl/allocator", "version": 3, "history": {}}', "version 3"),
    ('{"hello": 1}', "not a dynamo-rl allocator state"),
    ("[1, 2]", "expected a JSON object"),
    ('{"format": "dynamo-rl/allocator", "version": 2, "num_updates": -1, "history": {}}', "num_updates=-1"),
    ('{"version": 1, "ids": ["a"], "correct": [5], "total": [4]}', "invalid success history"),
])
def test_unreadable_state_is_refused_naming_the_file(tmp_path, content, message):
    (tmp_path / STATE_FILE).write_text(content)
    allocator = RolloutAllocator(CONFIG)
    before = allocator.state_dict()
    with pytest.raises(AllocatorStateError, match=message) as info:
        allocator.load(tmp_path)
    assert str(tmp_path / STATE_FILE) in str(info.value)
    assert allocator.state_dict() == before  # nothing half-loaded


def test_budget_saving_allocator_reports_what_it_saved():
    config = AllocationConfig(allocator="variance_matched", mean_rollouts=8, n_min=2, n_max=16, min_history=2)
    allocator = RolloutAllocator(config)
    ids = [f"p{i}" for i in range(16)]
    allocator.update(ids, [0, 0, 0, 0, 8, 8, 8, 8, 4, 4, 2, 6, 1, 7, 3, 5], [8] * 16)
    allocation = allocator.allocate(ids)
    metrics = allocator.metrics(allocation, scalars_only=True)
    assert allocation.budget < 16 * 8
    assert metrics[K.ALLOC_ROLLOUTS_SAVED] == 16 * 8 - allocation.budget > 0
    # against uniform GRPO at the configured budget, the variance target (ρ = 1) is met with fewer rollouts
    correct, total = allocator.history.counts(ids)
    sigma2 = bernoulli_variance(correct, total)
    want = float((sigma2 / allocation.num_rollouts).sum() / (sigma2 / 8).sum())
    assert metrics[K.ALLOC_VARIANCE_RATIO_CONFIGURED] == pytest.approx(want) and want <= 1.0
    assert K.ALLOC_VARIANCE_RATIO_CONFIGURED not in _trained().metrics(_trained().allocate(IDS))  # full budget
