"""Everything a run needs before its first step, built from a :class:`TrainConfig`: policy and tokenizer, training and
held-out problems, generation backend, verifier, optimiser and warm-up scheduler.

Each builder is small and separate so tests and scripts can replace any part (``train(config, model=..., ...)``).
"""

from __future__ import annotations

from typing import Any

import torch

from dynamo_rl.data.types import Problem
from dynamo_rl.trainer.config import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("invalid run.device='cuda': CUDA is not available on this machine")
    return torch.device(name)


def load_policy(config: TrainConfig) -> tuple[Any, Any]:
    """``(model, tokenizer)``: the embedded demo model for ``data.model=demo`` (or a folder written by
    ``dynamo-rl pretrain-demo``, whose character tokenizer needs its own loader), else ``from_pretrained``."""
    from pathlib import Path

    device = resolve_device(config.run.device)
    if config.data.model == "demo":
        from dynamo_rl.demo.model import load_demo_model

        model, tokenizer = load_demo_model(device)
    elif (Path(config.data.model) / "demo_card.json").exists():  # written by `dynamo-rl pretrain-demo --output`
        from dynamo_rl.demo.model import load_model

        model, tokenizer = load_model(config.data.model, device)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = torch.bfloat16 if config.run.dtype == "bfloat16" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(config.data.model, dtype=dtype).to(device)
        tokenizer = AutoTokenizer.from_pretrained(config.data.model)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
    model.eval()  # no dropout: the sampling policy and the differentiated policy must be the same function
    return model, tokenizer


def load_train_problems(config: TrainConfig) -> list[Problem]:
    data = config.data
    if data.dataset == "demo":
        from dynamo_rl.demo.task import make_problems

        problems = make_problems("train", data.demo_train_per_level, seed=config.run.seed)
    else:
        from dynamo_rl.data.loading import load_problems

        kwargs = {"template": data.template} if data.template else {}
        problems = load_problems(data.dataset, limit=data.max_problems, **kwargs)
    return list(problems[:data.max_problems] if data.max_problems else problems)


def load_eval_problems(config: TrainConfig) -> list[Problem]:
    data = config.data
    if data.eval_dataset is None and data.dataset != "demo":
        return []
    if data.eval_dataset in (None, "demo"):
        from dynamo_rl.demo.task import make_problems

        return make_problems("test", data.demo_eval_per_level, seed=config.run.seed)
    from dynamo_rl.data.loading import load_problems

    kwargs = {"template": data.template} if data.template else {}
    return list(load_problems(data.eval_dataset, **kwargs))


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

    return VerifierPool(MathVerifier(), num_workers=config.run.num_verifier_workers).start()
