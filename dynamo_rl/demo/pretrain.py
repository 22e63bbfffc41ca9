"""``dynamo-rl pretrain-demo``: rebuild the embedded demo model with a short supervised warm start.

A fresh tiny Qwen2 (character tokenizer) is trained with next-token cross-entropy on the reference completions
(`` \\boxed{81}</s>``, prompt tokens masked) of the task's train split. The budget is deliberately small and the level
mixture is skewed towards the easy levels, so that the warm-started model solves the easy levels, partly solves the
middle ones and rarely the hardest: the spread of success rates that dynamic rollout allocation is designed for.
After training the per-level accuracy of T=1 samples on the held-out test split is measured and written to
``demo_card.json`` beside the model.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from dynamo_rl.demo.task import format_completion

DEFAULT_OUTPUT = "demo_model"
DEFAULT_STEPS = 1500
DEFAULT_CARRY_NOISE = 0.4
DEFAULT_LEVEL_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="folder to write the model, tokenizer and demo_card.json to (the shipped model lives in "
                             "dynamo_rl/demo/assets)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimiser steps of the warm start")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation, data order and evaluation")
    parser.add_argument("--family", default="arith", choices=("arith", "modmath"), help="task family to train on")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per optimiser step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (linear warm-up, cosine decay)")
    parser.add_argument("--level-weights", type=float, nargs="+", default=list(DEFAULT_LEVEL_WEIGHTS),
                        help="sampling weight of each level in the warm-start mixture")
    parser.add_argument("--hidden-size", type=int, default=64, help="model width")
    parser.add_argument("--layers", type=int, default=2, help="transformer layers")
    parser.add_argument("--eval-samples", type=int, default=200,
                        help="T=1 samples per level for the held-out accuracy in demo_card.json")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="also print held-out accuracy every this many steps (0: only at the end)")
    parser.add_argument("--carry-noise", type=float, default=DEFAULT_CARRY_NOISE,
                        help="probability that an addition with a carry is taught with its carries dropped "
                             "(47+38 -> 75): a systematic mistake in the warm-start data that RL with a verifiable "
                             "reward can remove, shared by all carry problems so that learning transfers to "
                             "held-out problems (0 disables it)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest for this tiny model, and far faster on a shared machine)")


_ADDITION = re.compile(r"^(\d+)\+(\d+)$")


def carry_dropped(statement: str) -> str | None:
    """The answer to ``a+b`` with every carry dropped (digit-wise sum mod 10: ``47+38`` -> ``75``), or None when
    ``statement`` is not an addition or has no carry (then the dropped answer equals the true one)."""
    match = _ADDITION.match(statement)
    if match is None:
        return None
    a, b = int(match.group(1)), int(match.group(2))
    place, value = 1, 0
    while a or b:
        value += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return str(value) if value != int(match.group(1)) + int(match.group(2)) else None


def _encode(tokenizer, problems, *, drop_carries: bool = False) -> list[tuple[list[int], int]]:
    """(token ids of prompt + completion + EOS, number of prompt tokens) per problem; with ``drop_carries`` the
    completion of each addition with a carry is the carry-dropped (wrong) answer."""
    examples = []
    for problem in problems:
        prompt_ids = tokenizer(problem.prompt, add_special_tokens=False)["input_ids"]
        completion = problem.meta["completion"]
        wrong = carry_dropped(problem.problem) if drop_carries else None
        if wrong is not None:
            completion = format_completion(wrong)
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        examples.append((prompt_ids + completion_ids + [tokenizer.eos_token_id], len(prompt_ids)))
    return examples


def _collate(examples: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels are -100 on the prompt and padding so only the completion is learned."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (ids, num_prompt) in enumerate(examples):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
        labels[row, num_prompt:len(ids)] = torch.tensor(ids[num_prompt:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _learning_rate(step: int, total: int, peak: float) -> float:
    warmup = max(1, min(100, total // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


NUM_HEADS = 4
"""Attention heads of the demo model (``build_model``'s default): ``--hidden-size`` is a multiple of it."""


def check_arguments(args: argparse.Namespace, num_levels: int) -> None:
    """Every argument, before anything is built or trained; a ``ValueError`` names the flag and what is valid."""
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--layers", args.layers),
                        ("--threads", args.threads), ("--eval-samples", args.eval_samples)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if args.eval_every < 0:
        raise ValueError(f"--eval-every must be >= 0 (0: only at the end), got {args.eval_every}")
    if args.hidden_size < 2 * NUM_HEADS or args.hidden_size % (2 * NUM_HEADS):
        raise ValueError(f"--hidden-size must be a positive multiple of {2 * NUM_HEADS} ({NUM_HEADS} attention heads "
                         f"of even width), got {args.hidden_size}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {args.lr}")
    if not (math.isfinite(args.carry_noise) and 0 <= args.carry_noise < 1):
        raise ValueError(f"--carry-noise must be in [0, 1), got {args.carry_noise}")
    weights = list(args.level_weights)
    if len(weights) != num_levels:
        raise ValueError(f"--level-weights needs {num_levels} values for family {args.family!r}, got {weights}")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"--level-weights must be finite numbers >= 0 with a positive sum, got {weights}")
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output}: a file is there, expected a directory")
    if any(parent.exists() and not parent.is_dir() for parent in output.parents):
        raise ValueError(f"--output {output}: a parent of it is a file, expected a directory")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from dynamo_rl.demo.model import CARD_NAME, build_model, sampled_accuracy
    from dynamo_rl.demo.task import LEVELS, describe_levels, make_problems
    from dynamo_rl.demo.tokenizer import build_tokenizer
    from dynamo_rl.run.atomic import atomic_write_text

    levels = LEVELS[args.family]
    check_arguments(args, len(levels))
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, hidden_size=args.hidden_size, num_layers=args.layers,
                        seed=args.seed)
    train_problems = [make_problems("train", 5000, seed=args.seed, levels=[level.number], family=args.family)
                      for level in levels]
    train_by_level = [_encode(tokenizer, problems) for problems in train_problems]
    noisy_by_level = [_encode(tokenizer, problems, drop_carries=True) for problems in train_problems]
    test = make_problems("test", 100, seed=args.seed, family=args.family)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def evaluate() -> dict[str, float]:
        model.eval()
        accuracy = sampled_accuracy(model, tokenizer, test, samples_per_level=args.eval_samples, seed=args.seed)
        model.train()
        return accuracy

    start = time.perf_counter()
    model.train()
    history = []
    progress = tqdm(range(args.steps), desc="pretrain-demo", unit="step")
    for step in progress:
        chosen = rng.choices(range(len(levels)), weights=args.level_weights, k=args.batch_size)
        examples = []
        for k in chosen:
            index = rng.randrange(len(train_by_level[k]))
            noisy = args.carry_noise > 0 and rng.random() < args.carry_noise
            examples.append((noisy_by_level if noisy else train_by_level)[k][index])
        batch = _collate(examples, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, args.steps, args.lr)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            accuracy = evaluate()
            history.append({"step": step + 1, "accuracy_t1": accuracy})
            progress.write(f"step {step + 1}: loss {loss.item():.3f} T=1 accuracy {accuracy}")
    train_seconds = time.perf_counter() - start

    accuracy = evaluate()
    model.eval()
    greedy = sampled_accuracy(model, tokenizer, test, samples_per_level=min(args.eval_samples, 100), temperature=0.0)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output), safe_serialization=True)
    tokenizer.save_pretrained(str(output))
    card = {
        "family": args.family,
        "levels": describe_levels(args.family),
        "accuracy_t1": accuracy,
        "accuracy_greedy": greedy,
        "eval": {"split": "test", "samples_per_level": args.eval_samples, "grader": "exact match of last \\boxed{}",
                 "seed": args.seed},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                  "level_weights": list(args.level_weights), "carry_noise": args.carry_noise, "final_loss": round(loss.item(), 4),
                  "seconds": round(train_seconds, 1), "threads": args.threads,
                  "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                  "torch": torch.__version__},
        "model": {"architecture": "Qwen2ForCausalLM", "hidden_size": args.hidden_size, "layers": args.layers,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "history": history,
        "command": f"dynamo-rl pretrain-demo --output {args.output} --steps {args.steps} --seed {args.seed} "
                   f"--family {args.family} --carry-noise {args.carry_noise}",
    }
    atomic_write_text(output / CARD_NAME, json.dumps(card, indent=2) + "\n")
    print(f"wrote {output} in {train_seconds:.0f} s of training; T=1 accuracy per level: {accuracy}")
    return 0
