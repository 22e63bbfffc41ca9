"""The embedded demo model: a tiny Qwen2 with a character-level tokenizer, shipped in ``dynamo_rl/demo/assets``.

``load_demo_model()`` reads it from the package; ``build_model()`` makes a fresh random one (the starting point of
``dynamo-rl pretrain-demo``); ``sampled_accuracy()`` measures per-level success at a given temperature with the
exact-match grader of :mod:`dynamo_rl.demo.task`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch

from dynamo_rl.data.types import Problem
from dynamo_rl.demo.task import is_correct

DEMO_ASSETS: Path = Path(str(resources.files("dynamo_rl.demo").joinpath("assets")))
"""Folder of the shipped model: ``model.safetensors``, ``config.json``, tokenizer files, ``demo_card.json``."""
CARD_NAME = "demo_card.json"
MAX_NEW_TOKENS = 16
"""Enough for the longest reference completion of the demo tasks (`` \\boxed{1998}`` plus end of sequence)."""


def build_model(vocab_size: int, *, pad_token_id: int, bos_token_id: int, eos_token_id: int, hidden_size: int = 64,
                num_layers: int = 2, num_heads: int = 4, seed: int = 0):
    """A randomly initialised tiny ``Qwen2ForCausalLM`` (tied embeddings, 64 positions), deterministic by ``seed``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=3 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=64, tie_word_embeddings=True,
        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = pad_token_id
    model.generation_config.bos_token_id = bos_token_id
    model.generation_config.eos_token_id = eos_token_id
    model.generation_config.max_new_tokens = MAX_NEW_TOKENS
    return model


def load_model(directory: str | Path, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` saved by ``dynamo-rl pretrain-demo --output directory``; the model is in eval mode."""
    from transformers import AutoModelForCausalLM

    from dynamo_rl.demo.tokenizer import load_tokenizer

    directory = Path(directory)
    if not (directory / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors in {directory}; run `dynamo-rl pretrain-demo --output {directory}`")
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32).to(device)
    model.eval()
    return model, load_tokenizer(directory)


def load_demo_model(device: str | torch.device = "cpu"):
    """The shipped warm-started demo model and its tokenizer, read from :data:`DEMO_ASSETS`."""
    return load_model(DEMO_ASSETS, device)


def load_demo_card(directory: str | Path = DEMO_ASSETS) -> dict:
    """The measurements written next to a demo model (per-level sampled accuracy, training settings)."""
    return json.loads((Path(directory) / CARD_NAME).read_text())


@torch.no_grad()
def sample_completions(model, tokenizer, prompts: Sequence[str], *, temperature: float = 1.0, seed: int = 0,
                       batch_size: int = 256, max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """One completion per prompt, pure sampling at ``temperature`` (greedy when 0), seeded; special tokens dropped."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    texts: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt", padding=True)
            batch = {key: value.to(model.device) for key, value in batch.items()}
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 \
                else {"do_sample": False}
            output = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                    eos_token_id=tokenizer.eos_token_id, **sampling)
            new_tokens = output[:, batch["input_ids"].shape[1]:]
            texts.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        torch.random.set_rng_state(generator_state)
    return texts


def sampled_accuracy(model, tokenizer, problems: Sequence[Problem], *, samples_per_level: int = 200,
                     temperature: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Fraction of correct sampled completions per level (``{"L1": 0.93, ...}``), exact match on the last box.

    Each level's problems are cycled until ``samples_per_level`` prompts are drawn (small levels repeat problems).
    """
    by_level: dict[int, list[Problem]] = {}
    for problem in problems:
        by_level.setdefault(int(problem.meta["level"]), []).append(problem)
    prompts: list[str] = []
    answers: list[str] = []
    levels: list[int] = []
    for level, items in sorted(by_level.items()):
        for index in range(samples_per_level):
            prompts.append(items[index % len(items)].prompt)
            answers.append(items[index % len(items)].answer)
            levels.append(level)
    completions = sample_completions(model, tokenizer, prompts, temperature=temperature, seed=seed)
    correct: dict[int, int] = dict.fromkeys(by_level, 0)
    for completion, answer, level in zip(completions, answers, levels):
        correct[level] += is_correct(completion, answer)
    return {f"L{level}": correct[level] / samples_per_level for level in sorted(by_level)}
