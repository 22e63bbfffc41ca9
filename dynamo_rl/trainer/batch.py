"""One step's rollouts: per-prompt fields expanded by n_i, and padded token tensors.

Shapes: ``P`` prompts in the step, ``B = Σ_i n_i`` sequences, ``T`` response tokens (padded), ``L = Lp + T`` prompt
plus response tokens (prompts are left-padded to a common width ``Lp``, responses right-padded to ``T``).

**Every per-prompt field is repeated by the same n_i** (problem, answer, prompt id, group id, level) with
:func:`repeat_per_prompt`, and each completion must carry the ``prompt_index`` of the row it lands on. The authors'
trainer repeats the generations by n_i but its metadata (ground truth, ``uid``, ``index``) uniformly, so from the
second epoch on responses are graded against other prompts' answers and grouped with strangers (method-spec §3.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from dynamo_rl.core.groups import repeat_per_prompt
from dynamo_rl.data.types import Problem
from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rollout.types import Completion


@dataclass(frozen=True)
class RolloutBatch:
    """The B sequences of one training step with their per-prompt metadata (lists are length B)."""

    problems: tuple[Problem, ...]
    """The step's P prompts, in allocation order."""
    num_rollouts: np.ndarray
    """n_i per prompt, (P,) int64; Σ n_i = B."""
    prompt_index: torch.Tensor
    """Position of each sequence's prompt in ``problems``, (B,) int64. Also the ragged group id."""
    prompt_ids: list[str]
    answers: list[str]
    levels: list[Any]
    """``problem.meta["level"]`` (None when the dataset has no levels)."""
    completions: list[Completion]
    verdicts: list[Verdict] = field(default_factory=list)
    """Filled by :meth:`with_verdicts` (empty before verification)."""
    rewards: torch.Tensor | None = None
    """Scalar reward per sequence, (B,) float32 (after verification)."""

    @property
    def group_ids(self) -> torch.Tensor:
        """Ragged group of each sequence: its prompt's position, (B,) int64 (groups have size n_i)."""
        return self.prompt_index

    @property
    def size(self) -> int:
        return len(self.completions)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    @classmethod
    def from_completions(cls, problems: Sequence[Problem], num_rollouts: Sequence[int],
                         completions: Sequence[Completion]) -> RolloutBatch:
        """Pair each completion with its own prompt's fields. Raises if a backend returned them out of order."""
        num_rollouts = np.asarray(num_rollouts, dtype=np.int64)
        index = repeat_per_prompt(list(range(len(problems))), num_rollouts)
        if len(completions) != len(index):
            raise ValueError(f"backend returned {len(completions)} completions for Σ n_i = {len(index)}")
        for row, (expected, completion) in enumerate(zip(index, completions)):
            if completion.prompt_index != expected:
                raise ValueError(f"completion {row} has prompt_index {completion.prompt_index}, expected {expected}: "
                                 "backends must return completions grouped prompt by prompt in allocation order")
        return cls(
            problems=tuple(problems),
            num_rollouts=num_rollouts,
            prompt_index=torch.tensor(index, dtype=torch.long),
            prompt_ids=repeat_per_prompt([p.prompt_id for p in problems], num_rollouts),
            answers=repeat_per_prompt([p.answer for p in problems], num_rollouts),
            levels=repeat_per_prompt([p.meta.get("level") for p in problems], num_rollouts),
            completions=list(completions),
        )

    def with_verdicts(self, verdicts: Sequence[Verdict], rewards: Sequence[float]) -> RolloutBatch:
        if len(verdicts) != self.size or len(rewards) != self.size:
            raise ValueError(f"got {len(verdicts)} verdicts and {len(rewards)} rewards for {self.size} sequences")
        return replace(self, verdicts=list(verdicts), rewards=torch.tensor(list(rewards), dtype=torch.float32))

    def correct_per_prompt(self) -> np.ndarray:
        """Number of correct responses c_i per prompt, (P,) int64 (for the success history)."""
        correct = np.zeros(len(self.problems), dtype=np.int64)
        np.add.at(correct, self.prompt_index.numpy(), [int(v.correct) for v in self.verdicts])
        return correct


@dataclass(frozen=True)
class TokenBatch:
    """Padded token tensors of (a subset of) a rollout batch.

    Logits for the response token at column t come from input position ``Lp - 1 + t``.
    """

    input_ids: torch.Tensor
    """(B, L) int64, prompts left-padded, responses right-padded with ``pad_id``."""
    attention_mask: torch.Tensor
    """(B, L) int64, 1 on real tokens."""
    position_ids: torch.Tensor
    """(B, L) int64, counting from 0 at each sequence's first real token."""
    targets: torch.Tensor
    """(B, T) int64, the response tokens (``pad_id`` on padding)."""
    response_mask: torch.Tensor
    """(B, T) bool, True on response tokens."""
    prompt_width: int
    """Lp, the padded prompt width."""

    def to(self, device: torch.device | str) -> TokenBatch:
        return replace(self, input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
                       position_ids=self.position_ids.to(device), targets=self.targets.to(device),
                       response_mask=self.response_mask.to(device))


def pad_tokens(prompt_tokens: Sequence[Sequence[int]], response_tokens: Sequence[Sequence[int]],
               pad_id: int) -> TokenBatch:
    """Left-pad prompts and right-pad responses into one (B, Lp + T) batch."""
    if len(prompt_tokens) != len(response_tokens):
        raise ValueError(f"{len(prompt_tokens)} prompts for {len(response_tokens)} responses")
    batch = len(prompt_tokens)
    width = max((len(p) for p in prompt_tokens), default=0)
    length = max(max((len(r) for r in response_tokens), default=0), 1)
    input_ids = torch.full((batch, width + length), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, width + length), dtype=torch.long)
    for row, (prompt, response) in enumerate(zip(prompt_tokens, response_tokens)):
        start = width - len(prompt)
        input_ids[row, start:width] = torch.tensor(list(prompt), dtype=torch.long)
        input_ids[row, width:width + len(response)] = torch.tensor(list(response), dtype=torch.long)
        attention[row, start:width + len(response)] = 1
    positions = (attention.cumsum(dim=-1) - 1).clamp(min=0)
    response_mask = attention[:, width:].bool()
    return TokenBatch(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                      targets=input_ids[:, width:].clone(), response_mask=response_mask, prompt_width=width)


def token_batch(batch: RolloutBatch, rows: Sequence[int] | torch.Tensor, pad_id: int,
                tokenize=None) -> TokenBatch:
    """Padded tensors for ``rows`` of ``batch``. ``tokenize(text) -> ids`` is used when a backend did not report
    prompt token ids."""
    rows = [int(r) for r in rows]
    prompts = []
    for r in rows:
        completion = batch.completions[r]
        ids = completion.prompt_token_ids
        if not ids:
            if tokenize is None:
                raise ValueError(f"completion {r} has no prompt_token_ids and no tokenize function was given")
            problem = batch.problems[completion.prompt_index]
            ids = tokenize(problem.prompt or problem.problem)
        prompts.append(ids)
    return pad_tokens(prompts, [batch.completions[r].token_ids for r in rows], pad_id)


def mini_batches(num_rollouts: np.ndarray, prompts_per_mini_batch: int | None,
                 generator: np.random.Generator | None = None) -> list[np.ndarray]:
    """Split sequence rows into mini-batches of whole prompt groups (shuffled by prompt when a generator is given).

    Each mini-batch holds all n_i rollouts of its prompts, so group statistics never straddle an update.
    """
    num_prompts = len(num_rollouts)
    order = np.arange(num_prompts) if generator is None else generator.permutation(num_prompts)
    starts = np.concatenate([[0], np.cumsum(num_rollouts)[:-1]]).astype(np.int64)
    size = prompts_per_mini_batch or num_prompts
    out = []
    for first in range(0, num_prompts, size):
        chosen = order[first:first + size]
        out.append(np.concatenate([np.arange(starts[i], starts[i] + num_rollouts[i]) for i in chosen]))
    return out
