"""CPU tests of the TRL adapter (tiny random Qwen2, transformers generation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from dynamo_rl.adapters.trl import DynaMOConfig, DynaMOTrainer  # noqa: E402
from dynamo_rl.adapters.trl.group_advantages import contiguous_group_ids, trl_group_advantages  # noqa: E402
from dynamo_rl.adapters.trl.sampler import DynamicRepeatSampler  # noqa: E402
from dynamo_rl.adapters.trl.version import check_trl_version  # noqa: E402
from dynamo_rl.method_config import AllocationConfig  # noqa: E402
from dynamo_rl.run.allocator import STATE_FILE, RolloutAllocator  # noqa: E402
from tests.adapters.trl_helpers import (  # noqa: E402
    CheckingReward,
    base_args,
    build_dynamo_trainer,
    dynamo_overrides,
    make_dataset,
)


# ---------------------------------------------------------------------------------------------------- small units
def test_version_guard_names_the_supported_range():
    assert check_trl_version("1.16.0") == "1.16.0"
    assert check_trl_version("1.15.2") == "1.15.2"
    for bad in ("1.14.2", "1.17.0", "2.0.0"):
        with pytest.raises(ImportError, match=r">=1\.15,<1\.17"):
            check_trl_version(bad)


def test_config_applies_preset_then_explicit_fields(tmp_path):
    cfg = DynaMOConfig(**base_args(str(tmp_path)), **dynamo_overrides(), dynamo_preset="paper", dynamo_tau=0.5)
    method = cfg.method_config
    assert method.allocation.allocator == "waterfill"  # from the preset
    assert method.allocation.mean_rollouts == 4 and method.allocation.n_min == 2  # num_generations, explicit
    assert method.modulation.tau == 0.5 and method.modulation.alpha == 0.4  # explicit beats preset; preset kept
    grpo = DynaMOConfig(**base_args(str(tmp_path)), **dynamo_overrides(), dynamo_method="grpo").method_config
    assert grpo.allocation.allocator == "uniform" and not grpo.modulation.enabled


@pytest.mark.parametrize("overrides, field", [
    ({"dynamo_n_min": 1}, "dynamo_n_min"),
    ({"dynamo_n_min": 6}, "num_generations"),  # mean rollouts 4 < n_min
    ({"dynamo_method": "nope"}, "dynamo_method"),
    ({"dynamo_entropy_change_mode": "exact"}, "dynamo_entropy_change_mode"),
    ({"dynamo_norm_scope": "mini", "gradient_accumulation_steps": 2}, "dynamo_norm_scope"),
    ({"dataloader_num_workers": 2}, "dataloader_num_workers"),
])
def test_config_errors_name_the_field(tmp_path, overrides, field):
    kwargs = {**base_args(str(tmp_path)), **dynamo_overrides(), **overrides}
    with pytest.raises(ValueError, match=field):
        DynaMOConfig(**kwargs)


def test_sampler_matches_repeat_sampler_when_uniform_and_groups_are_contiguous():
    from trl.trainer.utils import RepeatSampler

    data = list(range(10))
    ids = [str(i) for i in data]
    uniform = RolloutAllocator(AllocationConfig(allocator="uniform", n_min=2, n_max=8, mean_rollouts=4))
    ours = DynamicRepeatSampler(data, ids, uniform, prompts_per_batch=3, repeat_count=2, seed=3)
    theirs = RepeatSampler(data, mini_repeat_count=4, batch_size=3, repeat_count=2, seed=3)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    assert list(ours) == list(theirs)  # second epoch: same generator progression

    config = AllocationConfig(allocator="official", n_min=2, n_max=8, mean_rollouts=4, min_history=2)
    allocator = RolloutAllocator(config)
    allocator.update(ids, np.array([1, 4, 2, 0, 3, 1, 4, 2, 0, 2]), np.full(10, 4))
    sampler = DynamicRepeatSampler(data, ids, allocator, prompts_per_batch=3, repeat_count=1, seed=3)
    stream = list(sampler)
    assert len(stream) == len(sampler) == 36
    chunks = [stream[i:i + 12] for i in range(0, 36, 12)]
    sizes = [[len(list(g)) for _, g in __import__("itertools").groupby(c)] for c in chunks]
    assert all(sum(s) == 12 and min(s) >= 2 for s in sizes)
    assert any(len(set(s)) > 1 for s in sizes)  # non-uniform
    for chunk, size in zip(chunks, sizes):
        unique = list(dict.fromkeys(chunk))
        assert allocator.allocate([ids[i] for i in unique]).counts() == size
    sampler.set_epoch(1)
    first_epoch_again = DynamicRepeatSampler(data, ids, allocator, prompts_per_batch=3, seed=3)
    list(first_epoch_again)
    assert list(sampler) == list(first_epoch_again)  # set_epoch(1) == the uninterrupted second epoch


def test_ragged_advantages_equal_trl_rule_on_equal_groups_and_follow_groups_otherwise():
    from trl.trainer.utils import nanstd

    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (12, 2), generator=gen).float()
    rewards[5] = float("nan")  # unscorable row
    weights = torch.tensor([1.0, 0.5])
    gids = torch.arange(3).repeat_interleave(4)
    ours, zero_std = trl_group_advantages(rewards, weights, gids)
    total = (rewards * weights).nansum(1)
    total[5] = float("nan")
    mean = torch.nanmean(total.view(-1, 4), 1).repeat_interleave(4)
    std = nanstd(total.view(-1, 4), dim=1).repeat_interleave(4)
    expected = torch.nan_to_num((total - mean) / (std + 1e-4), nan=0.0)
    torch.testing.assert_close(ours, expected)
    assert ours[5] == 0
    ragged = torch.tensor([0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    adv, _ = trl_group_advantages(rewards, weights, ragged, scale_rewards="none")
    for g in range(3):
        rows = (ragged == g) & ~torch.isnan(total)
        torch.testing.assert_close(adv[rows], total[rows] - total[rows].mean())
    assert contiguous_group_ids(["a", "a", "b", "c", "c"])[2] == [2, 1, 2]
    with pytest.raises(ValueError, match="'a'"):
        contiguous_group_ids(["a", "b", "a"])


def test_refusals(tmp_path):
    from datasets import Dataset

    from tests.tiny_models import make_tiny_qwen2, make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    args = DynaMOConfig(**base_args(str(tmp_path)), **dynamo_overrides())
    stream = Dataset.from_dict({"prompt": ["a"], "answer": ["b"]}).to_iterable_dataset()
    with pytest.raises(ValueError, match="IterableDataset"):
        DynaMOTrainer(model=make_tiny_qwen2(), reward_funcs=[CheckingReward()], args=args, train_dataset=stream,
                      processing_class=tok)
    with pytest.raises(ValueError, match="rollout_func"):
        DynaMOTrainer(model=make_tiny_qwen2(), reward_funcs=[CheckingReward()], args=args,
                      train_dataset=make_dataset(), processing_class=tok, rollout_func=lambda p, t: {})
    dup = Dataset.from_dict({"prompt": ["a", "b"], "answer": ["1", "2"], "pid": ["x", "x"]})
    with pytest.raises(ValueError, match="'x'"):
        DynaMOTrainer(model=make_tiny_qwen2(), reward_funcs=[CheckingReward()],
                      args=DynaMOConfig(**base_args(str(tmp_path)), **dynamo_overrides(dynamo_prompt_id_column="pid")),
                      train_dataset=dup, processing_class=tok)


def test_wider_normalisation_scope_uses_the_reduced_extrema():
    from dynamo_rl.adapters.trl.token_modulation import modulated_advantages
    from dynamo_rl.method_config import ModulationConfig

    gen = torch.Generator().manual_seed(0)
    shape = (4, 6)
    kwargs = dict(logprobs=-torch.rand(shape, generator=gen) * 3, old_logprobs=-torch.rand(shape, generator=gen) * 3,
                  entropy=torch.rand(shape, generator=gen) * 2, eps_low=0.2, eps_high=0.28,
                  config=ModulationConfig(tau=0.5, k=10.0))
    adv, mask = torch.tensor([1.0, -1.0, 0.5, -0.5]), torch.ones(shape)
    local = modulated_advantages(adv, mask, **kwargs)
    same = modulated_advantages(adv, mask, reduce=lambda t, op: t, **kwargs)  # one process: scope = micro
    torch.testing.assert_close(same.advantages, local.advantages)

    def other_process_is_wider(t, op):  # another process saw H in [−∞.., 5] and a 10× larger Ξ
        return torch.maximum(t, torch.tensor([0.0, 5.0, 10 * float(local.instability.max())])) if op == "max" else t

    wide = modulated_advantages(adv, mask, reduce=other_process_is_wider, **kwargs)
    assert float(wide.compensation.mean()) > float(local.compensation.mean())  # H_max = 5 raises f for A > 0
    assert float(wide.stabilization.min()) > float(local.stabilization.min())  # larger max Ξ damps less


# ------------------------------------------------------------------------------------------------ loss-order guard
def _loss_batch(trainer):
    gen = torch.Generator().manual_seed(1)
    prompt_ids = torch.randint(5, 60, (4, 3), generator=gen)
    completion_ids = torch.randint(5, 60, (4, 5), generator=gen)
    completion_mask = torch.ones(4, 5, dtype=torch.long)
    completion_mask[1, 3:] = 0
    return {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": torch.tensor([1.0, -0.5, 0.7, -1.2]),
            "old_per_token_logps": torch.full((4, 5), -4.0),  # ratio ≠ 1 so Ξ and the clip indicator matter
            "num_items_in_batch": completion_mask.sum()}


def _policy_grads(trainer, inputs):
    trainer.model.train()
    trainer.model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    loss.backward()
    grads = [p.grad for p in trainer.model.parameters() if p.requires_grad]
    return loss, sum(float(g.abs().sum()) for g in grads if g is not None)


def test_modulation_weights_reach_the_loss(tmp_path, monkeypatch):
    """Guard: TRL must read inputs["advantages"] after computing the log-probs (all-zero weights → zero gradient)."""
    import dynamo_rl.adapters.trl.trainer as trainer_module

    trainer, _ = build_dynamo_trainer(tmp_path)
    inputs = _loss_batch(trainer)
    loss, grad = _policy_grads(trainer, inputs)
    assert math.isfinite(float(loss.detach())) and grad > 0
    mod = trainer.dynamo_last_modulation
    assert mod is not None and not torch.equal(mod.advantages, inputs["advantages"][:, None].expand(4, 5))
    assert "advantages" in inputs and inputs["advantages"].dim() == 1  # the buffered inputs are not mutated

    real = trainer_module.modulated_advantages

    def zero_weights(advantages, mask, **kwargs):
        out = real(advantages, mask, **kwargs)
        return type(out)(advantages=out.advantages * 0.0, compensation=out.compensation * 0.0,
                         stabilization=out.stabilization * 0.0, instability=out.instability, metrics=out.metrics)

    monkeypatch.setattr(trainer_module, "modulated_advantages", zero_weights)
    loss, grad = _policy_grads(trainer, inputs)
    assert float(loss.detach()) == 0.0 and grad == 0.0, "TRL read the advantages before DynaMO wrote Ã: pin the TRL version"


# --------------------------------------------------------------------------------------------------- training runs
def test_training_allocates_per_prompt_and_updates_everything(tmp_path):
    trainer, reward = build_dynamo_trainer(tmp_path, args_overrides=dict(max_steps=8, save_strategy="steps",
                                                                           save_steps=4))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    advantages = []
    original = trainer._generate_and_score_completions

    def recording(inputs):
        out = original(inputs)
        advantages.append(out["advantages"].clone())
        return out

    trainer._generate_and_score_completions = recording
    trainer.train()
    calls = [c for c in reward.calls if c["expected"] is not None]
    assert len(calls) == 8
    for call, adv in zip(calls, advantages):
        # group sizes are the allocation of the current history, Σ = generation batch, n_i ≥ 2 ...
        assert call["sizes"] == call["expected"] and sum(call["sizes"]) == 8 and min(call["sizes"]) >= 2
        # ... and each group is normalised on its own rows (TRL's rule: mean, Bessel std, ε = loss.grpo_eps = 1e-6)
        start = 0
        for size in call["sizes"]:
            group = torch.tensor(call["rewards"][start:start + size])
            expected = (group - group.mean()) / (group.std() + 1e-6)
            torch.testing.assert_close(adv[start:start + size], expected, rtol=1e-5, atol=1e-5)
            start += size
    assert any(len(set(c["sizes"])) > 1 for c in calls), "allocation never became non-uniform"
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    unchanged = [n for n, p in trainer.model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert not unchanged, f"parameters never updated: {unchanged}"
    mod, cfg = trainer.dynamo_last_modulation, trainer.dynamo_method.modulation
    assert mod is not None
    assert float(mod.compensation.min()) >= 1.0 and float(mod.compensation.max()) <= cfg.effective_mu_max + 1e-6
    assert float(mod.stabilization.min()) >= cfg.effective_lambda_min - 1e-6 and float(mod.stabilization.max()) <= 1
    logged = [h for h in trainer.state.log_history if "mod/compensation_max" in h]
    assert logged and all(h["mod/compensation_max"] <= cfg.effective_mu_max + 1e-6 for h in logged)
    assert all(h["mod/stabilization_min"] >= cfg.effective_lambda_min - 1e-6 for h in logged)
    assert any(h["mod/compensation_max"] > 1.0 for h in logged)
    checkpoint = tmp_path / "checkpoint-4"
    assert (checkpoint / STATE_FILE).exists()

    # Resume from step 4: same history afterwards and the same allocations for steps 5-8.
    resumed, reward2 = build_dynamo_trainer(tmp_path / "resumed", args_overrides=dict(max_steps=8))
    resumed.train(resume_from_checkpoint=str(checkpoint))
    calls2 = [c for c in reward2.calls if c["expected"] is not None]
    assert [(c["prompts"], c["sizes"]) for c in calls2] == [(c["prompts"], c["sizes"]) for c in calls[4:]]
    assert [c["rewards"] for c in calls2] == [c["rewards"] for c in calls[4:]]
    assert resumed.dynamo_allocator.state_dict() == trainer.dynamo_allocator.state_dict()


def test_rebinds_a_stale_generation_batch(tmp_path):
    trainer, _ = build_dynamo_trainer(tmp_path)
    trainer.dynamo_allocator.update(["0", "1"], np.array([4.0, 2.0]), np.array([4.0, 4.0]))
    rows = [{"prompt": "Q0:", "answer": "A0", "dynamo_prompt_id": "0"}] * 4 + \
           [{"prompt": "Q1:", "answer": "A1", "dynamo_prompt_id": "1"}] * 4
    expected = trainer.dynamo_allocator.allocate(["0", "1"]).counts()
    assert expected != [4, 4]
    rebound, changed = trainer._rebind_to_current_allocation(rows)
    assert changed and [r["dynamo_prompt_id"] for r in rebound] == ["0"] * expected[0] + ["1"] * expected[1]
    assert all(r["answer"] == f"A{r['dynamo_prompt_id']}" for r in rebound)
    same, changed = trainer._rebind_to_current_allocation(rebound)
    assert not changed and same == rebound


def test_without_dra_and_modulation_equals_grpo_trainer(tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from tests.tiny_models import make_tiny_qwen2, make_tiny_tokenizer

    def run(trainer):
        recorded = []
        original = trainer._generate_and_score_completions

        def recording(inputs):
            out = original(inputs)
            recorded.append(out["advantages"].clone())
            return out

        trainer._generate_and_score_completions = recording
        trainer.train()
        return recorded, [h["loss"] for h in trainer.state.log_history if "loss" in h]

    tok = make_tiny_tokenizer()
    plain = GRPOTrainer(model=make_tiny_qwen2(len(tok)), reward_funcs=[CheckingReward()],
                        args=GRPOConfig(**base_args(str(tmp_path / "plain"), max_steps=3)),
                        train_dataset=make_dataset(), processing_class=tok)
    adv_plain, loss_plain = run(plain)
    # dynamo-rl's GRPO normalises with ε = loss.grpo_eps (1e-6, verl's); TRL's own is 1e-4: set it explicitly
    ours, _ = build_dynamo_trainer(tmp_path / "ours", args_overrides=dict(max_steps=3, dynamo_method="grpo",
                                                                          dynamo_loss={"grpo_eps": 1e-4}))
    adv_ours, loss_ours = run(ours)
    assert len(adv_plain) == len(adv_ours) == 3
    for a, b in zip(adv_plain, adv_ours):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert any(float(a.abs().sum()) > 0 for a in adv_plain)
    np.testing.assert_allclose(loss_plain, loss_ours, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------- dynamo-rl train --engine trl
def _train_config(tmp_path, **sections):
    from dynamo_rl.run.config import config_from_dict

    raw = {"method": "dynamo", "allocation": {"mean_rollouts": 4, "n_min": 2, "n_max": 8, "min_history": 2},
           "data": {"model": "unused", "dataset": "unused"},
           "rollout": {"prompts_per_step": 4, "max_new_tokens": 6},
           "optim": {"lr": 1e-3, "micro_batch_size": 4, "mini_batch_prompts": 2, "ppo_epochs": 2, "warmup_steps": 0},
           "run": {"steps": 3, "output_dir": str(tmp_path / "run"), "device": "cpu", "checkpoint_every": 2,
                   "progress": False}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    return config_from_dict(raw)


def test_train_config_maps_onto_trl(tmp_path):
    from dynamo_rl.adapters.trl import trl_config_from_train_config

    args = trl_config_from_train_config(_train_config(tmp_path))
    # 4 prompts × 4 rollouts = 16 rows per step; mini-batch 2 prompts = 8 rows = 2 micro-batches of 4.
    assert (args.generation_batch_size, args.per_device_train_batch_size) == (16, 4)
    assert (args.gradient_accumulation_steps, args.steps_per_generation, args.num_iterations) == (2, 4, 2)
    assert args.max_steps == 3 * 4 * 2 // 2 and args.save_steps == 2 * 4
    assert (args.epsilon, args.epsilon_high, args.delta, args.loss_type) == (0.2, 0.28, 10.0, "dapo")
    assert args.method_config.allocation.n_max == 8 and args.method_config.modulation.tau == 0.99
    with pytest.raises(ValueError, match="loss.policy_loss"):
        trl_config_from_train_config(_train_config(tmp_path, method="clip_cov"))
    with pytest.raises(ValueError, match="optim.mini_batch_prompts"):
        trl_config_from_train_config(_train_config(tmp_path, optim={"mini_batch_prompts": 3}))


def test_run_trl_trains_a_train_config(tmp_path):
    import json

    from dynamo_rl.adapters.trl import run_trl
    from dynamo_rl.adapters.trl.rewards import make_math_verify_reward
    from tests.tiny_models import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    with open(tmp_path / "train.jsonl", "w") as handle:
        for i in range(4):
            handle.write(json.dumps({"id": f"p{i}", "problem": f"{i}+1", "answer": str(i + 1)}) + "\n")
    config = _train_config(tmp_path, data={"model": str(model), "dataset": str(tmp_path / "train.jsonl")},
                           rollout={"prompts_per_step": 2}, optim={"mini_batch_prompts": None, "ppo_epochs": 1},
                           run={"steps": 2})
    records = run_trl(config)
    assert [r["step"] for r in records] == [1, 2]
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    state = json.loads((checkpoint / STATE_FILE).read_text())
    assert state["num_updates"] == 2 and sorted(state["history"]["ids"]) == ["p0", "p1", "p2", "p3"]
    assert json.loads((checkpoint / "dynamo_state.json").read_text())["step"] == 2
    assert (checkpoint / "config.json").exists() and (checkpoint / "tokenizer.json").exists()
    assert (tmp_path / "run" / "config.yaml").exists()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2]
    assert {"alloc/num_rollouts_mean", "reward/mean", "actor/loss", "acc/mean"} <= set(logged[-1])
    reward = make_math_verify_reward()  # grades against each row's own answer
    assert reward(["\\boxed{3}", "\\boxed{3}"], ["3", "4"]) == [1.0, 0.0]
    assert reward([[{"role": "assistant", "content": "so \\boxed{7}"}]], ["7"]) == [1.0]
