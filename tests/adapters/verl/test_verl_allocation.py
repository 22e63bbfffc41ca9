"""Allocation bookkeeping and settings of the verl adapter (pure Python: runs with or without verl installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynamo_rl.adapters.verl import settings as verl_settings
from dynamo_rl.adapters.verl.allocation import VerlRolloutAllocator, parse_trajectory_key, stable_prompt_ids
from dynamo_rl.adapters.verl.settings import (
    DynamoSection,
    UnsupportedOnVerl,
    check_loss,
    loss_mismatches,
    resolve_settings,
    supported_methods,
    verl_loss_settings,
    verl_overrides,
)
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig, LossConfig
from dynamo_rl.presets import METHODS, build_method_config
from dynamo_rl.run.allocator import STATE_FILE, AllocatorStateError, RolloutAllocator

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
    assert parse_trajectory_key("9f1c-uuid-x_3_0") == ("9f1c-uuid-x", "3", 0)
    with pytest.raises(ValueError, match="trajectory key"):
        parse_trajectory_key("no-session")


def _keys(uid: str, n: int) -> list[str]:
    return [f"{uid}_{s}_0" for s in range(n)]


def test_allocation_sums_to_the_budget_and_history_maps_back_to_prompt_ids():
    allocator = VerlRolloutAllocator(CONFIG)
    prompts = ["p0", "p1", "p2", "p3"]
    uids = [f"u{i}" for i in range(4)]
    first = allocator.allocate(uids, prompts)
    assert first.sum() == 16 and first.tolist() == [4, 4, 4, 4]  # no history yet: uniform
    assert "alloc/variance_reduction_ratio" not in allocator.last_metrics  # no history: no ratio (not a None)
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
    assert metrics == {"history/num_prompts": 4.0, "history/batch_prompts": 4.0, "history/batch_rollouts": 16.0,
                       "history/batch_accuracy": 7 / 16, "history/unknown_rows": 0.0, "history/pending_uids": 0.0}
    assert allocator.allocator.num_updates == 1
    # next epoch: new uids for the same prompts; the budget moves to the uncertain ones and still sums exactly
    second = allocator.allocate([f"v{i}" for i in range(4)], prompts)
    assert second.sum() == 16 and second.min() >= 2 and second.max() <= 8
    assert second[1] == second.max() and second[1] > second[2]
    # the metrics are the shared allocator's, scalars only, in the alloc/* and history/* namespace
    reference = RolloutAllocator(CONFIG)
    reference.update(prompts, correct, total)
    expected = reference.metrics(reference.allocate(prompts), scalars_only=True)
    assert allocator.last_metrics == pytest.approx(expected)
    assert 0 < allocator.last_metrics["alloc/variance_reduction_ratio"] < 1  # the live Eq 44 ratio
    assert set(allocator.last_metrics) <= {k for k in expected if k.startswith(("alloc/", "history/"))}


def test_multi_output_sessions_count_once_with_their_last_output_and_unknown_uids_are_skipped():
    allocator = VerlRolloutAllocator(CONFIG, correct_threshold=0.5)
    allocator.allocate(["u"], ["p"])
    keys = ["u_0_0", "u_0_1", "u_1_0", "stranger_0_0"]
    metrics = allocator.update_from_trajectories(keys, [0.0, 1.0, 0.4, 1.0])
    correct, total = allocator.history.counts(["p"])
    assert (correct[0], total[0]) == (1.0, 2.0)  # session 0 → last output 1.0 (correct); session 1 → 0.4 ≤ 0.5
    assert metrics["history/unknown_rows"] == 1
    with pytest.raises(ValueError, match="scores"):
        allocator.update_from_trajectories(keys, [1.0])
    empty = allocator.update_from_trajectories(["stranger_1_0"], [1.0])  # nothing known: no history update
    assert np.isnan(empty["history/batch_accuracy"]) and allocator.allocator.num_updates == 1
    with pytest.raises(ValueError, match="correct_threshold"):
        VerlRolloutAllocator(CONFIG, correct_threshold=float("inf"))


def test_state_is_the_shared_allocator_file_and_roundtrips_exactly(tmp_path):
    allocator = VerlRolloutAllocator(CONFIG)
    allocator.allocate(["u0", "u1"], ["a", "b"])
    allocator.update_from_trajectories(_keys("u0", 4) + _keys("u1", 4), [1, 0, 0, 0, 1, 1, 1, 0])
    folder = tmp_path / "global_step_3"
    path = allocator.save(folder)
    assert path == folder / STATE_FILE and [p.name for p in folder.iterdir()] == [STATE_FILE]  # no temp file left
    restored = VerlRolloutAllocator(CONFIG)
    assert restored.load(folder)
    assert restored.state_dict() == allocator.state_dict()
    assert not VerlRolloutAllocator(CONFIG).load(tmp_path / "nothing_here")
    path.write_text("{torn")
    with pytest.raises(AllocatorStateError, match=STATE_FILE):
        VerlRolloutAllocator(CONFIG).load(folder)


def test_an_old_verl_history_file_still_loads(tmp_path):
    """The plugin's earlier ``dynamo_history.json`` ({"version": 1, "global_step", "history"}) is read by load()."""
    history = SuccessHistory()
    history.update(["a", "b"], [1, 3], [4, 4])
    folder = tmp_path / "global_step_7"
    folder.mkdir()
    (folder / "dynamo_history.json").write_text(json.dumps(
        {"version": 1, "global_step": 7, "history": history.state_dict()}))
    allocator = VerlRolloutAllocator(CONFIG)
    assert allocator.load(folder)
    assert allocator.history.state_dict() == history.state_dict()
    assert allocator.history.counts(["a", "b"])[0].tolist() == [1.0, 3.0]


# ---------------------------------------------------------------------------------------------------- settings
def test_rollout_n_is_the_mean_and_the_bounds_follow_it():
    settings = resolve_settings({"method": "dynamo", "allocation": {"n_min": 8, "n_max": 24}}, rollout_n=16)
    assert settings.method.allocation.mean_rollouts == 16
    assert settings.modulation_kwargs()["mu_max"] == 1.2
    small = resolve_settings(None, rollout_n=4).method.allocation  # DRA acts out of the box: derived [2, 6]
    assert (small.mean_rollouts, small.n_min, small.n_max) == (4, 2, 6)
    assert resolve_settings(None, rollout_n=16).method.allocation.n_max == 24
    assert resolve_settings({"allocation": {"n_min": 3}}, rollout_n=4).method.allocation.n_min == 3
    with pytest.raises(ValueError, match="mean_rollouts"):
        resolve_settings({"allocation": {"mean_rollouts": 12}}, rollout_n=16)
    with pytest.raises(ValueError, match="rollout.n"):
        resolve_settings(None, rollout_n=1)
    grpo = resolve_settings({"method": "grpo"}, rollout_n=16)
    assert not grpo.method.modulation.enabled and grpo.method.allocation.allocator == "uniform"


def test_unknown_keys_name_the_valid_ones_from_the_dataclasses():
    with pytest.raises(ValueError, match="unknown key dynamo.alocation; valid keys: method, preset, allocation"):
        resolve_settings({"alocation": {}}, rollout_n=16)
    with pytest.raises(ValueError, match=r"unknown key dynamo\.modulation\.mu; valid keys: .*mu_max"):
        resolve_settings({"modulation": {"mu": 1.1}}, rollout_n=16)
    with pytest.raises(ValueError, match=r"unknown key dynamo\.loss\.eps; valid keys: .*eps_high"):
        resolve_settings({"loss": {"eps": 0.1}}, rollout_n=16)
    with pytest.raises(ValueError, match="history_file was removed.*allocator_state.json"):
        resolve_settings({"history_file": "dynamo_history.json"}, rollout_n=16)
    with pytest.raises(ValueError, match="unknown method 'bogus'; valid methods: .*dynamo"):
        resolve_settings({"method": "bogus"}, rollout_n=16)
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_settings({"preset": "bogus"}, rollout_n=16)
    with pytest.raises(ValueError, match="must be a mapping"):
        resolve_settings({"modulation": 3}, rollout_n=16)
    valid = [f for f in DynamoSection.__dataclass_fields__]
    assert valid == ["method", "preset", "allocation", "modulation", "loss", "correct_threshold", "sum_pi_squared"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0.5", True])
def test_correct_threshold_must_be_finite(value):
    with pytest.raises(ValueError, match="correct_threshold"):
        resolve_settings({"correct_threshold": value}, rollout_n=16)


def test_options_verl_cannot_honour_are_refused():
    with pytest.raises(ValueError, match="norm_scope"):
        resolve_settings({"preset": "paper"}, rollout_n=16)
    paper = resolve_settings({"preset": "paper", "modulation": {"norm_scope": "micro"}}, rollout_n=16)
    assert paper.method.modulation.entropy_change_mode == "pi2" and paper.method.modulation.ums_min_tokens == 2
    with pytest.raises(ValueError, match="exact.*verl's engines do not compute"):
        resolve_settings({"modulation": {"entropy_change_mode": "exact"}}, rollout_n=16)
    with pytest.raises(ValueError, match="exact"):
        resolve_settings({"preset": "theory", "modulation": {"norm_scope": "micro"}}, rollout_n=16)
    with pytest.raises(ValueError, match="variance_matched.*ppo_mini_batch_size"):
        resolve_settings({"allocation": {"allocator": "variance_matched"}}, rollout_n=16)
    assert resolve_settings({"method": "no_gc_ums", "preset": "paper"}, rollout_n=16)  # no modulation: no scope


# ------------------------------------------------------------------------------------------------------ the loss
REFUSED = {"fork_tokens": "fork_top_ratio", "entropy_adv": "entropy_adv_alpha", "w_reinforce": "advantage_estimator"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_is_either_mapped_to_verl_keys_or_refused_naming_the_supported_ones(method):
    config = build_method_config(method, "official")
    if method in REFUSED:
        with pytest.raises(UnsupportedOnVerl, match=f"loss.{REFUSED[method]}=.*Methods verl can run: clip_cov"):
            verl_loss_settings(config)
        with pytest.raises(ValueError, match=REFUSED[method]):
            resolve_settings({"method": method}, rollout_n=16)
        return
    keys = verl_loss_settings(config)
    mode = keys["actor_rollout_ref.actor.policy_loss.loss_mode"]
    assert mode == {"ppo_clip": "vanilla"}.get(config.loss.policy_loss, config.loss.policy_loss)
    assert keys["actor_rollout_ref.actor.loss_agg_mode"] == config.loss.loss_agg_mode
    assert keys["actor_rollout_ref.actor.entropy_coeff"] == config.loss.entropy_coeff
    assert keys["algorithm.norm_adv_by_std_in_grpo"] is (config.loss.advantage_estimator == "grpo")
    assert "dynamo_grpo" in keys["algorithm.adv_estimator"]
    assert method in supported_methods()


def test_method_loss_options_map_to_their_verl_keys():
    grpo = verl_loss_settings(build_method_config("grpo"))
    assert grpo["actor_rollout_ref.actor.clip_ratio_high"] == 0.2 and grpo["actor_rollout_ref.actor.clip_ratio_c"] == 10
    kl_cov = verl_loss_settings(build_method_config("kl_cov"))
    assert kl_cov["actor_rollout_ref.actor.policy_loss.kl_cov_ratio"] == 2e-3
    assert kl_cov["actor_rollout_ref.actor.policy_loss.ppo_kl_coef"] == 1.0
    assert "actor_rollout_ref.actor.clip_ratio_high" not in kl_cov  # KL-Cov has no clip
    clip_cov = verl_loss_settings(build_method_config("clip_cov"))
    assert clip_cov["actor_rollout_ref.actor.clip_ratio_low"] == 1.0
    assert clip_cov["actor_rollout_ref.actor.policy_loss.clip_cov_ub"] == 5.0
    assert verl_loss_settings(build_method_config("entropy_loss"))["actor_rollout_ref.actor.entropy_coeff"] == 0.001
    dr = verl_loss_settings(build_method_config("dr_grpo"), {"data": {"max_response_length": 8192}})
    assert dr["actor_rollout_ref.actor.loss_scale_factor"] == 8192
    with pytest.raises(UnsupportedOnVerl, match="clip_ratio_c=None"):
        verl_loss_settings(build_method_config("grpo", overrides={"loss": {"clip_ratio_c": None}}))
    with pytest.raises(UnsupportedOnVerl, match="grpo_eps"):
        verl_loss_settings(build_method_config("grpo", overrides={"loss": {"grpo_eps": 1e-4}}))
    assert {f.name for f in LossConfig.__dataclass_fields__.values()} >= {"eps_low", "eps_high", "clip_ratio_c"}


def _verl_config(**actor):
    base = {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 10.0,
            "loss_agg_mode": "token-mean", "entropy_coeff": 0, "loss_scale_factor": None,
            "policy_loss": {"loss_mode": "vanilla"}}
    base.update(actor)
    return {"actor_rollout_ref": {"actor": base}, "algorithm": {"adv_estimator": "grpo",
                                                                 "norm_adv_by_std_in_grpo": True},
            "data": {"max_response_length": 512}}


def test_check_loss_refuses_a_verl_config_that_does_not_run_the_method_and_names_the_keys():
    dynamo = resolve_settings(None, rollout_n=16).method
    assert loss_mismatches(dynamo, _verl_config()) == []
    check_loss(dynamo, _verl_config())
    grpo = resolve_settings({"method": "grpo"}, rollout_n=16).method
    assert loss_mismatches(grpo, _verl_config()) == ["actor_rollout_ref.actor.clip_ratio_high=0.2  (have 0.28)"]
    with pytest.raises(ValueError, match=r"(?s)do not match grpo \(preset official\).*clip_ratio_high=0\.2"):
        check_loss(grpo, _verl_config(), method_name="grpo", preset="official")
    check_loss(grpo, _verl_config(clip_ratio_high=None))  # verl falls back to clip_ratio = 0.2
    dr = resolve_settings({"method": "dr_grpo"}, rollout_n=16).method
    assert sorted(loss_mismatches(dr, _verl_config())) == [
        "actor_rollout_ref.actor.clip_ratio_high=0.2  (have 0.28)",
        "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm  (have 'token-mean')",
        "actor_rollout_ref.actor.loss_scale_factor=512  (have None)",
        "algorithm.norm_adv_by_std_in_grpo=false  (have True)"]
    deliberate = resolve_settings({"loss": {"eps_high": 0.3}}, rollout_n=16).method  # stated in dynamo.loss
    check_loss(deliberate, _verl_config(clip_ratio_high=0.3))
    config = _verl_config()
    config["algorithm"]["adv_estimator"] = "dynamo_grpo"
    check_loss(dynamo, config)
    config["algorithm"]["adv_estimator"] = "rloo"
    assert loss_mismatches(dynamo, config) == ["algorithm.adv_estimator=grpo  (have 'rloo')"]


def test_overrides_cli_prints_the_keys_a_method_needs(capsys):
    assert verl_overrides("grpo") == [f"{k}={v}" for k, v in (
        ("actor_rollout_ref.actor.policy_loss.loss_mode", "vanilla"), ("actor_rollout_ref.actor.clip_ratio_c", 10.0),
        ("actor_rollout_ref.actor.clip_ratio_high", 0.2), ("actor_rollout_ref.actor.clip_ratio_low", 0.2),
        ("actor_rollout_ref.actor.loss_agg_mode", "token-mean"), ("actor_rollout_ref.actor.entropy_coeff", 0.0),
        ("algorithm.adv_estimator", "grpo"), ("algorithm.norm_adv_by_std_in_grpo", "true"))]
    assert "actor_rollout_ref.actor.loss_scale_factor=${data.max_response_length}" in verl_overrides("dr_grpo")
    assert verl_settings.main(["dr_grpo", "paper"]) == 0
    assert "algorithm.norm_adv_by_std_in_grpo=false" in capsys.readouterr().out
    assert verl_settings.main(["fork_tokens"]) == 1
    assert "Methods verl can run" in capsys.readouterr().err
    assert verl_settings.main([]) == 2
