"""A tiny end-to-end training setup shared by the trainer tests (also runnable as a subprocess script).

The policy is the random 2-layer Qwen2 of ``tests/tiny_models.py``; the verifier is a deterministic stand-in
(correct iff the sum of the response's character codes is divisible by 3) so a random model still gets mixed rewards, hence
nonzero advantages and non-uniform DynaMO allocations within a few steps.

Subprocess use: ``python tiny_run.py RUN_DIR STEPS [--resume] [--kill-during-write K]`` (checkpoint every 2 steps).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dynamo_rl.data.types import Problem  # noqa: E402
from dynamo_rl.rewards.base import Verdict  # noqa: E402
from dynamo_rl.run.config import TrainConfig  # noqa: E402
from dynamo_rl.run.config_files import load_config  # noqa: E402


class ParityVerifier:
    """Deterministic stand-in verifier: correct iff the character codes of the response sum to a multiple of 3."""

    def verify(self, completion: str, answer: str) -> Verdict:
        ok = sum(map(ord, completion)) % 3 == 0
        return Verdict(float(ok), "correct" if ok else "incorrect", completion)


class SpyBackend:
    """Wraps a backend and records every ``(prompts, num_samples)`` it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[list[str], list[int]]] = []

    def generate(self, prompts, num_samples, params):
        self.calls.append((list(prompts), [int(n) for n in num_samples]))
        return self.inner.generate(prompts, num_samples, params)


def tiny_problems(count: int = 4) -> list[Problem]:
    return [Problem(prompt_id=f"tiny/{i}", problem=f"{i}+{i}", answer=str(2 * i), prompt=f"Q: {i}+{i}=? A:",
                    meta={"level": 1 + i % 2}) for i in range(count)]


def tiny_config(run_dir: str | Path, steps: int = 3, method: str = "dynamo", **overrides: Any) -> TrainConfig:
    pairs = [("method", method), ("run.output_dir", str(run_dir)), ("run.steps", steps), ("run.seed", 7),
             ("run.eval_every", 0), ("run.checkpoint_every", 0), ("run.progress", False), ("run.plots", False),
             ("allocation.mean_rollouts", 3), ("allocation.n_min", 2), ("allocation.n_max", 5),
             ("allocation.min_history", 2), ("allocation.n_explore", 2),
             ("rollout.prompts_per_step", 2), ("rollout.max_new_tokens", 6), ("optim.lr", 1e-2),
             ("optim.warmup_steps", 0), ("optim.weight_decay", 0.0), ("optim.micro_batch_size", 4)]
    pairs += list(overrides.items())
    return load_config(None, pairs)


def tiny_policy(seed: int = 0):
    from tests.tiny_models import make_tiny_qwen2, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    return make_tiny_qwen2(len(tokenizer), hidden=16, layers=2, heads=2, seed=seed), tokenizer


def run_tiny(config: TrainConfig, *, resume: bool = False, spy: bool = False, eval_problems=None):
    from dynamo_rl.rollout.hf import HFBackend
    from dynamo_rl.trainer.loop import train

    model, tokenizer = tiny_policy()
    backend = HFBackend(model, tokenizer, batch_size=8)
    backend = SpyBackend(backend) if spy else backend
    result = train(config, model=model, tokenizer=tokenizer, problems=tiny_problems(),
                   eval_problems=eval_problems or [], backend=backend, verifier=ParityVerifier(), resume=resume)
    return result, model, backend


def _main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    run_dir, steps = argv[0], int(argv[1])
    kill_during = int(argv[argv.index("--kill-during-write") + 1]) if "--kill-during-write" in argv else None
    if kill_during is not None:
        # SIGKILL halfway through writing checkpoint `kill_during` (model written, optimizer not yet).
        import dynamo_rl.run.checkpoint as ckpt

        original_save = ckpt.torch.save

        def save(obj, path, *args, **kwargs):
            if f"step_{kill_during:06d}" in str(path):
                os.kill(os.getpid(), signal.SIGKILL)
            return original_save(obj, path, *args, **kwargs)

        ckpt.torch.save = save
    config = tiny_config(run_dir, steps=steps, **{"run.checkpoint_every": 2})
    run_tiny(config, resume="--resume" in argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
