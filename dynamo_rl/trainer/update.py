"""The policy update of one training step: mini-batches × PPO epochs of forward → token statistics → objective →
AdamW step. Called by :func:`dynamo_rl.trainer.loop.train`; all method math is in :mod:`dynamo_rl.trainer.objective` and
:mod:`dynamo_rl.core`.

Old log-probabilities: when a step makes exactly one optimiser step (one mini-batch, one epoch), the policy that
sampled the batch is the one being differentiated, so ``old_logprobs = logprobs.detach()`` (ratio exactly 1, as in
verl with ``ppo_epochs=1``). Otherwise a no-grad pass over the whole batch records them first. Neither uses the
backend's sampling log-probabilities, which come from a different kernel (vLLM) and would bias the ratio.

Normalisation scope of the modulation (``modulation.norm_scope``, A6): ``micro`` normalises inside each
forward pass (authors' code); ``mini`` and ``global`` take H_min/H_max over the mini-batch / whole step from the
no-grad pass (entropies of the policy before this step's first update) and pass them as ``entropy_range``; the
UMS normaliser max Ξ likewise (``instability_max``, Ξ of the outcome advantages at ratio 1).
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from dynamo_rl.core.modulation import entropy_change
from dynamo_rl.core.token_stats import TokenStats, token_stats
from dynamo_rl.run.config import TrainConfig
from dynamo_rl.trainer.batch import RolloutBatch, TokenBatch, mini_batches, token_batch
from dynamo_rl.trainer.objective import compute_objective


class NonFiniteError(RuntimeError):
    """A non-finite loss or gradient norm; the message names the step and the quantity."""


def forward_stats(model: torch.nn.Module, tokens: TokenBatch, *, temperature: float, with_centered: bool,
                  with_entropy_grad: bool = False) -> tuple[TokenStats, torch.Tensor | None]:
    """Token statistics of the response tokens, (B, T) each; optionally a differentiable entropy (B, T)."""
    width, length = tokens.prompt_width, tokens.targets.shape[1]
    kwargs: dict[str, Any] = {"attention_mask": tokens.attention_mask, "position_ids": tokens.position_ids}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = length + 1  # only the positions that predict response tokens (and one spare)
        logits = model(tokens.input_ids, **kwargs).logits[:, :-1]
    else:
        logits = model(tokens.input_ids, **kwargs).logits[:, width - 1:width - 1 + length]
    stats = token_stats(logits, tokens.targets, temperature=temperature, with_centered=with_centered)
    entropy = None
    if with_entropy_grad:
        logp = torch.log_softmax(logits.float() / temperature, dim=-1)
        entropy = -(logp.exp() * logp).sum(dim=-1)
    return stats, entropy


def _normalizer(mode: str, mask: torch.Tensor, max_new_tokens: int) -> float:
    """Denominator of the aggregation over a whole mini-batch (exact gradient accumulation over micro-batches)."""
    if mode == "token-mean":
        return float(mask.sum().clamp(min=1))
    if mode == "seq-mean-token-sum-norm":  # Dr. GRPO: L_max (the generation limit) × sequences, as verl and TRL
        return float(max_new_tokens) * float((mask.sum(dim=-1) > 0).sum().clamp(min=1))
    return float((mask.sum(dim=-1) > 0).sum().clamp(min=1))


@torch.no_grad()
def _no_grad_pass(model, batch: RolloutBatch, advantages: torch.Tensor, pad_id: int,
                  config: TrainConfig) -> dict[str, torch.Tensor]:
    """Log-probabilities, entropies and UMS instabilities Ξ (each (B, T_max), zero on padding) of the current policy
    on the whole batch: the old log-probabilities and the mini/global-scope normalisers."""
    method = config.method
    device = next(model.parameters()).device
    length = max(max(len(c.token_ids) for c in batch.completions), 1)
    out = {name: torch.zeros(batch.size, length) for name in ("logprobs", "entropy", "instability")}
    rows = np.arange(batch.size)
    for start in range(0, batch.size, config.optim.micro_batch_size):
        micro = rows[start:start + config.optim.micro_batch_size]
        tokens = token_batch(batch, micro, pad_id).to(device)
        stats, _ = forward_stats(model, tokens, temperature=config.rollout.temperature,
                                 with_centered=method.modulation.entropy_change_mode == "exact")
        width = tokens.targets.shape[1]
        out["logprobs"][micro, :width] = stats.logprobs.float().cpu()
        out["entropy"][micro, :width] = stats.entropy.float().cpu()
        if method.modulation.stabilization:
            adv = advantages[micro].to(device)[:, None].expand(tokens.response_mask.shape).float()
            change = entropy_change(adv, torch.ones_like(adv), stats.logprobs.float(), stats.entropy.float(),
                                    tokens.response_mask, eps_low=method.loss.eps_low, eps_high=method.loss.eps_high,
                                    mode=method.modulation.entropy_change_mode,
                                    sum_sq_probs_centered=stats.sum_sq_probs_centered)
            out["instability"][micro, :width] = change.abs().float().cpu()
    return out


def _scope_normalisers(pre: dict[str, torch.Tensor], batch: RolloutBatch, rows: np.ndarray) -> dict[str, Any]:
    """``entropy_range``, ``instability_max`` and the UMS guard's ``instability_count`` over ``rows`` (valid tokens
    only), for modulate_advantages: every normaliser of a mini/global scope is taken over that same scope."""
    lengths = [len(batch.completions[r].token_ids) for r in rows]
    entropy = torch.cat([pre["entropy"][r, :n] for r, n in zip(rows, lengths)])
    instability = torch.cat([pre["instability"][r, :n] for r, n in zip(rows, lengths)])
    if entropy.numel() == 0:
        return {"entropy_range": None, "instability_max": None, "instability_count": None}
    return {"entropy_range": (float(entropy.min()), float(entropy.max())),
            "instability_max": float(instability.max()), "instability_count": int((instability > 0).sum())}


def update_policy(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, batch: RolloutBatch,
                  advantages: torch.Tensor, config: TrainConfig, *, step: int, pad_id: int) -> dict[str, float]:
    """All optimiser steps of one training step; returns metrics averaged over micro-batches (weighted by tokens)."""
    method, optim = config.method, config.optim
    device = next(model.parameters()).device
    shuffle = np.random.default_rng([config.run.seed, step, 1]) if optim.mini_batch_prompts else None
    minis = [mini_batches(batch.num_rollouts, optim.mini_batch_prompts, shuffle) for _ in range(optim.ppo_epochs)]
    single_step = optim.ppo_epochs == 1 and len(minis[0]) == 1
    scope = method.modulation.norm_scope if method.modulation.enabled else "micro"
    pre = None
    if not single_step or scope != "micro":
        pre = _no_grad_pass(model, batch, advantages, pad_id, config)
    scope_global = _scope_normalisers(pre, batch, np.arange(batch.size)) if scope == "global" else {}
    generator = torch.Generator().manual_seed(config.run.seed * 1_000_003 + step)
    params = [p for p in model.parameters() if p.requires_grad]
    sums: dict[str, float] = defaultdict(float)
    weight = 0.0
    grad_norms = []
    for epoch_minis in minis:
        for rows in epoch_minis:
            optimizer.zero_grad(set_to_none=True)
            normalisers = scope_global if scope == "global" else (
                _scope_normalisers(pre, batch, rows) if scope == "mini" else {})
            full = token_batch(batch, rows, pad_id)
            normalizer = _normalizer(method.loss.loss_agg_mode, full.response_mask, config.rollout.max_new_tokens)
            for start in range(0, len(rows), optim.micro_batch_size):
                micro = rows[start:start + optim.micro_batch_size]
                tokens = token_batch(batch, micro, pad_id).to(device)
                stats, entropy = forward_stats(
                    model, tokens, temperature=config.rollout.temperature,
                    with_centered=method.modulation.entropy_change_mode == "exact",
                    with_entropy_grad=method.loss.entropy_coeff > 0)
                length = tokens.targets.shape[1]
                old = stats.logprobs.detach() if single_step else pre["logprobs"][micro, :length].to(device)
                out = compute_objective(
                    method, logprobs=stats.logprobs, old_logprobs=old, advantages=advantages[micro].to(device),
                    mask=tokens.response_mask, stats=stats, normalizer=normalizer, generator=generator,
                    entropy_for_bonus=entropy, **normalisers)
                if not bool(torch.isfinite(out.loss)):
                    raise NonFiniteError(f"non-finite loss ({float(out.loss.detach())}) at step {step}")
                out.loss.backward()
                tokens_here = float(tokens.response_mask.sum())
                sums["actor/loss"] += float(out.loss.detach())
                for key, value in out.metrics.items():
                    if torch.is_tensor(value) and value.numel() == 1 or isinstance(value, (int, float)):
                        sums[key] += float(value) * tokens_here
                weight += tokens_here
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, optim.grad_clip))
            if not math.isfinite(grad_norm):
                raise NonFiniteError(f"non-finite gradient norm ({grad_norm}) at step {step}")
            grad_norms.append(grad_norm)
            optimizer.step()
            scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    num_updates = len(grad_norms)
    metrics = {key: value / max(weight, 1.0) for key, value in sums.items() if key != "actor/loss"}
    metrics = {("actor/entropy" if k == "entropy" else k if "/" in k else f"loss/{k}"): v for k, v in metrics.items()}
    metrics["actor/loss"] = sums["actor/loss"] / num_updates
    metrics["actor/grad_norm"] = float(np.mean(grad_norms))
    metrics["actor/grad_norm_max"] = float(np.max(grad_norms))
    metrics["actor/optimizer_steps"] = num_updates
    metrics["actor/lr"] = float(scheduler.get_last_lr()[0])
    return metrics
