"""Generation backend interface: n_i completions for prompt i (per-prompt n is the point of DRA)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by every backend."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    """-1 disables top-k."""
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    """Generation for a sample stops after any of these strings; the stop string is kept in the text."""
    seed: int | None = None


@dataclass
class Completion:
    """One sampled response. ``prompt_index`` is the position of its prompt in the ``generate`` call."""

    prompt_index: int
    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None
    """Sampling log-probabilities of ``token_ids`` where the backend provides them."""
    finish_reason: str = "length"
    """``stop`` (EOS or stop string), or ``length``."""
    prompt_token_ids: list[int] = field(default_factory=list)


class GenerationBackend(Protocol):
    """Generates ``num_samples[i]`` completions for ``prompts[i]``.

    Returns a flat list ordered prompt by prompt (all samples of prompt 0, then prompt 1, ...), each tagged with its
    ``prompt_index``; ``len(result) == sum(num_samples)``.
    """

    def generate(self, prompts: Sequence[str], num_samples: Sequence[int],
                 params: SamplingParams) -> list[Completion]: ...
