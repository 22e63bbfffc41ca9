"""Shared pieces of the TRL adapter tests: a tiny dataset, a self-checking reward, and trainer builders."""

from __future__ import annotations

from typing import Any

NUM_PROMPTS = 6


def make_dataset(num_prompts: int = NUM_PROMPTS):
    from datasets import Dataset

    prompts = [f"Q{i}:" for i in range(num_prompts)]
    return Dataset.from_dict({"prompt": prompts, "answer": [f"A{i}" for i in range(num_prompts)]})


class CheckingReward:
    """Reward that asserts every completion is graded with its own prompt's answer, and records each call.

    Prompt ``Qi:`` has answer ``Ai``. Success depends on the prompt so the history becomes non-uniform:
    i % 3 == 0 always correct, i % 3 == 1 correct when the completion's character codes sum to an even number, i % 3 == 2 never correct.
    """

    __name__ = "checking_reward"

    def __init__(self, trainer_ref: list | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.trainer_ref = trainer_ref if trainer_ref is not None else []

    def __call__(self, prompts, completions, answer, **kwargs):
        rewards = []
        for prompt, completion, ans in zip(prompts, completions, answer, strict=True):
            index = int(prompt[1:-1])
            assert ans == f"A{index}", f"completion of prompt {prompt!r} graded against answer {ans!r}"
            kind = index % 3
            coin = sum(map(ord, completion)) % 2 == 0
            rewards.append(1.0 if kind == 0 else (float(coin) if kind == 1 else 0.0))
        runs: list[list] = []
        for prompt in prompts:
            if runs and runs[-1][0] == prompt:
                runs[-1][1] += 1
            else:
                runs.append([prompt, 1])
        expected = None
        if self.trainer_ref:
            trainer = self.trainer_ref[0]
            if trainer.model.training:
                ids = [str(r[0][1:-1]) for r in runs]
                expected = trainer.dynamo_allocator.allocate(ids).counts()
        self.calls.append({"prompts": [r[0] for r in runs], "sizes": [r[1] for r in runs], "expected": expected,
                           "rewards": rewards, "row_prompts": list(prompts)})
        return rewards


def base_args(output_dir: str, **overrides: Any) -> dict[str, Any]:
    args = dict(
        output_dir=output_dir, per_device_train_batch_size=8, gradient_accumulation_steps=1, num_generations=4,
        max_completion_length=6, learning_rate=5e-3, max_steps=4, logging_steps=1, save_strategy="no",
        report_to="none", seed=7, use_cpu=True, bf16=False, temperature=1.0, disable_tqdm=True,
        dataloader_num_workers=0, beta=0.0,
    )
    args.update(overrides)
    return args


def dynamo_overrides(**overrides: Any) -> dict[str, Any]:
    """Small-batch DynaMO settings: rollouts in [2, 8] around 4, history after 2 samples."""
    values = dict(dynamo_n_min=2, dynamo_n_max=8, dynamo_min_history=2, dynamo_n_explore=2)
    values.update(overrides)
    return values


def build_dynamo_trainer(tmp_path, *, model=None, args_overrides=None, reward=None):
    from dynamo_rl.adapters.trl import DynaMOConfig, DynaMOTrainer
    from tests.tiny_models import make_tiny_qwen2, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    model = model if model is not None else make_tiny_qwen2(len(tokenizer))
    overrides = {**dynamo_overrides(), **(args_overrides or {})}
    args = DynaMOConfig(**base_args(str(tmp_path), **overrides))
    ref: list = []
    reward = reward if reward is not None else CheckingReward(ref)
    trainer = DynaMOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=make_dataset(),
                            processing_class=tokenizer)
    ref.append(trainer)
    return trainer, reward


def run_distributed_worker(rank: int, world_size: int, port: int, output_dir: str, result_path: str) -> None:
    """One process of the two-process CPU test (gloo): train 3 steps and dump what every rank saw as JSON."""
    import json
    import os

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
                       "OMP_NUM_THREADS": "1"})
    import torch

    torch.set_num_threads(1)
    records: list[dict[str, Any]] = []
    reward = CheckingReward()
    trainer, _ = build_dynamo_trainer(
        output_dir, reward=reward,
        args_overrides=dict(per_device_train_batch_size=6, max_steps=4, ddp_backend="gloo",
                            dynamo_gradient_compensation=True, dynamo_stabilization=True))
    reward.trainer_ref.append(trainer)
    original = trainer._generate_and_score_completions

    def recording(inputs):
        output = original(inputs)
        if trainer.model.training:
            call = reward.calls[-1]
            records.append({"groups": [list(trainer.dynamo_last_groups[0]), list(trainer.dynamo_last_groups[1])],
                            "advantages": output["advantages"].tolist(), "rewards": call["rewards"],
                            "row_prompts": call["row_prompts"]})
        return output

    trainer._generate_and_score_completions = recording
    trainer.train()
    with open(result_path, "w") as handle:
        json.dump({"rank": rank, "records": records, "history": trainer.dynamo_allocator.state_dict(),
                   "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}, handle)
