"""The shared parity scenario: one batch that every engine must turn into the same allocation, advantages and loss.

``build_scenario(method, preset)`` fixes everything an engine's policy update consumes, in fp32:

* five prompts with a fixed success history (:data:`HISTORY`), chosen so that the ``dynamo`` allocation is not
  uniform under every preset; the allocation is :class:`~dynamo_rl.run.allocator.RolloutAllocator`'s with mean 4
  rollouts and bounds [2, 6] (:data:`ALLOCATION`), so the batch has B = Σ n_i = 20 rollouts;
* one binary reward per rollout (:data:`REWARD_PATTERNS`, cycled over each prompt's n_i rollouts): four mixed groups
  and one all-correct group (A = 0 under GRPO);
* the method's outcome advantages ``compute_advantages(loss.advantage_estimator, rewards, group_ids,
  **loss.advantage_kwargs())``;
* per-token tensors of a ragged batch (lengths 1..T, T = :data:`MAX_LENGTH`, the longest row has length T):
  ``logprobs``, ``entropy``, ``sum_sq_probs`` and ``sum_sq_probs_centered`` from
  :func:`~dynamo_rl.core.token_stats.token_stats` on seeded random logits (so they are mutually consistent, and the
  ``exact`` entropy-change estimate has its Σπ²Λ), and ``old_logprobs`` = ``logprobs`` + seeded noise, so ratios are
  not 1 and some tokens are clipped. Padding positions hold 0 in every tensor.

Scopes: the scenario batch is one mini-batch and one micro-batch, and :func:`builtin_loss` passes no outside
normalisers, so every normaliser of the modulation (H_min/H_max, max Ξ, the UMS token count) and of the aggregation
is taken over this batch (``micro`` = ``mini`` = ``global``). The built-in trainer's ``mini``/``global`` scopes take
max Ξ from a no-grad pass at ratio 1, which equals this only when ratio = 1; here ratios differ from 1 on purpose, so
the scenario checks the ``micro`` semantics, the only scope verl runs.

``variant="lone_token"`` makes the UMS guard matter: every token with A ≠ 0 is pushed outside the clip range
(ratio e^{±1}, so I_clip = 0 and Ξ = 0) except one, the first token of the first row with A ≠ 0 and length ≥ 2
(ratio 1). Exactly one token then has Ξ > 0: under ``official`` (``ums_min_tokens`` 0) it is damped to
g ≈ λ_min + (1 − λ_min)·σ(−k(1 − τ)); under ``paper``/``theory`` (``ums_min_tokens`` 2) UMS is skipped (g ≡ 1).

:func:`builtin_loss` is the built-in trainer's loss on the scenario
(:func:`dynamo_rl.trainer.objective.compute_objective`, ``normalizer=None``), the reference the other engines' parity
tests compare with. Pure torch + dynamo_rl: importable in every test environment (in verl's environment, whose wheel
ships a top-level ``tests`` package, import it as ``parity.scenario`` with ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.core.token_stats import TokenStats, token_stats
from dynamo_rl.method_config import MethodConfig
from dynamo_rl.presets import build_method_config
from dynamo_rl.run.allocator import Allocation, RolloutAllocator
from dynamo_rl.trainer.objective import compute_objective

PROMPT_IDS = ("p0", "p1", "p2", "p3", "p4")
HISTORY = {"p0": (1, 8), "p1": (4, 8), "p2": (8, 8), "p3": (2, 8), "p4": (6, 8)}
"""(#correct, #rollouts) of each prompt before the step: one mastered (p2), the others uncertain to various degrees."""
ALLOCATION = {"mean_rollouts": 4, "n_min": 2, "n_max": 6}
"""Allocation overrides of every case (the budget is 5 × 4 = 20 rollouts)."""
REWARD_PATTERNS = {"p0": (1, 0, 0), "p1": (0, 1), "p2": (1,), "p3": (0, 1, 0), "p4": (1, 0, 1)}
"""Rewards of rollout j of a prompt: ``pattern[j % len(pattern)]``; mixed for every n_i ≥ 2 except p2 (all correct)."""
MAX_LENGTH = 6
"""T: the padded width; row 0 has this length, the last row length 1."""
VOCAB = 11
SEED = 2602_19208
OLD_LOGPROB_NOISE = 0.15
"""std of log π_old − log π: ratios of roughly 0.75-1.35, so a part of the tokens is clipped."""
VARIANTS = ("base", "lone_token")
CASES = (
    ("dynamo", "official", "base"),
    ("dynamo", "paper", "base"),
    ("dynamo", "theory", "base"),
    ("grpo", "official", "base"),
    ("dr_grpo", "official", "base"),
    ("dynamo", "official", "lone_token"),
    ("dynamo", "paper", "lone_token"),
    ("dynamo", "theory", "lone_token"),
)
"""(method, preset, variant) of every parity case. ``theory`` needs Σπ²Λ (``entropy_change_mode="exact"``), which
only the built-in trainer computes; engines that cannot must refuse it with a clear message."""


@dataclass(frozen=True)
class Scenario:
    """One parity case: the method, the allocation and the batch (B rollouts, T tokens; all tensors fp32/CPU)."""

    method_name: str
    preset: str
    variant: str
    method: MethodConfig
    prompt_ids: tuple[str, ...]
    """(M,) stable prompt ids, in batch order."""
    history_correct: np.ndarray
    history_total: np.ndarray
    allocator: RolloutAllocator
    """The allocator after the history update (``allocate`` is pure, so it can be asked again)."""
    allocation: Allocation
    group_ids: torch.Tensor
    """(B,) int64: index of each rollout's prompt in ``prompt_ids`` (rollouts grouped by prompt, in order)."""
    rewards: torch.Tensor
    """(B,) fp32 binary rewards."""
    advantages: torch.Tensor
    """(B,) fp32 outcome advantages of ``method.loss.advantage_estimator``."""
    lengths: tuple[int, ...]
    mask: torch.Tensor
    """(B, T) bool: ``t < lengths[b]``."""
    logprobs: torch.Tensor
    old_logprobs: torch.Tensor
    entropy: torch.Tensor
    sum_sq_probs: torch.Tensor
    sum_sq_probs_centered: torch.Tensor

    @property
    def num_rollouts(self) -> np.ndarray:
        return self.allocation.num_rollouts

    @property
    def rollout_prompt_ids(self) -> list[str]:
        """(B,) prompt id of each rollout."""
        return [self.prompt_ids[int(g)] for g in self.group_ids]

    @property
    def token_advantages(self) -> torch.Tensor:
        """(B, T) outcome advantages broadcast over the valid tokens (0 on padding)."""
        return torch.where(self.mask, self.advantages[:, None].expand(self.mask.shape), torch.zeros(()))

    def token_stats(self, logprobs: torch.Tensor | None = None) -> TokenStats:
        """The scenario's :class:`TokenStats` (``logprobs`` replaced, e.g. by a leaf that requires grad)."""
        return TokenStats(logprobs=self.logprobs if logprobs is None else logprobs, entropy=self.entropy,
                          sum_sq_probs=self.sum_sq_probs, sum_sq_probs_centered=self.sum_sq_probs_centered)


def method_config(method: str, preset: str) -> MethodConfig:
    """``build_method_config(method, preset)`` with the scenario's allocation (mean 4, bounds [2, 6])."""
    return build_method_config(method, preset, overrides={"allocation": dict(ALLOCATION)})


def _lone_token_old_logprobs(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                             old: torch.Tensor) -> torch.Tensor:
    """Every valid token with A ≠ 0 gets ratio e^{sign(A)} (clipped), except the first token of the first row with
    A ≠ 0 and length ≥ 2, which gets ratio 1."""
    lengths = mask.sum(dim=1)
    rows = [int(r) for r in torch.nonzero((advantages != 0) & (lengths >= 2)).flatten()]
    if not rows:
        raise RuntimeError("lone_token variant: no row with A ≠ 0 and ≥ 2 tokens")
    sign = torch.sign(advantages)[:, None].expand(mask.shape)
    out = torch.where(mask & (sign != 0), logprobs - sign, old)
    out[rows[0], 0] = logprobs[rows[0], 0]
    return out


def build_scenario(method: str, preset: str, variant: str = "base") -> Scenario:
    """The parity scenario of ``method`` under ``preset`` (see the module docstring); deterministic."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    config = method_config(method, preset)
    correct = np.array([HISTORY[p][0] for p in PROMPT_IDS], dtype=np.float64)
    total = np.array([HISTORY[p][1] for p in PROMPT_IDS], dtype=np.float64)
    allocator = RolloutAllocator(config.allocation)
    allocator.update(PROMPT_IDS, correct, total)
    allocation = allocator.allocate(PROMPT_IDS)
    counts = allocation.counts()
    group_ids = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(counts)])
    rewards = torch.tensor([float(REWARD_PATTERNS[p][j % len(REWARD_PATTERNS[p])])
                            for p, n in zip(PROMPT_IDS, counts) for j in range(n)], dtype=torch.float32)
    advantages = compute_advantages(config.loss.advantage_estimator, rewards, group_ids,
                                    **config.loss.advantage_kwargs()).to(torch.float32)

    batch = int(group_ids.numel())
    g = torch.Generator().manual_seed(SEED)
    lengths = torch.randint(1, MAX_LENGTH + 1, (batch,), generator=g)
    lengths[0], lengths[-1] = MAX_LENGTH, 1
    mask = torch.arange(MAX_LENGTH)[None, :] < lengths[:, None]
    logits = torch.randn(batch, MAX_LENGTH, VOCAB, generator=g) * 2.0
    targets = torch.randint(0, VOCAB, (batch, MAX_LENGTH), generator=g)
    stats = token_stats(logits, targets, with_centered=True)
    noise = torch.randn(batch, MAX_LENGTH, generator=g) * OLD_LOGPROB_NOISE

    def padded(values: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, values.detach().to(torch.float32), torch.zeros(()))

    logprobs = padded(stats.logprobs)
    old_logprobs = padded(logprobs + noise)
    if variant == "lone_token":
        old_logprobs = padded(_lone_token_old_logprobs(logprobs, advantages, mask, old_logprobs))
    return Scenario(
        method_name=method, preset=preset, variant=variant, method=config, prompt_ids=PROMPT_IDS,
        history_correct=correct, history_total=total, allocator=allocator, allocation=allocation,
        group_ids=group_ids, rewards=rewards, advantages=advantages,
        lengths=tuple(int(n) for n in lengths), mask=mask, logprobs=logprobs, old_logprobs=old_logprobs,
        entropy=padded(stats.entropy), sum_sq_probs=padded(stats.sum_sq_probs),
        sum_sq_probs_centered=padded(stats.sum_sq_probs_centered))


def _objective(scenario: Scenario) -> tuple[Any, torch.Tensor]:
    logprobs = scenario.logprobs.clone().requires_grad_(True)
    entropy_bonus = scenario.entropy if scenario.method.loss.entropy_coeff > 0 else None
    out = compute_objective(scenario.method, logprobs=logprobs, old_logprobs=scenario.old_logprobs,
                            advantages=scenario.advantages, mask=scenario.mask,
                            stats=scenario.token_stats(logprobs), normalizer=None,
                            generator=torch.Generator().manual_seed(0), entropy_for_bonus=entropy_bonus)
    out.loss.backward()
    return out, logprobs.grad


def builtin_loss(scenario: Scenario) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The built-in trainer's loss on the scenario: ``(modulated per-token advantages (B, T) fp32, loss (0-d),
    metrics as floats)`` from :func:`~dynamo_rl.trainer.objective.compute_objective` on the whole batch as one
    micro-batch (``normalizer=None``, no outside scope normalisers). The advantages are 0 on padding."""
    out, _ = _objective(scenario)
    advantages = torch.where(scenario.mask, out.advantages.detach(), torch.zeros(()))
    metrics = {name: float(value) for name, value in out.metrics.items()}
    return advantages, out.loss.detach(), metrics


def builtin_grad(scenario: Scenario) -> torch.Tensor:
    """d loss / d logprobs (B, T) of :func:`builtin_loss` (0 on padding)."""
    return _objective(scenario)[1]
