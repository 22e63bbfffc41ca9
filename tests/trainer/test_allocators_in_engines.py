"""Every registered allocator and both multi-round samplers run in the built-in trainer through the shared
RolloutAllocator; the TRL adapter runs the full-budget allocators and refuses the ones its fixed generation batch
cannot take, saying why."""

from __future__ import annotations

import numpy as np
import pytest

from dynamo_rl.method_config import allocator_names
from tests.trainer.tiny_run import run_tiny, tiny_config


@pytest.mark.parametrize("allocator", allocator_names())
def test_builtin_trainer_runs_every_allocator(tmp_path, allocator):
    config = tiny_config(tmp_path, steps=3, **{"allocation.allocator": allocator})
    result, _, _ = run_tiny(config)
    records = result.records
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        counts = np.array(record["alloc/num_rollouts"])
        assert record["alloc/budget"] == counts.sum() <= record["alloc/budget_requested"] == 2 * 3
        assert counts.min() >= 2 and counts.max() <= 5
        assert record["alloc/rollouts_saved"] == record["alloc/budget_requested"] - counts.sum()
    assert result.allocator.num_updates == 3


@pytest.mark.parametrize("sampler", ["dapo", "adaptive"])
def test_builtin_trainer_runs_multi_round_samplers_and_counts_every_rollout(tmp_path, sampler):
    config = tiny_config(tmp_path, steps=2, **{"rollout.sampler": sampler, "rollout.sampler_max_rounds": 3})
    result, _, backend = run_tiny(config, spy=True)
    for record in result.records:
        assert record["sampler/generated"] == record["sampler/kept"] + record["sampler/discarded"]
        assert record["alloc/budget"] == record["sampler/generated"]
    generated = sum(sum(counts) for _, counts in backend.calls)
    assert generated == sum(r["sampler/generated"] for r in result.records)
    # the history saw every generated rollout, discarded ones included
    history = result.allocator.history
    assert float(sum(history.counts(history.ids())[1])) == generated


def test_trl_refuses_variance_matched_with_the_reason(tmp_path):
    pytest.importorskip("trl")
    from dynamo_rl.adapters.trl import DynaMOConfig

    with pytest.raises(ValueError, match="variance_matched.*fixed generation_batch_size.*optimal"):
        DynaMOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none",
                     dynamo_allocator="variance_matched")


@pytest.mark.parametrize("allocator", ["optimal", "knapsack", "waterfill"])
def test_trl_accepts_full_budget_allocators(tmp_path, allocator):
    pytest.importorskip("trl")
    from dynamo_rl.adapters.trl import DynaMOConfig

    config = DynaMOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", num_generations=4,
                          per_device_train_batch_size=8, dynamo_allocator=allocator)
    assert config.method_config.allocation.allocator == allocator
