"""What the built-in trainer builds before its first step, from a :class:`TrainConfig`: generation backend, verifier,
optimiser and warm-up scheduler (policy and problems come from :mod:`dynamo_rl.run.loading`).

Each builder is small and separate so tests and scripts can replace any part (``train(config, model=..., ...)``).
"""

from __future__ import annotations

from typing import Any

import torch

from dynamo_rl.run.config import TrainConfig


def make_rollout_backend(config: TrainConfig, model: Any, tokenizer: Any) -> Any:
    """The generation backend named by ``rollout.backend`` (the policy is shared, never copied, by ``hf``)."""
    if config.rollout.backend == "hf":
        from dynamo_rl.rollout.hf import HFBackend

        return HFBackend(model, tokenizer, batch_size=max(config.optim.micro_batch_size, 1))
    from dynamo_rl.rollout.registry import make_backend

    # vLLM loads its own copy from data.model; the loop pushes the policy's weights after every update.
    return make_backend("vllm", config.data.model, gpu_memory_utilization=config.rollout.vllm_gpu_memory_utilization,
                        seed=config.run.seed)


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW and a linear warm-up to the peak learning rate, constant afterwards (paper: 10 warm-up steps)."""
    optim = config.optim
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=optim.lr,
                                  betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    warmup = optim.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda update: min(1.0, (update + 1) / warmup) if warmup > 0 else 1.0)
    return optimizer, scheduler


def make_verifier(config: TrainConfig) -> Any:
    """MathVerifier in-process (``run.num_verifier_workers=0``) or in a started :class:`VerifierPool`."""
    from dynamo_rl.rewards.math_verifier import MathVerifier

    if config.run.num_verifier_workers == 0:
        return MathVerifier()
    from dynamo_rl.rewards.runner import VerifierPool

    return VerifierPool(MathVerifier(), num_workers=config.run.num_verifier_workers).start(wait_ready=True)
