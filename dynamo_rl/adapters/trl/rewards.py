"""Math-verify reward for TRL: ``reward_funcs=[math_verify_reward]`` with a dataset that has an ``answer`` column.

TRL calls a reward function with ``prompts``, ``completions``, ``completion_ids`` and every other dataset column as
keyword arguments, one entry per completion (so ``answer[i]`` is the reference of completion i's own prompt, also
when prompts are repeated a different number of times). Completions are strings, or chat messages
(``[{"role": "assistant", "content": ...}]``) for conversational datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dynamo_rl.rewards.base import Verifier


def completion_text(completion: Any) -> str:
    """The text of one TRL completion (a string, or a list of chat messages whose last one is the answer)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # content blocks
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    raise TypeError(f"unsupported completion type {type(completion).__name__}: expected str or list of messages")


def make_math_verify_reward(verifier: Verifier | None = None, *, correct: float = 1.0,
                            incorrect: float = 0.0) -> Callable[..., list[float]]:
    """A TRL reward function grading each completion against its own row's ``answer`` with ``verifier``.

    ``verifier`` defaults to :class:`dynamo_rl.rewards.math_verifier.MathVerifier` (created on first call).
    """
    state: dict[str, Verifier] = {}
    if verifier is not None:
        state["verifier"] = verifier

    def math_verify_reward(completions: Sequence[Any], answer: Sequence[str], **kwargs: Any) -> list[float]:
        if len(answer) != len(completions):
            raise ValueError(f"got {len(completions)} completions but {len(answer)} answers; the dataset needs an "
                             "'answer' column")
        if "verifier" not in state:
            from dynamo_rl.rewards.math_verifier import MathVerifier

            state["verifier"] = MathVerifier()
        check = state["verifier"]
        return [correct if check.verify(completion_text(c), str(a)).correct else incorrect
                for c, a in zip(completions, answer)]

    math_verify_reward.__name__ = "math_verify_reward"  # TRL logs rewards under the function name
    return math_verify_reward


math_verify_reward = make_math_verify_reward()
"""Default instance: 1.0 if math-verify accepts the completion's final answer, else 0.0."""
