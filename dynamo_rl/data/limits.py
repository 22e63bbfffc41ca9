"""Prompt-length limits checked before training or evaluation, in time linear in the text and never a hang.

:func:`check_prompt_lengths` measures each problem's prompt (``Problem.prompt``, else the raw ``problem``) against a
token limit without tokenizing texts that are certainly short or certainly long:

- **certainly short**: at most ``max_prompt_tokens - 2`` UTF-8 bytes. A byte-level BPE token covers at least one byte,
  a SentencePiece piece (or byte-fallback token) too, so no tokenizer makes more tokens than bytes (the 2 leave
  room for a SentencePiece prefix piece and a BOS/EOS the tokenizer may add);
- **certainly long**: more than ``max_prompt_tokens * L`` characters, with ``L`` the longest entry of the
  tokenizer's vocabulary (``get_vocab()``), since no token covers more characters than its longest entry. Such a
  row is reported as "at least N tokens" without tokenizing it, so a 50 MB problem costs microseconds;
- everything in between is tokenized (``tokenizer(text, add_special_tokens=False)["input_ids"]``), which is then at
  most ``max_prompt_tokens * L`` characters long.

A tokenizer that normalises text into more characters (NFKC on ligatures) could make a "certainly long" bound loose;
none of the usual LLM tokenizers does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dynamo_rl.data.types import Problem

_SPECIAL_SLACK = 2


def _longest_token(tokenizer: Any) -> int | None:
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if not callable(get_vocab):
        return None
    try:
        return max((len(token) for token in get_vocab()), default=0) or None
    except Exception:  # noqa: BLE001 - a tokenizer without a usable vocabulary: tokenize instead
        return None


def _measure(text: str, tokenizer: Any, max_prompt_tokens: int, longest_token: int | None) -> tuple[int, bool]:
    """``(tokens, exact)``: 0 when ``text`` certainly fits, a lower bound above the limit (``exact=False``) when it
    certainly does not, else the tokenizer's count (``exact=True``)."""
    if len(text) + _SPECIAL_SLACK <= max_prompt_tokens and len(text.encode("utf-8")) + _SPECIAL_SLACK <= max_prompt_tokens:
        return 0, False
    if longest_token is not None:
        at_least = math.ceil(len(text) / longest_token)
        if at_least > max_prompt_tokens:
            return at_least, False
    try:  # verbose=False: no "longer than the model's maximum" warning from transformers, we report it ourselves
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]), True
    except TypeError:  # a plain callable without transformers' keyword
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]), True


def check_prompt_lengths(problems: Sequence[Problem], tokenizer: Any, max_prompt_tokens: int, *,
                         skip: bool) -> tuple[list[Problem], int]:
    """The problems whose prompt has at most ``max_prompt_tokens`` tokens, and how many were skipped.

    ``skip=False``: the first longer prompt raises ``ValueError`` naming its prompt id, its length in tokens (or
    "at least N" when it was not tokenized) and characters, and the limit. ``skip=True``: longer prompts are left out
    and counted; the caller must report the count (nothing is dropped silently). Order is kept.
    """
    if isinstance(max_prompt_tokens, bool) or not isinstance(max_prompt_tokens, int) or max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be a positive int, got {max_prompt_tokens!r}")
    if not callable(tokenizer):
        raise ValueError(f"tokenizer must be callable as tokenizer(text, add_special_tokens=False), got "
                         f"{type(tokenizer).__name__}")
    longest = _longest_token(tokenizer)
    kept: list[Problem] = []
    skipped = 0
    for index, problem in enumerate(problems):
        if not isinstance(problem, Problem):
            raise ValueError(f"problems[{index}] must be a Problem, got {type(problem).__name__}")
        text = problem.prompt or problem.problem
        length, exact = _measure(text, tokenizer, max_prompt_tokens, longest)
        if length <= max_prompt_tokens:
            kept.append(problem)
            continue
        if not skip:
            raise ValueError(f"row {problem.prompt_id!r}: the prompt has {'' if exact else 'at least '}{length} tokens "
                             f"({len(text)} characters), over max_prompt_tokens={max_prompt_tokens}; shorten or "
                             f"remove the row, raise the limit, or skip long prompts")
        skipped += 1
    return kept, skipped
