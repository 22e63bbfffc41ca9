"""Allocation bookkeeping of the verl adapter (pure Python: runs with or without verl installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynamo_rl.adapters.verl.allocation import (
    VerlRolloutAllocator,
    load_history,
    parse_trajectory_key,
    save_history,
    stable_prompt_ids,
)
from dynamo_rl.adapters.verl.settings import loss_mismatches, resolve_settings
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig

CONFIG = AllocationConfig(n_min=2, n_max=8, mean_rollouts=4)


def test_stable_ids_use_extra_info_index_else_a_prompt_hash():
    chat = [{"role": "user", "content": "1+1?"}]
    ids = stable_prompt_ids([{"index": "dapo/7"}, {"index": 0}, None, {"split": "train"}, {"index": None}],
                            [chat, chat, chat, [{"role": "user", "content": "2+2?"}], chat])
    assert ids[0] == "dapo/7"
    assert ids[1] == "0"  # an explicit index 0 is an id, not "missing"
    assert ids[2].startswith("sha1:") and ids[2] == ids[4]  # same prompt → same hash, in any process
    assert ids[3].startswith("sha1:") and ids[3] != ids[2]
    with pytest.raises(ValueError, match="raw_prompts"):
        stable_prompt_ids([None], [])


def test_trajectory_keys_parse_like_verl():
    assert parse_trajectory_key("9f1c-uuid-x_3_0") == ("9f1c-uuid-x", "3")
    with pytest.raises(ValueError, match="trajectory key"):
        parse_trajectory_key("no-session")


def _keys(uid: str, n: int) -> list[str]:
    return [f"{uid}_{s}_0" for s in range(n)]


def test_allocation_sums_to_the_budget_and_history_maps_back_to_prompt_ids():
    allocator = VerlRolloutAllocator(CONFIG)
    prompts = ["p0", "p1", "p2", "p3"]
    uids = [f"u{i}" for i in range(4)]
    first = allocator.allocate(uids, prompts, mean_rollouts=4)
    assert first.sum() == 16 and first.tolist() == [4, 4, 4, 4]  # no history yet: uniform
    # scored batch: p0 all wrong, p1 half right, p2 all right, p3 1/4; rows in shuffled order, plus a padding row
    keys, scores, tags = [], [], []
    for uid, correct in zip(uids, ([0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0])):
        keys += _keys(uid, 4)
        scores += correct
        tags += [{}] * 4
    keys.append("u1_0_0")
    scores.append(1.0)
    tags.append({"is_padding": True})
    order = np.random.default_rng(0).permutation(len(keys))
    metrics = allocator.update_from_trajectories([keys[i] for i in order], [scores[i] for i in order],
                                                 [tags[i] for i in order])
    correct, total = allocator.history.counts(prompts)
    assert correct.tolist() == [0, 2, 4, 1] and total.tolist() == [4, 4, 4, 4]
    assert metrics["dynamo/history/batch_rollouts"] == 16 and metrics["dynamo/history/unknown_rows"] == 0
    assert allocator.pending_uids == 0
    # next epoch: new uids for the same prompts; the budget moves to the uncertain ones and still sums exactly
    second = allocator.allocate([f"v{i}" for i in range(4)], prompts, mean_rollouts=4)
    assert second.sum() == 16 and second.min() >= 2 and second.max() <= 8
    assert second[1] == second.max() and second[1] > second[2]
    assert allocator.last_metrics and all(k.startswith("dynamo/allocation/") for k in allocator.last_metrics)


def test_multi_output_sessions_count_once_with_their_last_output_and_unknown_uids_are_skipped():
    allocator = VerlRolloutAllocator(CONFIG, correct_threshold=0.5)
    allocator.allocate(["u"], ["p"], mean_rollouts=4)
    keys = ["u_0_0", "u_0_1", "u_1_0", "stranger_0_0"]
    metrics = allocator.update_from_trajectories(keys, [0.0, 1.0, 0.4, 1.0])
    correct, total = allocator.history.counts(["p"])
    assert (correct[0], total[0]) == (1.0, 2.0)  # session 0 → last output 1.0 (correct); session 1 → 0.4 ≤ 0.5
    assert metrics["dynamo/history/unknown_rows"] == 1
    with pytest.raises(ValueError, match="scores"):
        allocator.update_from_trajectories(keys, [1.0])


def test_history_file_roundtrip_is_exact_and_atomic(tmp_path):
    history = SuccessHistory()
    history.update(["a", "b"], [1, 3], [4, 4])
    path = save_history(history, tmp_path / "global_step_3" / "dynamo_history.json", global_step=3)
    assert [p.name for p in path.parent.iterdir()] == ["dynamo_history.json"]  # no temp file left behind
    restored = SuccessHistory()
    assert load_history(path, restored) == 3
    assert restored.state_dict() == history.state_dict()
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="history file"):
        load_history(path, SuccessHistory())


def test_settings_validate_the_dynamo_section():
    settings = resolve_settings({"method": "dynamo", "allocation": {"n_min": 8, "n_max": 24}}, rollout_n=16)
    assert settings.method.allocation.mean_rollouts == 16
    assert settings.modulation_kwargs()["mu_max"] == 1.2
    with pytest.raises(ValueError, match="mean_rollouts"):  # rollout.n = 4 is below the default n_min = 8
        resolve_settings(None, rollout_n=4)
    with pytest.raises(ValueError, match="mean_rollouts"):
        resolve_settings({"allocation": {"mean_rollouts": 12}}, rollout_n=16)
    with pytest.raises(ValueError, match="norm_scope"):
        resolve_settings({"preset": "paper", "allocation": {"n_min": 8, "n_max": 24}}, rollout_n=16)
    with pytest.raises(ValueError, match="exact"):
        resolve_settings({"modulation": {"entropy_change_mode": "exact"}}, rollout_n=16)
    with pytest.raises(ValueError, match="unknown dynamo"):
        resolve_settings({"alocation": {}}, rollout_n=16)
    grpo = resolve_settings({"method": "grpo"}, rollout_n=16)
    assert not grpo.method.modulation.enabled and grpo.method.allocation.allocator == "uniform"


def test_loss_mismatches_name_the_verl_keys_a_method_needs():
    actor = {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 10.0, "loss_agg_mode": "token-mean",
             "entropy_coeff": 0}
    assert loss_mismatches(resolve_settings(None, rollout_n=16).method, actor) == []
    assert loss_mismatches(resolve_settings({"method": "grpo"}, rollout_n=16).method, actor) == [
        "actor_rollout_ref.actor.clip_ratio_high=0.2"]
    fork = loss_mismatches(resolve_settings({"method": "fork_tokens"}, rollout_n=16).method, actor)
    assert any(m.startswith("fork_top_ratio=0.2") for m in fork)
