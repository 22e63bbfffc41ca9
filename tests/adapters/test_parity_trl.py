"""Cross-engine parity, TRL side: the same model weights, prompts, success history, completions and rewards through
the TRL adapter and through the built-in trainer's update code give the same allocation, advantages, modulated
per-token advantages and loss (fp32, 1e-6). The verl side (same built-in objective vs verl's loss) is
``tests/adapters/verl/test_parity_verl.py``; together they tie the three engines to one implementation.

One TRL step runs on-policy (one optimizer step per generation batch, so old log-probs = current, as the built-in
trainer's single-step update); the loss TRL computes is captured before the optimizer step, and the built-in side is
computed with a copy of the weights from before that step.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("trl")

from dynamo_rl.core.advantages import compute_advantages  # noqa: E402
from dynamo_rl.core.token_stats import token_stats  # noqa: E402
from dynamo_rl.trainer.batch import pad_tokens  # noqa: E402
from dynamo_rl.trainer.objective import compute_objective  # noqa: E402

PROMPTS = 4
HISTORY = {"0": (4.0, 4.0), "1": (2.0, 4.0), "2": (1.0, 4.0), "3": (0.0, 4.0)}  # mastered, 50 %, 25 %, hopeless


class _Reward:
    """Deterministic, prompt-dependent reward: prompt 0 always right, 3 never, 1 and 2 by a coin on the text."""

    __name__ = "parity_reward"

    def __call__(self, prompts, completions, **kwargs):
        out = []
        for prompt, completion in zip(prompts, completions, strict=True):
            index = int(prompt[1:-1])
            coin = sum(map(ord, completion)) % 2 == 0
            out.append({0: 1.0, 3: 0.0}.get(index, float(coin)))
        return out


def _run_trl(tmp_path, method: str, preset: str):
    from datasets import Dataset

    from dynamo_rl.adapters.trl import DynaMOConfig, DynaMOTrainer
    from tests.tiny_models import make_tiny_qwen2, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    model = make_tiny_qwen2(len(tokenizer))
    initial = copy.deepcopy(model)
    args = DynaMOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=16, gradient_accumulation_steps=1, num_generations=4,
        max_completion_length=6, learning_rate=1e-3, max_steps=1, logging_steps=1, save_strategy="no",
        report_to="none", seed=3, use_cpu=True, bf16=False, temperature=1.0, disable_tqdm=True,
        dataloader_num_workers=0, shuffle_dataset=False, dynamo_method=method, dynamo_preset=preset,
        dynamo_n_min=2, dynamo_n_max=6, dynamo_min_history=2, dynamo_n_explore=2)
    data = Dataset.from_dict({"prompt": [f"Q{i}:" for i in range(PROMPTS)]})
    trainer = DynaMOTrainer(model=model, reward_funcs=[_Reward()], args=args, train_dataset=data,
                            processing_class=tokenizer)
    ids = list(HISTORY)
    trainer.dynamo_allocator.update(ids, [HISTORY[i][0] for i in ids], [HISTORY[i][1] for i in ids])
    reference_allocator = copy.deepcopy(trainer.dynamo_allocator)
    captured: dict = {}
    original_loss = trainer._compute_loss
    original_score = trainer._generate_and_score_completions

    def score(inputs):
        output = original_score(inputs)
        if trainer.model.training:
            captured["advantages"] = output["advantages"].detach().clone()
            captured["rewards"] = trainer._dynamo_rewards_per_func[:, 0].detach().clone()
            captured["groups"] = trainer.dynamo_last_groups
        return output

    def loss(model_, inputs):
        value = original_loss(model_, inputs)
        captured.setdefault("inputs", {k: v for k, v in inputs.items() if torch.is_tensor(v)})
        captured.setdefault("loss", value.detach().clone())
        if trainer.dynamo_last_modulation is not None:
            captured.setdefault("modulated", trainer.dynamo_last_modulation.advantages.detach().clone())
        return value

    trainer._generate_and_score_completions = score
    trainer._compute_loss = loss
    trainer.train()
    return trainer, initial, tokenizer, reference_allocator, captured


def _builtin(method_config, model, tokenizer, inputs, advantages):
    """The built-in trainer's forward (pad_tokens → logits → token_stats) and objective on TRL's tokens."""
    prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"].bool()
    completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"].bool()
    prompts = [row[mask].tolist() for row, mask in zip(prompt_ids, prompt_mask)]
    responses = [row[mask].tolist() for row, mask in zip(completion_ids, completion_mask)]
    tokens = pad_tokens(prompts, responses, tokenizer.pad_token_id)
    logits = model(tokens.input_ids, attention_mask=tokens.attention_mask,
                   position_ids=tokens.position_ids).logits[:, tokens.prompt_width - 1:-1]
    stats = token_stats(logits, tokens.targets, temperature=1.0,
                        with_centered=method_config.modulation.entropy_change_mode == "exact")
    out = compute_objective(method_config, logprobs=stats.logprobs, old_logprobs=stats.logprobs.detach(),
                            advantages=advantages, mask=tokens.response_mask, stats=stats)
    return out, tokens.response_mask


@pytest.mark.parametrize("method, preset", [("dynamo", "official"), ("dynamo", "paper"), ("grpo", "official"),
                                            ("no_ums", "official")])
def test_trl_matches_the_builtin_trainer(tmp_path, method, preset):
    torch.manual_seed(0)
    trainer, initial, tokenizer, reference, got = _run_trl(tmp_path, method, preset)
    method_config = trainer.dynamo_method

    # 1. allocation: the shared allocator with the same history; non-uniform under DRA
    unique, sizes = got["groups"]
    expected_sizes = reference.allocate(unique).counts()
    assert sizes == expected_sizes
    assert sum(sizes) == PROMPTS * 4
    if method_config.allocation.allocator != "uniform":
        assert len(set(sizes)) > 1

    # 2. advantages: the core estimator with the method's options on the same rewards and ragged groups
    group_ids = torch.tensor(np.repeat(np.arange(len(sizes)), sizes))
    want = compute_advantages(method_config.loss.advantage_estimator, got["rewards"].double(), group_ids,
                              **method_config.loss.advantage_kwargs()).float()
    torch.testing.assert_close(got["advantages"].float(), want, rtol=0, atol=1e-6)

    # 3-4. modulated per-token advantages and the loss, from the same weights and tokens (TRL shuffles the rows of a
    # generation batch before its micro-batches, so the loss inputs carry their own copy of the advantages)
    ours, mask = _builtin(method_config, initial, tokenizer, got["inputs"], got["inputs"]["advantages"].float())
    if method_config.modulation.enabled:
        theirs = got["modulated"]
        if theirs.dim() == 1:
            theirs = theirs[:, None].expand_as(mask)
        width = mask.shape[1]
        torch.testing.assert_close(theirs[:, :width][mask].float(), ours.advantages[mask].float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(got["loss"].float(), ours.loss.detach().float(), rtol=0, atol=1e-6)
